"""Practice tab: persona cards, a streamed chat, the coach panel, rewind, end, self-rating, report.

The browser holds only the current session id (``gr.State``); the transcript is read back from the
store on every action, so what the trainee sees is what was saved. Each handler re-checks that the
signed-in user owns the session before reading or writing it.
"""

from __future__ import annotations

import contextlib
import html
import time
from collections.abc import AsyncIterator
from typing import Any

import gradio as gr

from simulator.content.persona import PersonaCard
from simulator.service.practice import TurnRejected, clean_turn_text
from simulator.web import render
from simulator.web.access import PRACTISE, Denied, check_own_session, check_session, require
from simulator.web.context import WebContext

MODES = [("Coach: feedback after each turn", "coach"),
         ("Assessment: feedback at the end", "assessment")]
MAX_SELF_ITEMS = 6
STREAM_EVERY_S = 0.08
"""Tokens arriving closer together are sent to the browser together: each update re-sends the
chat through Gradio's postprocessing (milliseconds of CPU), so one update per token made a class of
100 trainees CPU-bound on two cores (``counselsim bench load``). 80 ms still reads as streaming."""


CARDS_JS = """
const choose = (card) => { if (card) trigger('click', {persona: card.dataset.persona}); };
element.addEventListener('click', (ev) => choose(ev.target.closest('.cs-card')));
element.addEventListener('keydown', (ev) => {
  if (ev.key !== 'Enter' && ev.key !== ' ') return;
  const card = ev.target.closest('.cs-card');
  if (card) { ev.preventDefault(); choose(card); }
});
if (!window.counselsimDrafts) {
  // Unsent text survives a reload: kept per session in this tab's sessionStorage (not shared
  // with other tabs or kept after the tab closes), given back when the session is reopened.
  window.counselsimDrafts = true;
  let open = null;
  setInterval(() => {
    const brief = document.querySelector('#session-brief [data-session]');
    const box = document.querySelector('#say textarea');
    if (!brief || !box || !box.offsetParent) { open = null; return; }
    const key = 'counselsim-draft:' + brief.dataset.session;
    if (open !== key) {
      open = key;
      const saved = sessionStorage.getItem(key);
      if (saved && !box.value) {
        box.value = saved;
        box.dispatchEvent(new Event('input', {bubbles: true}));
      }
      return;
    }
    if (box.value) sessionStorage.setItem(key, box.value); else sessionStorage.removeItem(key);
  }, 400);
}
"""
"""Cards select on click or Enter/Space; the draft keeper runs once per page."""


def chat_messages(turns: list[Any]) -> list[dict[str, str]]:
    """Stored turns -> Gradio chat messages (the trainee is the user, the client the assistant)."""
    return [{"role": "user" if t.speaker == "counselor" else "assistant",
             "content": literal(t.text)} for t in turns]


def literal(text: str) -> str:
    """Chat text shown exactly as typed. The chat renders no Markdown (``render_markdown=False``)
    but would still render HTML tags: escaped, ``<img src=...>`` is text, so nothing a trainee
    or a persona wrote makes the browser fetch a remote URL."""
    return html.escape(text, quote=False)


