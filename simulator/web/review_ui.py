"""Review tab (supervisors, admins): cohort sessions, search, transcripts, corrections, agreement.

A supervisor sees the sessions of trainees in their own cohort, nothing else: the list, the
search and every session-id input are scoped on the server (``service.access``). A correction
is validated by ``service.reviews`` against the rubric version the session ran with and stored
beside the machine's value, never over it; the report is rebuilt from the effective values.
"""

from __future__ import annotations

from html import escape
from typing import Any

import gradio as gr
import pandas as pd

from simulator.reports.agreement import cohort_agreement
from simulator.reports.render import strip_said
from simulator.service import reviews
from simulator.service.access import review_scope
from simulator.service.regrade import session_rubric
from simulator.web import render
from simulator.web.access import ADMIN, REVIEW, check_session, require, shown
from simulator.web.context import WebContext

COLUMNS = ["Started (UTC)", "Trainee", "Client", "Mode", "Status", "Trainee turns",
           "Session id"]
COLUMN_WIDTHS: list[str | int] = ["150px", "120px", "250px", "100px", "80px", "80px", "300px"]
"""Fixed widths: no word is broken or cut; on a narrow screen the table scrolls sideways."""
ANY = "(any)"


def build(ctx: WebContext) -> dict[str, Any]:
    with gr.Row(equal_height=True):
        f_trainee = gr.Dropdown(choices=[ANY], value=ANY, label="Trainee", scale=1,
                                elem_id="rv-trainee")
        f_persona = gr.Dropdown(choices=[ANY], value=ANY, label="Client", scale=1,
                                elem_id="rv-persona")
        f_status = gr.Dropdown(choices=[ANY, "active", "ended"], value=ANY, label="Status",
                               scale=1, elem_id="rv-status")
        f_query = gr.Textbox(label="Search what was said", placeholder="e.g. drinking",
                             scale=2, elem_id="rv-query")
        f_go = gr.Button("Search", scale=0, min_width=90, elem_id="rv-go")
    table = gr.Dataframe(headers=COLUMNS, interactive=False, max_height=220, wrap=True,
                         column_widths=COLUMN_WIDTHS,
                         elem_id="rv-table", label="Sessions (click a row to open it)")
    hits = gr.HTML(elem_id="rv-hits", js_on_load=HITS_JS)
    focus = gr.State(None)  # the turn a search hit asked to open
    with gr.Row(equal_height=True):
        pick = gr.Dropdown(choices=[], label="Session", allow_custom_value=True, scale=4,
                           elem_id="rv-pick")
        open_btn = gr.Button("Open", variant="primary", scale=0, min_width=90, elem_id="rv-open")
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=480):
            transcript = gr.HTML(elem_id="rv-transcript")
        with gr.Column(scale=2, min_width=340):
            gr.Markdown("#### Correct a code")
            c_turn = gr.Dropdown(choices=[], label="Trainee turn", elem_id="rv-turn")
            with gr.Row():
                c_item = gr.Dropdown(choices=[], label="Item", elem_id="rv-item")
                c_value = gr.Dropdown(choices=[], label="Correct code", elem_id="rv-value")
            c_comment = gr.Textbox(label="Comment (optional)", lines=2, elem_id="rv-comment")
            c_save = gr.Button("Save correction", variant="primary", elem_id="rv-save")
            gr.Markdown("#### Correct a session score")
            with gr.Row():
                s_item = gr.Dropdown(choices=[], label="Score", elem_id="rv-sitem")
                s_value = gr.Number(label="Corrected score", precision=1, minimum=1, maximum=5,
                                    elem_id="rv-svalue")
            s_save = gr.Button("Save score", elem_id="rv-ssave")
            status = gr.HTML(elem_id="rv-saved")
    with gr.Accordion("Report (rebuilt with corrections)", open=True):
        download = gr.HTML(elem_id="rv-download")
        report = gr.HTML(elem_id="rv-report")
    with gr.Accordion("Agreement between supervisors and the machine", open=False):
        agree_btn = gr.Button("Compute agreement over my cohort", size="sm",
                              elem_id="rv-agree-go")
        agreement = gr.HTML(elem_id="rv-agree")

    def me(request: gr.Request) -> Any:
        return require(ctx.store, request, REVIEW)

    def scope(user: Any) -> str | None:
        """The cohort this reviewer may see (admins: every cohort)."""
        return shown(lambda: review_scope(user))

    def sessions_of(user: Any, trainee: str = ANY, persona: str = ANY,
                    status_value: str = ANY) -> list[Any]:
        kw: dict[str, Any] = {"cohort": scope(user), "limit": 500}
        if trainee != ANY:
            kw["trainee"] = trainee
        if persona != ANY:
            kw["persona_id"] = persona
        if status_value in ("active", "ended"):
            kw["status"] = status_value
        return list(ctx.store.list_sessions(**kw))

    def frame(sessions: list[Any]) -> pd.DataFrame:
        lib = ctx.library()
        rows = [[s.created[:16].replace("T", " "), s.trainee,
                 lib.personas[s.persona_id].title if s.persona_id in lib.personas
                 else s.persona_id, s.mode, s.status, s.n_turns // 2, s.session_id]
                for s in sessions]
        return pd.DataFrame(rows, columns=COLUMNS)

    def choices_for(sessions: list[Any]) -> list[tuple[str, str]]:
        return [(f"{s.trainee} · {ctx.persona_title(s.persona_id)} · "
                 f"{s.created[:16].replace('T', ' ')} UTC", s.session_id) for s in sessions]

    def on_load(request: gr.Request) -> tuple[Any, ...]:
        user = me(request)
        cohort = None if user.role == ADMIN else user.cohort
        trainees = [u.name for u in ctx.store.list_users(role="trainee", cohort=cohort)] \
            if (cohort or user.role == ADMIN) else []
        sessions = sessions_of(user) if (cohort or user.role == ADMIN) else []
        lib = ctx.library()
        personas = sorted(((p.title, p.id) for p in lib.personas.values()),
                          key=lambda c: c[0].lower())
        return (gr.Dropdown(choices=[ANY, *trainees], value=ANY),
                gr.Dropdown(choices=[(ANY, ANY), *personas], value=ANY), frame(sessions),
                gr.Dropdown(choices=choices_for(sessions), value=None))

    def filter_fn(trainee: str, persona: str, status_value: str, query: str,
                  request: gr.Request) -> tuple[Any, ...]:
        user = me(request)
        sessions = sessions_of(user, trainee, persona, status_value)
        hits_html = ""
        if query and query.strip():
            found = ctx.store.search_turns(query.strip()[:200], cohort=scope(user), limit=50)
            ids = {h.turn.session_id for h in found}
            sessions = [s for s in sessions if s.session_id in ids]
            hits_html = _hits(found, ctx)
        return frame(sessions), hits_html, gr.Dropdown(choices=choices_for(sessions))

    def select_row(df: pd.DataFrame, evt: gr.SelectData, request: gr.Request) -> Any:
        me(request)
        try:
            row = evt.index[0] if isinstance(evt.index, list | tuple) else int(evt.index)
            return str(df.iloc[int(row)]["Session id"])
        except (IndexError, KeyError, TypeError, ValueError):
            return gr.skip()

    def open_fn(session_id: str | None, request: gr.Request,
                focus_turn: str | None = None) -> tuple[Any, ...]:
        """Public API ``/transcript``: a session's transcript and report, if you may review it."""
        user = me(request)
        session_id = check_session(ctx.practice, session_id, user)
        session = ctx.store.get_session(session_id)
        rubric = ctx.library().rubrics.get(session.rubric_id)
        turns = [(f"Turn {n}: {et.turn.text[:60]}", str(et.turn.id))
                 for n, et in enumerate(ctx.store.effective_codes(session_id), start=1)]
        items = [(it.title, it.id) for it in rubric.turn_items if it.kind == "categorical"] \
            if rubric else []
        sitems = [(it.title, it.id) for it in rubric.session_items] if rubric else []
        html_doc, url = ctx.report(session_id)
        first_item = items[0][1] if items else None
        first_score = sitems[0][1] if sitems else None
        turn_ids = {value for _, value in turns}
        chosen = focus_turn if focus_turn in turn_ids else (turns[-1][1] if turns else None)
        return (transcript_html(ctx, session_id),
                gr.Dropdown(choices=turns, value=chosen),
                gr.Dropdown(choices=items, value=first_item),
                value_choices(session_id, first_item),
                gr.Dropdown(choices=sitems, value=first_score),
                score_box(user, session_id, first_score),
                render.report_frame(html_doc), render.download_link(url), "")

    def open_if(session_id: str | None, focus_turn: str | None,
                request: gr.Request) -> tuple[Any, ...]:
        if not session_id:
            return tuple(gr.skip() for _ in range(9))
        return open_fn(session_id, request, focus_turn)

    def score_box(user: Any, session_id: str, item_id: str | None) -> Any:
        """The score box starts at the value the report shows (the machine's, or an earlier
        correction), within the item's own scale, and says what the machine gave."""
        scores = shown(lambda: reviews.session_item_scores(ctx.store, user, session_id))
        item = next((it for it in scores if it.id == item_id), None)
        if item is None:
            return gr.Number(value=None, info=None)
        corrected = item.source == "supervisor"
        machine = item.machine_score if corrected else item.score
        source = {"grader": "the grader's", "supervisor": "before correction"}.get(
            str(item.source), "an estimate from the turn codes")
        said = ("no machine score yet" if machine is None else
                f"machine's value {_one(machine)} ({source})")
        if corrected and item.score is not None:
            said += f"; corrected to {_one(item.score)}"
        value = None if item.score is None else float(_one(item.score))
        return gr.Number(value=value, minimum=item.min, maximum=item.max,
                         info=f"Scale {item.min}-{item.max}; {said}.")

    def score_item_changed(session_id: str | None, item_id: str | None,
                           request: gr.Request) -> Any:
        user = me(request)
        if not session_id:
            return gr.skip()
        return score_box(user, check_session(ctx.practice, session_id, user), item_id)

    def hit_clicked(evt: gr.EventData, current: str | None, request: gr.Request
                    ) -> tuple[Any, ...]:
        """A search hit opens its session at that turn (the same access check as Open)."""
        user = me(request)
        session_id = getattr(evt, "session", None)
        turn_id = str(getattr(evt, "turn", "") or "")
        if not isinstance(session_id, str):
            return gr.skip(), gr.skip(), gr.skip()
        session_id = check_session(ctx.practice, session_id, user)
        same = session_id == current
        return (gr.Dropdown(value=session_id), turn_id,
                gr.Dropdown(value=turn_id) if same and turn_id else gr.skip())

    def value_choices(session_id: str, item_id: str | None) -> Any:
        session = ctx.store.get_session(session_id)
        rubric = ctx.library().rubrics.get(session.rubric_id)
        if rubric is None or item_id is None:
            return gr.Dropdown(choices=[], value=None)
        item = next((it for it in rubric.turn_items if it.id == item_id), None)
        codes = [(f"{c.id} · {c.name}", c.id) for c in item.codes] if item else []
        return gr.Dropdown(choices=codes, value=None)

    def item_changed(session_id: str | None, item_id: str | None, request: gr.Request) -> Any:
        user = me(request)
        if not session_id:
            return gr.Dropdown(choices=[], value=None)
        session_id = check_session(ctx.practice, session_id, user)
        return value_choices(session_id, item_id)

    def save_code(session_id: str | None, turn_id: str | None, item_id: str | None,
                  value: str | None, comment: str, request: gr.Request) -> tuple[Any, ...]:
        user = me(request)
        review = shown(lambda: reviews.correct_turn(ctx.store, user, session_id or "", turn_id,
                                                    item_id, value, comment))
        sid = review.session_id
        title = title_of(sid, review.item_id, turn=True)
        html_doc, url = ctx.report(sid)
        return (transcript_html(ctx, sid), render.report_frame(html_doc),
                render.download_link(url),
                render.ok(f"Saved: {title} = {value}. The machine's code is kept beside it."),
                "")

    def save_score(session_id: str | None, item_id: str | None, value: float | None,
                   comment: str, request: gr.Request) -> tuple[Any, ...]:
        user = me(request)
        review = shown(lambda: reviews.score_session_item(ctx.store, user, session_id or "",
                                                          item_id, value, comment))
        sid = review.session_id
        title = title_of(sid, review.item_id, turn=False)
        html_doc, url = ctx.report(sid)
        return (transcript_html(ctx, sid), render.report_frame(html_doc),
                render.download_link(url),
                render.ok(f"Saved: {title} = {float(value or 0):g}. The machine's value is "
                          "kept beside it."), "", score_box(user, sid, review.item_id))

    def title_of(session_id: str, item_id: str | None, *, turn: bool) -> str:
        rubric = session_rubric(ctx.store, session_id)
        items = rubric.turn_items if turn else rubric.session_items
        return next((it.title for it in items if it.id == item_id), str(item_id))

    def agree_fn(request: gr.Request) -> str:
        user = me(request)
        result = cohort_agreement(ctx.store, sessions_of(user))
        return _agreement_html(result)

    private: dict[str, Any] = {"api_visibility": "private"}
    filters = [f_trainee, f_persona, f_status, f_query]
    for trigger in (f_go.click, f_query.submit, f_trainee.change, f_persona.change,
                    f_status.change):
        trigger(filter_fn, filters, [table, hits, pick], **private)
    table.select(select_row, [table], [pick], **private)
    opened = [transcript, c_turn, c_item, c_value, s_item, s_value, report, download, status]
    open_btn.click(open_fn, [pick], opened, api_name="transcript", show_progress="hidden",
                   api_description="Transcript and report of a session you may review.")
    pick.change(open_if, [pick, focus], opened, **private)
    hits.click(hit_clicked, [pick], [pick, focus, c_turn], **private)
    s_item.change(score_item_changed, [pick, s_item], [s_value], **private)
    c_item.change(item_changed, [pick, c_item], [c_value], **private)
    c_save.click(save_code, [pick, c_turn, c_item, c_value, c_comment],
                 [transcript, report, download, status, c_comment], **private)
    s_save.click(save_score, [pick, s_item, s_value, c_comment],
                 [transcript, report, download, status, c_comment, s_value], **private)
    agree_btn.click(agree_fn, None, [agreement], **private)
    return {"load": (on_load, None, [f_trainee, f_persona, table, pick])}


HITS_JS = """
const open = (hit) => {
  if (!hit) return;
  trigger('click', {session: hit.dataset.session, turn: hit.dataset.turn});
  let tries = 0;  // scroll to the turn once the transcript shows it
  const look = setInterval(() => {
    const el = document.getElementById('rv-turn-' + hit.dataset.turn);
    if (el || ++tries > 40) {
      clearInterval(look);
      if (el) { el.scrollIntoView({block: 'center'}); el.classList.add('cs-focus'); }
    }
  }, 250);
};
element.addEventListener('click', (ev) => open(ev.target.closest('.cs-hit')));
element.addEventListener('keydown', (ev) => {
  if (ev.key === 'Enter' || ev.key === ' ') {
    const hit = ev.target.closest('.cs-hit');
    if (hit) { ev.preventDefault(); open(hit); }
  }
});
"""
"""A search hit opens its session at its turn: click, or Enter/Space on the focused hit."""


def _hits(found: list[Any], ctx: WebContext) -> str:
    if not found:
        return '<p class="cs-muted">No turn matches.</p>'
    items = []
    for h in found[:20]:
        snip = escape(h.snippet).replace("[[", "<mark>").replace("]]", "</mark>")
        items.append(
            f'<li class="cs-hit" role="button" tabindex="0" '
            f'data-session="{escape(h.turn.session_id)}" data-turn="{int(h.turn.id)}">'
            f"<b>{escape(h.trainee)}</b> · {escape(ctx.persona_title(h.persona_id))}: {snip}"
            "</li>")
    return (f'<p class="cs-muted">{len(found)} turn{"s" if len(found) != 1 else ""} found: '
            f'click one to open it.</p><ul class="cs-hits">{"".join(items)}</ul>')


def transcript_html(ctx: WebContext, session_id: str) -> str:
    """Every turn, current and abandoned: codes (machine and corrected), client act and state."""
    e = render.e
    session = ctx.store.get_session(session_id)
    effective = {et.turn.id: et for et in ctx.store.effective_codes(session_id)}
    codes_by_turn: dict[int, dict[str, Any]] = {}
    for t in ctx.store.all_turns(session_id):
        if t.speaker == "counselor" and t.id not in effective:
            recs = ctx.store.codes(t.id)
            if recs:
                codes_by_turn[t.id] = recs[-1].codes
    comments: dict[int | None, list[str]] = {}
    for rv in ctx.store.reviews(session_id):
        if rv.comment:
            comments.setdefault(rv.turn_id, []).append(f"{rv.reviewer}: {rv.comment}")
    # trainee turns numbered 1..n along the current branch, as the correction list and the
    # report number them; an abandoned try carries the number of the turn it was a try at
    number = {et.turn.id: n for n, et in enumerate(effective.values(), start=1)}
    by_idx = {et.turn.idx: n for n, et in enumerate(effective.values(), start=1)}
    rubric = ctx.library().rubrics.get(session.rubric_id)
    scored = rubric.title if rubric else session.rubric_id
    out = [f'<div class="cs-muted">{e(session.trainee)} · '
           f"{e(ctx.persona_title(session.persona_id))} · {e(session.mode)} mode · "
           f"{e(session.status)} · scored with {e(scored)} · id {e(session.session_id)}</div>"]
    for t in ctx.store.all_turns(session_id):
        if t.speaker == "counselor":
            n = number.get(t.id) or by_idx.get(t.idx)
            who = f"Trainee · Turn {n}" if n else "Trainee"
        else:
            who = "Client"
        cls = "cs-tturn cs-trainee" if t.speaker == "counselor" else "cs-tturn cs-client"
        extra = ""
        if t.abandoned_branch is not None:
            cls += " cs-abandoned"
            extra = f" · abandoned try (branch {int(t.abandoned_branch)})"
        meta = ""
        if t.speaker == "counselor":
            et = effective.get(t.id)
            values = et.values if et else codes_by_turn.get(t.id, {})
            chips = []
            for item_id, v in values.items():
                corrected = et is not None and item_id in et.corrections
                machine = et.machine.get(item_id) if et else v
                chip = (f'<span class="cs-code cs-corrected" title="corrected; machine said '
                        f'{e(machine)}">{e(v)} (was {e(machine)})</span>' if corrected
                        else f'<span class="cs-code" title="{e(item_id)}">{e(v)}</span>')
                chips.append(chip)
            meta = f'<div>{"".join(chips)}</div>'
            if et and et.grade and et.grade.rationale:
                why = strip_said(et.grade.rationale, t.text)
                meta += f'<div class="cs-state">{e(why)}</div>'
        else:
            state = t.state or {}
            parts = [f"act {t.act}" if t.act else ""]
            if t.fact_id:
                parts.append(f"disclosed {t.fact_id}")
            for k in ("rapport", "resistance"):
                if isinstance(state.get(k), int | float):
                    parts.append(f"{k} {float(state[k]):.2f}")
            if state.get("stage"):
                parts.append(f"stage {state['stage']}")
            meta = f'<div class="cs-state">{e(" · ".join(p for p in parts if p))}</div>'
        notes = "".join(f'<div class="cs-state">💬 {e(c)}</div>' for c in comments.get(t.id, []))
        out.append(f'<div class="{cls}" id="rv-turn-{int(t.id)}"><div class="cs-who">{e(who)}'
                   f"{e(extra)}</div><div>{e(t.text)}</div>{meta}{notes}</div>")
    general = comments.get(None, [])
    if general:
        out.append("".join(f'<div class="cs-state">💬 {e(c)}</div>' for c in general))
    return f'<div class="cs-transcript">{"".join(out)}</div>'


def _one(value: float) -> str:
    """A score as the report prints it: one decimal, no trailing .0."""
    return f"{float(value):.1f}".rstrip("0").rstrip(".")


SMALL_SAMPLE_TURNS = 30
"""Below this many reviewed turns a kappa moves a lot with one correction: read it as a hint."""


def _agreement_html(result: Any) -> str:
    e = render.e
    if not result.turns:
        return ('<p class="cs-muted">No reviewed sessions yet: agreement is computed over the '
                "turns of sessions a supervisor has reviewed.</p>")
    rows = "".join(
        f"<tr><td>{e(r.item_id)}</td><td>{e(r.code)}</td><td>{r.n}</td><td>{r.corrected}</td>"
        f"<td>{'n/a' if r.kappa is None else f'{r.kappa:.2f} (n={r.n})'}"
        f"{' <span class=cs-muted>' + e(r.note) + '</span>' if r.note else ''}</td></tr>"
        for r in result.rows)
    turns = f"{result.turns} trainee turn{'s' if result.turns != 1 else ''}"
    sessions = f"{result.sessions} reviewed session{'s' if result.sessions != 1 else ''}"
    small = ""
    if result.turns < SMALL_SAMPLE_TURNS:
        small = (f'<p class="cs-notice cs-notice-info">Small sample: {turns}. With fewer than '
                 f"{SMALL_SAMPLE_TURNS} reviewed turns one correction moves κ a lot; read it "
                 "as a first hint, not as the machine's accuracy.</p>")
    return (f'<div class="cs-kappa"><p class="cs-muted">{turns} in {sessions}. An uncorrected '
            f"turn counts as agreement.</p>{small}"
            "<table><tr><th>Item</th><th>Code</th><th>Turns</th><th>Corrected</th>"
            f"<th>Cohen's κ (n turns)</th></tr>{rows}</table></div>")