def build(ctx: WebContext) -> dict[str, Any]:
    sid = gr.State(None)

    # -- choose a client (an unfinished session first: it is the trainee's next step) -------
    with gr.Column(visible=True, elem_id="practice-choose") as choose_view:
        with gr.Column(visible=False, elem_id="resume-box",
                       elem_classes=["cs-resume"]) as resume_box:
            resume_head = gr.HTML(elem_id="resume-head")
            with gr.Row(equal_height=True):
                resume_pick = gr.Dropdown(choices=[], label="Unfinished session", scale=4,
                                          allow_custom_value=True, elem_id="resume-pick")
                resume = gr.Button("Resume", variant="primary", scale=1, min_width=110,
                                   elem_id="resume")
        gr.Markdown("### Choose a client to practise with\nClick a card to choose it. You see "
                    "the referral only; the rest you will learn by listening.")
        with gr.Row(equal_height=True, elem_id="start-bar"):
            persona = gr.Dropdown(choices=[], label="Client", scale=3, min_width=200,
                                  elem_id="persona-pick")
            rubric = gr.Dropdown(choices=[], label="Scored with", scale=3, min_width=200,
                                 elem_id="rubric-pick")
            mode = gr.Radio(MODES, value="coach", label="Mode", scale=4, min_width=260,
                            elem_id="mode-pick")
            start = gr.Button("Start session", variant="primary", scale=1, min_width=130,
                              elem_id="start")
        cards = gr.HTML(elem_id="persona-cards", js_on_load=CARDS_JS)

    # -- the conversation -----------------------------------------------------------------
    with gr.Column(visible=False, elem_id="practice-session") as session_view:
        brief = gr.HTML(elem_id="session-brief")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=480):
                chat = gr.Chatbot(height=330, label="Conversation", show_label=False,
                                  elem_id="chat", buttons=[], feedback_options=None,
                                  layout="bubble", render_markdown=False)
                with gr.Row(equal_height=True):
                    text = gr.Textbox(placeholder="What do you say to the client? "
                                      "(Enter to send, Shift+Enter for a new line)",
                                      show_label=False, lines=1, max_lines=4, scale=5,
                                      elem_id="say")
                    send = gr.Button("Send", variant="primary", scale=1, min_width=90,
                                     elem_id="send")
                notice = gr.HTML(elem_id="say-notice")
                with gr.Row():
                    rewind = gr.Button("↶ Try that turn again", size="sm", elem_id="rewind")
                    retry = gr.Button("Ask the client again", size="sm", visible=False,
                                      elem_id="retry")
                    end = gr.Button("End session", variant="stop", size="sm", elem_id="end")
            with gr.Column(scale=2, min_width=340):
                gr.Markdown("#### Coach")
                coach = gr.HTML(elem_id="coach")
        timer = gr.Timer(2.0, active=False)

    # -- after the session: self-rating, then the report -----------------------------------
    with gr.Column(visible=False, elem_id="practice-report") as report_view:
        end_warning = gr.HTML(elem_id="end-warning")
        with gr.Column(visible=True, elem_id="self-rating") as rate_box:
            gr.Markdown("### Before you read the report: how do you think it went?\n"
                        "Optional. Your ratings are shown beside the grader's, so you can see "
                        "where your own sense of the session matches and where it does not.")
            sliders = [gr.Slider(1, 5, value=3, step=1, visible=False, elem_id=f"self-{i}")
                       for i in range(MAX_SELF_ITEMS)]
            self_note = gr.Textbox(label="Anything you noticed about your session?", lines=2,
                                   elem_id="self-note")
            with gr.Row():
                rate = gr.Button("Save my rating and show the report", variant="primary",
                                 elem_id="self-save")
                skip = gr.Button("Skip to the report", elem_id="self-skip")
        with gr.Column(visible=False, elem_id="report-box") as report_box:
            with gr.Row(equal_height=True):
                gr.Markdown("### Your feedback report")
                download = gr.HTML(elem_id="report-download")
                again = gr.Button("Practise again", size="sm", variant="primary",
                                  elem_id="again")
            report = gr.HTML(elem_id="report")

    # -- handlers ------------------------------------------------------------------------------

    def user_of(request: gr.Request) -> Any:
        return require(ctx.store, request, PRACTISE)

    def cards_for(selected: str | None = None) -> tuple[str, Any, Any]:
        """Cards with one selected, the client dropdown, and the rubrics that client offers."""
        lib = ctx.library()
        ps = [PersonaCard.of(p) for p in sorted(lib.personas.values(),
                                                key=lambda p: (p.difficulty, p.title))]
        choices = [(c.title, c.id) for c in ps]
        value = selected if selected in lib.personas else (ps[0].id if ps else None)
        rubrics, default = rubric_choices(ctx, value)
        return (render.persona_cards(ps, value), gr.Dropdown(choices=choices, value=value),
                gr.Dropdown(choices=rubrics, value=default))

    def unfinished(user: Any) -> tuple[Any, Any, str]:
        """The resume picker, its box (shown only when there is something to resume), a head."""
        sessions = ctx.store.list_sessions(trainee=user.name, status="active", limit=20)
        lib = ctx.library()
        choices = []
        for s in sessions:
            title = lib.personas[s.persona_id].title if s.persona_id in lib.personas \
                else s.persona_id
            choices.append((f"{title} · started {s.created[:16].replace('T', ' ')} UTC · "
                            f"{s.n_turns // 2} of your turns · {s.mode}", s.session_id))
        n = len(choices)
        head = (f'<div class="cs-resume-head"><b>Continue where you left off</b> '
                f'<span class="cs-muted">Unfinished sessions ({n}): pick one and press Resume, '
                "or choose a new client below.</span></div>")
        return (gr.Dropdown(choices=choices, value=choices[0][1] if choices else None),
                gr.Column(visible=bool(choices)), head if choices else "")

    def on_load(request: gr.Request) -> tuple[Any, ...]:
        user = user_of(request)
        return (*cards_for(), *unfinished(user))

    def pick(persona_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        user_of(request)
        html, _, rubrics = cards_for(persona_id)
        return html, rubrics

    def card_clicked(evt: gr.EventData, request: gr.Request) -> Any:
        """A click (or Enter) on a card selects that client; the dropdown follows."""
        user_of(request)
        persona_id = getattr(evt, "persona", None)
        if not isinstance(persona_id, str) or persona_id not in ctx.library().personas:
            return gr.skip()
        return gr.Dropdown(value=persona_id)

    def coach_html(session_id: str) -> str:
        session = ctx.store.get_session(session_id)
        if session.mode != "coach":
            return ('<p class="cs-muted">Assessment mode: the grader is quietly coding your '
                    "turns. Your feedback comes in the report when you end the session.</p>")
        return render_coach(ctx, session_id)

    def open_view(session_id: str) -> tuple[Any, ...]:
        session = ctx.store.get_session(session_id)
        lib = ctx.library()
        persona_obj = lib.personas.get(session.persona_id)
        rubric_obj = lib.rubrics.get(session.rubric_id)
        brief_html = (render.brief(PersonaCard.of(persona_obj), session.mode,
                                   rubric=rubric_obj.title if rubric_obj else session.rubric_id,
                                   session_id=session_id) if persona_obj
                      else render.problem("This client's persona file is no longer available."))
        turns = ctx.store.current_turns(session_id)
        return (session_id, gr.Column(visible=False), gr.Column(visible=True),
                gr.Column(visible=False), brief_html, chat_messages(turns),
                coach_html(session_id), gr.Timer(active=session.mode == "coach"), "",
                gr.Button(visible=_awaiting_reply(turns)), "")

    view_outputs = [sid, choose_view, session_view, report_view, brief, chat, coach, timer, text,
                    retry, notice]

    def start_fn(persona_id: str | None, rubric_id: str | None, mode_value: str,
                 request: gr.Request) -> tuple[Any, ...]:
        user = user_of(request)
        lib = ctx.library()
        if not persona_id or persona_id not in lib.personas:
            raise gr.Error("Choose a client first.", print_exception=False)
        if mode_value not in ("coach", "assessment"):
            raise Denied("Unknown mode.")
        offered, default = rubric_choices(ctx, persona_id)
        if rubric_id not in {value for _, value in offered}:
            rubric_id = default
        session_id = ctx.practice.start(user.name, persona_id, rubric_id=rubric_id,
                                        mode="coach" if mode_value == "coach" else "assessment")
        return open_view(session_id)

    def resume_fn(session_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Public API ``/open_session``: reopen one of *your own* sessions (refused otherwise)."""
        user = user_of(request)
        check_own_session(ctx.practice, session_id, user)
        assert session_id is not None
        if ctx.store.get_session(session_id).status != "active":
            raise gr.Error("That session has ended; its report is in My progress.",
                           print_exception=False)
        return open_view(session_id)

    async def send_fn(session_id: str | None, message: str, shown: list[Any] | None,
                      request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        """Send a turn and stream the reply. A refusal (empty, too long, not saved, no access)
        is a notice under the box: the conversation stays as it was, the text stays typed."""
        try:
            user = user_of(request)
            session_id = check_own_session(ctx.practice, session_id, user)
            said = clean_turn_text(message or "")
        except (gr.Error, TurnRejected) as exc:
            yield gr.skip(), gr.skip(), gr.skip(), gr.skip(), render.notice(_words(exc))
            return
        turns = ctx.store.current_turns(session_id)
        history = chat_messages(turns)
        pending = {"role": "user", "content": literal(said)}
        reply = {"role": "assistant", "content": "…"}
        # a browser always shows the client's opening line; an empty chat is an API caller
        # that did not say what it saw (Gradio turns None into []): then nothing is checked
        seen = len(shown) if shown else None
        # the same words sent from the same view (Enter then Send, a double click) are one send
        key = send_key(session_id, seen, message or "") if seen is not None else None
        text_out = ""
        problems: list[str] = []
        sent_at = 0.0
        try:
            async for ev in ctx.practice.turn(session_id, user.name, said, key=key, seen=seen):
                if ev.kind == "duplicate":
                    return
                if ev.kind == "stored":  # committed: only now is the box cleared
                    yield [*history, pending, reply], "", gr.skip(), gr.Button(visible=False), ""
                elif ev.kind == "token":
                    text_out += ev.text
                    if time.monotonic() - sent_at < STREAM_EVERY_S:
                        continue
                    sent_at = time.monotonic()
                    reply = {"role": "assistant", "content": literal(text_out)}
                    yield [*history, pending, reply], gr.skip(), gr.skip(), gr.skip(), gr.skip()
                elif ev.kind == "error":
                    problems.append(ev.text)
        except TurnRejected as exc:  # nothing was stored: the text goes back in the box
            yield history, message, gr.skip(), gr.skip(), render.notice(_words(exc))
            return
        turns = ctx.store.current_turns(session_id)
        # the box was cleared when the turn was stored: what the trainee has typed since (the
        # next turn, while the reply streamed) stays
        yield (chat_messages(turns), gr.skip(), coach_html(session_id),
               gr.Button(visible=bool(problems) or _awaiting_reply(turns)),
               render.notice(" ".join(problems)) if problems else "")

    async def retry_fn(session_id: str | None,
                       request: gr.Request) -> AsyncIterator[tuple[Any, ...]]:
        try:
            user = user_of(request)
            session_id = check_own_session(ctx.practice, session_id, user)
        except gr.Error as exc:
            yield gr.skip(), gr.skip(), gr.skip(), render.notice(_words(exc))
            return
        turns = ctx.store.current_turns(session_id)
        history = chat_messages(turns)
        text_out = ""
        problems: list[str] = []
        sent_at = 0.0
        try:
            async for ev in ctx.practice.reply(session_id, user.name):
                if ev.kind == "token":
                    text_out += ev.text
                    if time.monotonic() - sent_at < STREAM_EVERY_S:
                        continue
                    sent_at = time.monotonic()
                    yield ([*history, {"role": "assistant", "content": literal(text_out)}],
                           gr.skip(), gr.skip(), "")
                elif ev.kind == "error":
                    problems.append(ev.text)
        except TurnRejected as exc:
            yield gr.skip(), gr.skip(), gr.skip(), render.notice(_words(exc))
            return
        turns = ctx.store.current_turns(session_id)
        yield (chat_messages(turns), coach_html(session_id),
               gr.Button(visible=bool(problems) or _awaiting_reply(turns)),
               render.notice(" ".join(problems)) if problems else "")

    def rewind_fn(session_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Take the last turn back into the box; said in a notice under it, not over the page."""
        try:
            user = user_of(request)
            session_id = check_own_session(ctx.practice, session_id, user)
            turns = ctx.store.current_turns(session_id)
            mine = [t for t in turns if t.speaker == "counselor"]
            if not mine:
                raise TurnRejected("There is no turn of yours to try again yet.")
            last = mine[-1]
            ctx.practice.rewind(session_id, user.name, last.idx)
        except (gr.Error, TurnRejected) as exc:
            return gr.skip(), gr.skip(), gr.skip(), gr.skip(), render.notice(_words(exc))
        turns = ctx.store.current_turns(session_id)
        said = render.notice("Your last turn is back in the box: change it and send again. "
                             "Your supervisor can still see the first try.", kind="info")
        return (chat_messages(turns), last.text, coach_html(session_id),
                gr.Button(visible=False), said)

    def tick(session_id: str | None, request: gr.Request) -> Any:
        if not session_id:
            return gr.skip()
        user = user_of(request)
        session_id = check_own_session(ctx.practice, session_id, user)
        return coach_html(session_id)

    async def end_fn(session_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        user = user_of(request)
        session_id = check_own_session(ctx.practice, session_id, user)
        with contextlib.suppress(TurnRejected):  # already ended (a second click): report anyway
            # on the app's loop, so the session-level grade runs beside it (never waited for)
            await ctx.practice.end_async(session_id, user.name)
        items = ctx.practice.self_rating_items(session_id)
        updates = []
        for i in range(MAX_SELF_ITEMS):
            if i < len(items):
                it = items[i]
                mid = (it.min + it.max) // 2
                updates.append(gr.Slider(minimum=it.min, maximum=it.max, value=mid, step=1,
                                         label=it.title, info=_anchor_span(it), visible=True))
            else:
                updates.append(gr.Slider(visible=False))
        return (gr.Column(visible=False), gr.Column(visible=True), gr.Timer(active=False),
                gr.Column(visible=True), gr.Column(visible=False),
                risk_panel(ctx, session_id), *updates)

    def show_report(session_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        user = user_of(request)
        session_id = check_own_session(ctx.practice, session_id, user)
        html_doc, url = ctx.report(session_id)
        return (gr.Column(visible=False), gr.Column(visible=True), render.report_frame(html_doc),
                render.download_link(url))

    def rate_fn(session_id: str | None, note: str, s0: Any, s1: Any, s2: Any, s3: Any, s4: Any,
                s5: Any, request: gr.Request) -> tuple[Any, ...]:
        user = user_of(request)
        session_id = check_own_session(ctx.practice, session_id, user)
        ctx.practice.rate_self(session_id, user, [s0, s1, s2, s3, s4, s5], note)
        return show_report(session_id, request)

    def again_fn(persona_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        user = user_of(request)
        return (None, gr.Column(visible=True), gr.Column(visible=False), gr.Column(visible=False),
                *cards_for(persona_id), *unfinished(user), [], "")

    private: dict[str, Any] = {"api_visibility": "private"}
    persona.change(pick, [persona], [cards, rubric], show_progress="hidden", **private)
    cards.click(card_clicked, None, [persona], show_progress="hidden", **private)
    start.click(start_fn, [persona, rubric, mode], view_outputs, show_progress="hidden",
                **private)
    resume.click(resume_fn, [resume_pick], view_outputs, api_name="open_session",
                 show_progress="hidden",
                 api_description="Reopen one of your own unfinished sessions by its id.")
    for trigger in (send.click, text.submit):
        trigger(send_fn, [sid, text, chat], [chat, text, coach, retry, notice],
                show_progress="hidden", **private)
    retry.click(retry_fn, [sid], [chat, coach, retry, notice], show_progress="hidden",
                **private)
    rewind.click(rewind_fn, [sid], [chat, text, coach, retry, notice], show_progress="hidden",
                 **private)
    timer.tick(tick, [sid], [coach], show_progress="hidden", **private)
    end.click(end_fn, [sid], [session_view, report_view, timer, rate_box, report_box, end_warning,
                              *sliders], **private)
    skip.click(show_report, [sid], [rate_box, report_box, report, download], **private)
    rate.click(rate_fn, [sid, self_note, *sliders], [rate_box, report_box, report, download],
               **private)
    choose_outputs = [cards, persona, rubric, resume_pick, resume_box, resume_head]
    again.click(again_fn, [persona], [sid, choose_view, session_view, report_view,
                                      *choose_outputs, chat, text], **private)
    return {"load": (on_load, None, choose_outputs),
            "check_session": check_session}


def rubric_choices(ctx: WebContext, persona_id: str | None) -> tuple[list[tuple[str, str]],
                                                                     str | None]:
    """The rubrics a session with this client may be scored with (title, id), and the default.

    A persona that names its rubrics (``rubrics`` and ``default_rubric``) limits the choice to
    those; otherwise every rubric in the library is offered, with the settings' default rubric
    preselected.
    """
    lib = ctx.library()
    persona = lib.personas.get(persona_id or "")
    allowed = [r for r in (persona.rubrics if persona else []) if r in lib.rubrics]
    ids = allowed or sorted(lib.rubrics, key=lambda r: lib.rubrics[r].title)
    preferred = [persona.default_rubric if persona else None, ctx.settings.rubric]
    default = next((r for r in preferred if r in ids), ids[0] if ids else None)
    return [(lib.rubrics[r].title, r) for r in ids], default


def _words(exc: BaseException) -> str:
    """The message of a refusal (``gr.Error`` keeps it in ``message``)."""
    return str(getattr(exc, "message", None) or exc)


def send_key(session_id: str, seen: int, message: str) -> str:
    """The idempotency key of a send: which session, after how many turns, which words."""
    import hashlib

    return hashlib.sha256(f"{session_id}\0{seen}\0{message.strip()}".encode()).hexdigest()[:32]


def _awaiting_reply(turns: list[Any]) -> bool:
    return bool(turns) and turns[-1].speaker == "counselor"


def _anchor_span(item: Any) -> str:
    anchors = sorted(item.anchors, key=lambda a: a.score)
    if len(anchors) < 2:
        return ""
    lo, hi = anchors[0], anchors[-1]
    return f"{lo.score}: {_short(lo.description)}   {hi.score}: {_short(hi.description)}"


def _short(text: str, limit: int = 70) -> str:
    """First sentence, cut at a word boundary."""
    first = text.split(". ")[0].rstrip(".")
    if len(first) <= limit:
        return first
    return first[:limit].rsplit(" ", 1)[0] + "…"


def render_coach(ctx: WebContext, session_id: str) -> str:
    """One card per trainee turn: codes, a one-line rationale, a better alternative (escaped)."""
    e = render.e
    session = ctx.store.get_session(session_id)
    lib = ctx.library()
    rubric = lib.rubrics.get(session.rubric_id)
    names: dict[str, str] = {}
    coaching: dict[str, str] = {}
    if rubric is not None:
        for item in rubric.turn_items:
            for c in item.codes:
                names[c.id] = c.name
                coaching[c.id] = c.coaching
    effective = ctx.store.effective_codes(session_id)
    if not effective:
        return ('<p class="cs-muted">Feedback on each of your turns will appear here as soon as '
                "it is ready. Start by greeting the client.</p>")
    from simulator.reports.render import stored_labels, strip_quote

    out = []
    for n, et in enumerate(effective, start=1):
        said = et.turn.text if len(et.turn.text) <= 90 else et.turn.text[:87] + "…"
        codes = []
        for item_id, value in et.values.items():
            if value is None or value is False:
                continue
            label = names.get(str(value), str(value)) if not isinstance(value, bool) else item_id
            cls = "cs-code cs-corrected" if et.sources.get(item_id) == "supervisor" else "cs-code"
            codes.append(f'<span class="{cls}" title="{e(item_id)}">{e(value)}</span>'
                         f'<span class="cs-muted">{e(label)}</span> ')
        grade = et.grade
        if grade is None or grade.status == "pending":
            body = '<div class="cs-muted">Grading this turn…</div>'
            cls_turn = "cs-coach-turn cs-pending"
        else:
            rationale = strip_quote(grade.rationale, et.turn.text) or next(
                (coaching[str(v)] for v in et.values.values() if coaching.get(str(v))), "")
            alt = (f'<div class="cs-alt"><b>Try:</b> {e(grade.alternative)}</div>'
                   if grade.alternative else "")
            failed = ('<div class="cs-muted">The grader could not score this turn; the codes '
                      "above are the quick coder's.</div>" if grade.status == "failed" else "")
            body = f"<div>{_care_lines(e(rationale))}</div>{alt}{failed}"
            cls_turn = "cs-coach-turn"
        utts = [u for u in (stored_labels(ctx.store, et.turn.id) or {}).get("utterances") or []
                if isinstance(u, dict) and u.get("behaviour")]
        by_utt = ('<div class="cs-muted">By utterance: ' + " · ".join(
            f'<span class="cs-code">{e(u["behaviour"])}</span> “{e(str(u.get("text", "")))}”'
            for u in utts) + "</div>") if len(utts) >= 2 else ""
        out.append(f'<div class="{cls_turn}" data-turn="{int(et.turn.idx)}">'
                   f'<div class="cs-said">Turn {n}: “{e(said)}”</div>'
                   f'<div>{"".join(codes)}</div>{by_utt}{body}</div>')
    return (f'{risk_panel(ctx, session_id)}'
            f'<div class="cs-coach">{"".join(reversed(out))}</div>')


def risk_panel(ctx: WebContext, session_id: str) -> str:
    """The persona's risk items in the coach panel: a quiet "still to assess" list while the
    session runs, a prominent warning once it has ended without them, and a warning for a risk
    disclosure the trainee's next turn moved away from. Empty when there is nothing to say."""
    from simulator.service.feedback import session_risk_review

    e = render.e
    session = ctx.store.get_session(session_id)
    review = session_risk_review(ctx.store, session)
    if review is None:
        return ""
    spoke = any(t.speaker == "counselor" for t in ctx.store.current_turns(session_id))
    parts = []
    missing = review.not_assessed
    ended = session.status == "ended"
    if missing and ended:
        parts.append('<div class="cs-risk-warning" role="alert"><b>⚠ Risk not assessed.</b> '
                     "The session ended without asking about: "
                     + "; ".join(e(c.item) for c in missing)
                     + ". Ask directly and plainly next time; asking does not put the idea in "
                     "anyone's head.</div>")
    elif missing and spoke:
        parts.append('<div class="cs-muted"><b>Still to assess:</b> '
                     + "; ".join(e(c.item) for c in missing) + "</div>")
    for d in review.missed_disclosures:
        parts.append('<div class="cs-risk-warning" role="alert"><b>⚠ Risk disclosure not '
                     f"followed up.</b> The client said “{e(d.text)}” and the next turn moved "
                     "on. Stay with it: reflect it, then ask about it directly.</div>")
    return "".join(parts)


def _care_lines(escaped: str) -> str:
    """Put the coaching's "Why it matters" and "What to try" on lines of their own (the words
    come from feedback/coach_alternatives.j2; other wording is shown as it is)."""
    for label in ("Why it matters:", "What to try next:", "What to try:"):
        escaped = escaped.replace(f" {label} ", f"<br><b>{label}</b> ", 1)
    return escaped
