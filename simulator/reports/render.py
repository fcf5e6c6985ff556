"""Session feedback reports: one ``Report`` model, rendered as HTML, Markdown or JSON.

``build_report`` gathers everything a report says from the store (current branch only, exact
persona and rubric versions the session recorded); ``render`` turns it into text through the
Jinja2 templates in ``feedback/`` (``report.html.j2``, ``report.md.j2``; educators may restyle
them) or as JSON (the model itself, so the web app and scripts read the same facts).

Wording is content, not code: strength and growth titles and advice come from the rubric's code
names and ``coaching`` lines, which turns are chosen comes from ``feedback/highlights.yaml``, and
the sentences around them live in the templates. Python only selects and counts.

Safety: templates autoescape (HTML); the only ``Markup`` is the SVG made by ``reports.charts``
from numbers and ids. Markdown output escapes HTML and Markdown syntax in quoted text. The HTML is
self-contained: inline CSS and SVG, no scripts, fonts, images or links to fetch.

Turn numbers: a report numbers the trainee's turns 1, 2, 3 ... (``turn`` fields, see
``trainee_turn_numbers``); a client line carries the number of the trainee turn it answers. ``idx``
fields keep the conversation position (both speakers, from 0) for scripts that join on it.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup
from pydantic import BaseModel

from simulator.content.persona import Persona
from simulator.content.rubric import Rubric
from simulator.grader import risk_review
from simulator.grader.scores import MIN_EVIDENCE, SessionScores, session_rubric, session_scores
from simulator.store import EffectiveTurn, Session, Store, Turn, Value

Format = Literal["html", "md", "json"]
FORMATS: tuple[str, ...] = ("html", "md", "json")


# ---------------------------------------------------------------- the report model


NO_TRAINEE_TURNS = ("No trainee turns yet: this session has no counselor turn to code or score. "
                    "Say something to the client, then open the report again.")
"""The report's message for a session the trainee has not spoken in (all three formats)."""

GlobalsStatus = Literal["not_needed", "offline", "at_end", "waiting", "pending", "graded"]


class Quote(BaseModel):
    idx: int
    """Position of the turn in the conversation (0-based, both speakers)."""
    turn: int
    """The trainee's turn number (1-based); for a client line, the trainee turn it answers."""
    text: str
    codes: list[str] = []
    client_reply: str | None = None


class Highlight(BaseModel):
    kind: Literal["strength", "growth"]
    codes: list[str]
    title: str
    """Names of the codes (from the rubric)."""
    coaching: list[str]
    """The rubric's coaching line for each code found."""
    count: int
    """Turns with these codes (or, for runs, the number of runs)."""
    run: int | None = None
    """For run rules: length of the longest run quoted."""
    quotes: list[Quote]


class FactStatus(BaseModel):
    id: str
    summary: str
    risk: bool
    elicited: bool
    quote: Quote | None = None


class RiskCheck(BaseModel):
    """A persona ``must_assess`` item: asked (the coder's risk topics or the keyword check, see
    ``grader.risk_review``), the risk topics it stands for and those nobody asked about."""

    item: str
    asked: bool
    quotes: list[Quote] = []
    topics: list[str] = []
    missing: list[str] = []
    touched: list[Quote] = []
    """Not asked, but these turns share a word with the item (check them in the transcript)."""


class RiskDisclosure(BaseModel):
    """A client turn that disclosed a risk fact, and the trainee's next turn."""

    client: Quote
    followed_up: bool
    reply: Quote | None = None
    """The trainee's next turn (None: the session ended first)."""


class UtteranceNote(BaseModel):
    """One utterance of a trainee turn and its code, when the coder segments turns."""

    text: str
    code: str


class Alternative(BaseModel):
    idx: int
    turn: int
    """The trainee's turn number (1-based)."""
    text: str
    alternative: str
    rationale: str = ""
    why: str = ""
    """The rationale without its leading quote of the turn (what the codes were, why it matters,
    what to try), so a report can show said / why / try without repeating the turn."""


class ReviewNote(BaseModel):
    reviewer: str
    created: str
    idx: int | None = None
    turn: int | None = None
    """The trainee's turn number on the turn's own branch; for a client line, the one it answers."""
    speaker: str | None = None
    abandoned_branch: int | None = None
    quote: str | None = None
    item_id: str | None = None
    item_title: str | None = None
    machine_value: Value = None
    corrected_value: Value = None
    has_correction: bool = False
    comment: str = ""


class RatingRow(BaseModel):
    id: str
    title: str
    self_score: float | None = None
    score: float | None = None
    source: str | None = None
    max: int


class TranscriptLine(BaseModel):
    idx: int
    turn: int
    """The trainee's turn number (counselor lines); for a client line, the one it answers."""
    speaker: str
    text: str
    codes: list[str] = []
    utterances: list[UtteranceNote] = []
    """Utterance-level codes (MITI codes each complete thought) when the coder gives them."""
    corrected: bool = False
    act: str | None = None
    fact_id: str | None = None
    rapport: float | None = None
    resistance: float | None = None
    reply_failed: str = ""
    """For a trainee turn the client never answered on this branch: why the client model
    failed (the message the trainee saw), so the transcript does not show two turns in a row
    without saying why."""


class Report(BaseModel):
    session: Session
    persona_title: str
    client_name: str
    rubric_title: str
    rubric_version: int
    rubric_citation: str
    generated: str
    scores: SessionScores
    strengths: list[Highlight]
    growth: list[Highlight]
    facts: list[FactStatus]
    risk_checks: list[RiskCheck]
    risk_disclosures: list[RiskDisclosure] = []
    risk_not_assessed: list[str] = []
    """``must_assess`` items nobody asked about: the report's warning at the top."""
    alternatives: list[Alternative]
    reviews: list[ReviewNote]
    self_rating: list[RatingRow]
    self_comment: str = ""
    transcript: list[TranscriptLine]
    abandoned_branches: int = 0
    abandoned_turns: int = 0
    trainee_turns: int = 0
    """Counselor turns on the current branch."""
    min_evidence: int = MIN_EVIDENCE
    """Events a ratio metric needs before it gets a verdict (``grader.scores.MIN_EVIDENCE``)."""
    notice: str = ""
    """A message to show before anything else (``NO_TRAINEE_TURNS`` when there are none)."""
    pending_turn_grades: int = 0
    """Trainee turns on this branch whose LLM grade is pending or failed (regrade finishes them)."""
    globals_status: GlobalsStatus = "not_needed"
    """Where the session-level (global) items stand: ``graded`` by the LLM grader; ``waiting``
    for the grade started when the session ended; ``pending`` when it failed or never started
    (``counselsim regrade`` finishes it); ``at_end`` while the session is active; ``offline``
    (estimates only); ``not_needed`` when the rubric has none or the trainee said nothing."""


# ---------------------------------------------------------------- highlight rules (content)


class HighlightRule(BaseModel):
    codes: list[str]
    run: int = 1
    """Growth rules: only runs of at least this many consecutive counselor turns count."""
    max_quotes: int = 2


class HighlightRules(BaseModel):
    strengths: list[HighlightRule] = []
    growth: list[HighlightRule] = []
    prefer_client_acts: list[str] = []
    """A strength quote is better when the client's next act is one of these (earlier = better)."""
    per_list: int = 3


def load_rules(feedback_dir: Path) -> HighlightRules:
    from ruamel.yaml import YAML

    path = feedback_dir / "highlights.yaml"
    if not path.exists():
        return HighlightRules()
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8")) or {}
    return HighlightRules.model_validate(data)


# ---------------------------------------------------------------- building


def session_persona(store: Store, session: Session) -> Persona:
    """The persona exactly as the session recorded it."""
    from simulator.content.loader import load_recorded

    content = store.get_content("persona", session.persona_id, session.persona_sha)
    return load_recorded(Persona, content.id, content.sha256, content.content)


def _shown_codes(rubric: Rubric, values: dict[str, Value]) -> list[str]:
    """Codes worth showing for a turn: categorical values other than the item's default."""
    out = []
    for item in rubric.turn_items:
        v = values.get(item.id)
        if item.kind == "categorical" and isinstance(v, str) and v != item.default_code:
            out.append(v)
    return out


def _state_value(turn: Turn, key: str) -> float | None:
    v = (turn.state or {}).get(key)
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def trainee_turn_numbers(every: list[Turn]) -> dict[int, int]:
    """Turn id -> the trainee's turn number as reports show it.

    The counselor's turns count 1, 2, 3 ... along the conversation a turn belongs to: the current
    branch, or for an abandoned branch the conversation as it stood when it was rewound (the
    turns before its first position come from the next later branch that holds them, else from
    the current branch). A client turn gets the number of the trainee turn it answers (0 for the
    client's opening).
    """
    branches: dict[int | None, list[Turn]] = {}
    for t in every:
        branches.setdefault(t.abandoned_branch, []).append(t)
    later = sorted(b for b in branches if b is not None)
    numbers: dict[int, int] = {}
    for branch, own in branches.items():
        line = list(own)
        if branch is not None:
            start = min(t.idx for t in own)
            taken = {t.idx for t in own}
            for source in [*(b for b in later if b > branch), None]:
                for t in branches.get(source, []):
                    if t.idx < start and t.idx not in taken:
                        taken.add(t.idx)
                        line.append(t)
        n = 0
        for t in sorted(line, key=lambda t: t.idx):
            if t.speaker == "counselor":
                n += 1
            if t.abandoned_branch == branch:
                numbers[t.id] = n
    return numbers


def _globals_status(store: Store, session: Session, rubric: Rubric,
                    trainee_turns: int) -> GlobalsStatus:
    if not rubric.session_items or not trainee_turns:
        return "not_needed"
    if store.session_grade(session.session_id, rubric.id) is not None:
        return "graded"
    if session.grader_model == "offline":
        return "offline"
    if session.status != "ended":
        return "at_end"
    started = [e.id for e in store.events(session.session_id, "session_grade_started")]
    failed = [e.id for e in store.events(session.session_id, "session_grade_pending")]
    if started and (not failed or max(failed) < max(started)):
        return "waiting"
    return "pending"  # failed, or never started (ended with no event loop, or an older session)


def build_report(store: Store, session_id: str, *, feedback_dir: Path | None = None,
                 rubric: Rubric | None = None, persona: Persona | None = None) -> Report:
    feedback_dir = feedback_dir or shipped_feedback()
    session = store.get_session(session_id)
    rubric = rubric or session_rubric(store, session)
    persona = persona or session_persona(store, session)
    scores = session_scores(store, session_id, rubric)
    turns = store.current_turns(session_id)
    every = store.all_turns(session_id)
    effective = store.effective_codes(session_id, rubric.id)
    by_turn = {e.turn.id: e for e in effective}
    reply_after = {t.idx - 1: t for t in turns if t.speaker == "client"}
    number = trainee_turn_numbers(every)

    def quote(t: Turn) -> Quote:
        e = by_turn.get(t.id)
        nxt = reply_after.get(t.idx)
        return Quote(idx=t.idx, turn=number.get(t.id, 0), text=t.text,
                     codes=_shown_codes(rubric, e.values) if e else [],
                     client_reply=nxt.text if nxt else None)

    rules = load_rules(feedback_dir)
    must = persona.risk.must_assess
    exempt = {e.turn.id for e in effective if e.turn.speaker == "counselor" and
              risk_review.maybe_risk_turn(e.turn.text, stored_labels(store, e.turn.id), must)}
    strengths, growth = _highlights(rubric, effective, rules, reply_after, quote, exempt)

    disclosed = {t.fact_id: t for t in turns if t.speaker == "client" and t.fact_id}
    facts = [FactStatus(id=f.id, summary=f.summary, risk=f.risk, elicited=f.id in disclosed,
                        quote=quote(disclosed[f.id]) if f.id in disclosed else None)
             for f in persona.hidden_facts]
    counselor = [t for t in turns if t.speaker == "counselor"]
    labels_of = {t.id: stored_labels(store, t.id) for t in counselor}
    must_assess = persona.risk.must_assess
    reviewed = risk_review.review(must_assess, turns, labels_of,
                                  persona.follow_up_facts())
    at = {t.idx: t for t in turns}
    risks = [RiskCheck(item=c.item, asked=c.asked, topics=c.topics, missing=c.missing,
                       quotes=[quote(at[i]) for i in c.turns[:2]],
                       touched=[quote(at[i]) for i in c.touched[:2]]) for c in reviewed.checks]
    disclosures = [RiskDisclosure(client=quote(at[d.idx]), followed_up=d.followed_up,
                                  reply=quote(at[d.next_idx]) if d.next_idx is not None else None)
                   for d in reviewed.disclosures]
    risk_turns = {t.id for t in counselor
                  if risk_review.maybe_risk_turn(t.text, labels_of.get(t.id), must_assess)}

    alternatives = []
    if session.mode == "coach":
        for e in effective:
            if e.turn.id in risk_turns:
                continue  # a risk question is never rewritten
            if e.grade is not None and e.grade.alternative.strip():
                alternatives.append(Alternative(idx=e.turn.idx, turn=number.get(e.turn.id, 0),
                                                text=e.turn.text,
                                                alternative=e.grade.alternative,
                                                rationale=e.grade.rationale,
                                                why=strip_quote(e.grade.rationale, e.turn.text)))

    titles = {i.id: i.title for i in rubric.turn_items}
    titles.update({s.id: s.title for s in rubric.session_items})
    turn_of = {t.id: t for t in every}
    notes = []
    for rv in store.reviews(session_id):
        t = turn_of.get(rv.turn_id) if rv.turn_id is not None else None
        machine: Value = None
        if t is not None and rv.item_id:
            et = by_turn.get(t.id)
            machine = et.machine.get(rv.item_id) if et else _machine_value(store, t.id, rv.item_id)
        elif rv.item_id:
            try:
                machine = scores.item(rv.item_id).machine_score
            except KeyError:
                machine = None
        notes.append(ReviewNote(reviewer=rv.reviewer, created=rv.created,
                                idx=t.idx if t else None,
                                turn=number.get(t.id, 0) if t else None,
                                speaker=t.speaker if t else None,
                                abandoned_branch=t.abandoned_branch if t else None,
                                quote=t.text if t else None, item_id=rv.item_id,
                                item_title=titles.get(rv.item_id or ""), machine_value=machine,
                                corrected_value=rv.value, has_correction=rv.has_value,
                                comment=rv.comment))

    rating = session.self_rating or {}
    rows = []
    for s in scores.session_items:
        own = rating.get(s.id)
        rows.append(RatingRow(id=s.id, title=s.title, max=s.max, score=s.score, source=s.source,
                              self_score=float(own) if isinstance(own, int | float) else None))
    if not any(r.self_score is not None for r in rows):
        rows = [] if not rating else rows

    failed = _failed_replies(store, session_id, turns)
    transcript = []
    for t in turns:
        et = by_turn.get(t.id)
        transcript.append(TranscriptLine(
            idx=t.idx, turn=number.get(t.id, 0), speaker=t.speaker, text=t.text,
            codes=_shown_codes(rubric, et.values) if et else [],
            utterances=_utterance_notes(labels_of.get(t.id), rubric),
            corrected=bool(et and et.corrections), act=t.act, fact_id=t.fact_id,
            rapport=_state_value(t, "rapport"), resistance=_state_value(t, "resistance"),
            reply_failed=failed.get(t.id, "")))
    abandoned = [t for t in every if t.abandoned_branch is not None]

    return Report(
        session=session, persona_title=persona.title, client_name=persona.identity.name,
        rubric_title=rubric.title, rubric_version=rubric.version,
        rubric_citation=rubric.citation,
        generated=datetime.now(UTC).isoformat(timespec="seconds"), scores=scores,
        strengths=strengths, growth=growth, facts=facts, risk_checks=risks,
        risk_disclosures=disclosures,
        risk_not_assessed=[c.item for c in risks if not c.asked] if counselor else [],
        alternatives=alternatives, reviews=notes, self_rating=rows,
        self_comment=str(rating.get("comment", "") or ""), transcript=transcript,
        abandoned_branches=len({t.abandoned_branch for t in abandoned}),
        abandoned_turns=len(abandoned), trainee_turns=len(counselor),
        notice="" if counselor else NO_TRAINEE_TURNS,
        pending_turn_grades=_pending_turn_grades(store, session, counselor),
        globals_status=_globals_status(store, session, rubric, len(counselor)))


def _failed_replies(store: Store, session_id: str, turns: list[Turn]) -> dict[int, str]:
    """Trainee turn id -> the client model's error, for turns left without a client reply."""
    errors = {}
    for ev in store.events(session_id, "client_error"):
        data = ev.data or {}
        if isinstance(data.get("turn_id"), int):
            errors[data["turn_id"]] = str(data.get("message") or "the client model failed")
    out = {}
    for i, t in enumerate(turns):
        answered = i + 1 < len(turns) and turns[i + 1].speaker == "client"
        if t.speaker == "counselor" and not answered and t.id in errors:
            out[t.id] = errors[t.id].split(" Your turn is saved")[0]
    return out


def _pending_turn_grades(store: Store, session: Session, counselor: list[Turn]) -> int:
    """Trainee turns whose latest LLM grade is not ok (none at all counts, with an LLM grader)."""
    if session.grader_model == "offline":
        return 0
    latest = {g.turn_id: g for g in store.grades(session.session_id)}
    return sum(1 for t in counselor
               if t.id not in latest or latest[t.id].status != "ok")


def _machine_value(store: Store, turn_id: int, item_id: str) -> Value:
    for rec in reversed(store.codes(turn_id)):
        if item_id in rec.codes:
            return rec.codes[item_id]
    return None


def stored_labels(store: Store, turn_id: int) -> dict[str, Any] | None:
    """The coder's labels last stored for a turn (with ``utterances`` when the coder gives them)."""
    for rec in reversed(store.codes(turn_id)):
        if rec.labels:
            return dict(rec.labels)
    return None


def _utterance_notes(labels: dict[str, Any] | None, rubric: Rubric) -> list[UtteranceNote]:
    """Utterance codes worth showing: only when there are two or more (one is the turn code)
    and only codes this rubric defines (the coder's are MITI's)."""
    known = rubric.code_ids()
    notes = [UtteranceNote(text=str(u.get("text", "")), code=str(u.get("behaviour", "")))
             for u in (labels or {}).get("utterances") or [] if isinstance(u, dict)]
    notes = [n for n in notes if n.code in known and n.text.strip()]
    return notes if len(notes) >= 2 else []


def strip_quote(rationale: str, said: str) -> str:
    """Drop a leading quote of the turn from a rationale (the card or row already shows it)."""
    flat = " ".join(said.split())
    for opener, closer in (("\u201c", "\u201d"), ('"', '"')):
        if rationale.startswith(opener):
            end = rationale.find(closer, 1)
            inner = rationale[1:end] if end > 0 else ""
            if end > 0 and (inner == flat or (inner.endswith("\u2026") and
                                               flat.startswith(inner[:-1].rstrip()))):
                return rationale[end + 1:].lstrip(" \u2014-:").strip()
    return rationale


def _highlights(rubric: Rubric, effective: list[EffectiveTurn], rules: HighlightRules,
                reply_after: dict[int, Turn], quote: Any,
                exempt: set[int] | None = None) -> tuple[list[Highlight], list[Highlight]]:
    """The strengths and growth areas, by ``rules`` (``feedback/highlights.yaml``).

    A code never appears in both lists: strengths are chosen first, and a code shown as a
    strength is left out of every growth rule (its turns no longer count for that rule; a growth
    rule left with no codes is skipped and the next rule takes its place). The same behaviour
    cannot be praised and criticised in one report, and the strength wins: a code reaches the
    strengths only when fewer better-ranked strengths were found, so it is among the best the
    trainee showed (e.g. simple reflections before any complex ones), and telling them to do
    less of it would undercut the praise.
    Growth rules about codes that are never strengths (closed-question runs, persuading) are
    unaffected.

    Turns in ``exempt`` (risk questions) never count for a growth rule: asking "have you thought
    of ending your life?" is the skill, not a closed question to do less of. They break a run.
    """
    exempt = exempt or set()
    known = rubric.code_ids()
    codes_of = [(e.turn, set(_shown_codes(rubric, e.values))) for e in effective]

    def rank(t: Turn) -> tuple[int, int]:
        nxt = reply_after.get(t.idx)
        acts = rules.prefer_client_acts
        pos = acts.index(nxt.act) if nxt is not None and nxt.act in acts else len(acts)
        return (pos, -len(t.text))

    def make(kind: Literal["strength", "growth"], rule: HighlightRule, found: list[str],
             chosen: list[Turn], count: int, run: int | None) -> Highlight:
        names = [rubric.code(c).name for c in found]
        coaching = list(dict.fromkeys(rubric.code(c).coaching for c in found
                                      if rubric.code(c).coaching))
        return Highlight(kind=kind, codes=found, title=" / ".join(names), coaching=coaching,
                         count=count, run=run, quotes=[quote(t) for t in chosen])

    strengths: list[Highlight] = []
    used: set[int] = set()
    for rule in rules.strengths:
        if len(strengths) >= rules.per_list:
            break
        want = [c for c in rule.codes if c in known]
        matches = [t for t, cs in codes_of if cs & set(want) and t.id not in used]
        if not matches:
            continue
        found = [c for c in want if any(c in cs for _, cs in codes_of)]
        chosen = sorted(sorted(matches, key=rank)[:rule.max_quotes], key=lambda t: t.idx)
        used.update(t.id for t in chosen)
        count = sum(1 for _, cs in codes_of if cs & set(want))
        strengths.append(make("strength", rule, found, chosen, count, None))

    praised = {c for h in strengths for c in h.codes}
    growth: list[Highlight] = []
    quoted: set[int] = set()
    for rule in rules.growth:
        if len(growth) >= rules.per_list:
            break
        wanted = {c for c in rule.codes if c in known} - praised
        if not wanted:
            continue
        runs: list[list[Turn]] = []
        current: list[Turn] = []
        for t, cs in codes_of:
            if cs & wanted and t.id not in exempt:
                current.append(t)
            else:
                runs.append(current)
                current = []
        runs.append(current)
        runs = [r for r in runs if len(r) >= rule.run and r]
        if not runs:
            continue
        found = [c for c in rule.codes if c in wanted and any(c in cs for t, cs in codes_of
                                                              if t.id not in exempt)]
        if rule.run > 1:
            longest = max(runs, key=len)
            chosen, count, run = longest[:max(rule.max_quotes, rule.run)], len(runs), len(longest)
        else:
            flat = [t for r in runs for t in r]
            chosen, count, run = flat[:rule.max_quotes], len(flat), None
        ids = {t.id for t in chosen}
        if len(ids & quoted) * 2 >= len(ids):
            continue  # mostly the same turns as an earlier growth point
        quoted.update(t.id for t in chosen)
        growth.append(make("growth", rule, found, chosen, count, run))
    return strengths, growth


# ---------------------------------------------------------------- rendering


_MD_SPECIAL = re.compile(r"([\\`*_\[\]|#])")
_ENTITY = re.compile(r"&(?=#?[A-Za-z0-9]+;)")


def md_escape(text: Any) -> str:
    """Quoted text in Markdown: HTML disarmed, Markdown syntax escaped, one line."""
    # "&" stays as typed (a citation's "Moyers & Manuel"); only an entity-like "&name;" is
    # disarmed, so Markdown viewers show the text and renderers cannot decode it into markup
    s = _ENTITY.sub("&amp;", str(text)).replace("<", "&lt;").replace(">", "&gt;")
    s = _MD_SPECIAL.sub(r"\\\1", s)
    return " ".join(s.split())


def strip_said(rationale: str, said: str) -> str:
    """A rationale without its leading quote of the turn, where the turn is shown beside it
    (the report's "You said" column, the coach card), so the sentence is not printed twice."""
    for opener, closer in (("\u201c", "\u201d"), ('"', '"')):
        head = f"{opener}{said.strip()}{closer}"
        if rationale.startswith(head):
            return rationale[len(head):].lstrip(" \u2014-:").strip()
    return rationale


def _fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.{digits}f}".rstrip("0").rstrip(".") if digits else f"{value:.0f}"
    return str(value)


def shipped_feedback() -> Path:
    """The shipped report templates (a caller with settings passes ``settings.feedback``)."""
    from simulator.settings import shipped_content

    return shipped_content() / "feedback"


def environment(feedback_dir: Path) -> Environment:
    """Jinja2 for feedback/: autoescape for everything except ``*.md.j2``; undefined is an error."""
    env = Environment(loader=FileSystemLoader(str(feedback_dir)),
                      autoescape=select_autoescape(disabled_extensions=("md.j2",), default=True,
                                                   default_for_string=True),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                      keep_trailing_newline=True)
    env.filters["md"] = md_escape
    env.filters["fmt"] = _fmt
    return env


def _metric_scale(m: Any) -> float:
    if m.format == "percent" and m.thresholds is not None and \
            max(abs(m.thresholds.fair), abs(m.thresholds.good)) <= 1:
        return 100.0
    return 1.0


CHARTS = ("timeline", "metrics", "state")


def report_charts(report: Report, rubric_items: list[tuple[str, str]] | None = None
                  ) -> dict[str, Markup]:
    """The three report charts as SVG Markup (built from numbers and ids only); a chart with
    nothing to show is an empty Markup, so templates can test every key. The x axis is the
    trainee's turn number, as in the transcript; the client's state is plotted after its reply
    to each trainee turn."""
    from simulator.reports import charts

    counselor = [line for line in report.transcript if line.speaker == "counselor"]
    rows: list[str] = []
    for line in counselor:
        for c in line.codes:
            if c not in rows:
                rows.append(c)
    order = [c for c, _ in (rubric_items or [])]
    rows.sort(key=lambda c: order.index(c) if c in order else len(order))
    names = dict(rubric_items or [])
    points = [(line.turn, c) for line in counselor for c in line.codes]
    n_turns = len(counselor)
    out: dict[str, Markup] = {name: Markup() for name in CHARTS}
    if counselor:
        out["timeline"] = Markup(charts.codes_timeline(  # noqa: S704 - our own SVG
            rows, [f"{names.get(c, c)} ({c})" for c in rows], points, n_turns))
    bars = [charts.MetricBar(m.name, m.value, m.display, m.thresholds.fair, m.thresholds.good,
                             m.higher_is_better, m.verdict, _metric_scale(m),
                             m.fair_display or "", m.good_display or "")
            for m in report.scores.metrics if m.thresholds is not None]
    if bars:
        out["metrics"] = Markup(charts.metric_bars(bars))  # noqa: S704 - our own SVG
    replies = [line for line in report.transcript if line.speaker == "client" and line.turn]
    state = [(line.turn, line.rapport, line.resistance) for line in replies
             if line.rapport is not None or line.resistance is not None]
    if state:
        disclosed = [(line.turn, line.fact_id) for line in replies if line.fact_id]
        out["state"] = Markup(charts.client_state(  # noqa: S704 - our own SVG
            state, disclosed, n_turns))
    return out


def render(report: Report, fmt: Format, *, feedback_dir: Path | None = None,
           rubric: Rubric | None = None) -> str:
    """Render a built report as ``html``, ``md`` or ``json``."""
    if fmt == "json":
        return report.model_dump_json(indent=2) + "\n"
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    feedback_dir = feedback_dir or shipped_feedback()
    env = environment(feedback_dir)
    items = [(c.id, c.name) for i in (rubric.turn_items if rubric else []) for c in i.codes]
    charts = report_charts(report, items) if fmt == "html" else {}
    template = env.get_template(f"report.{fmt}.j2")
    return template.render(r=report, charts=charts)


def render_report(store: Store, session_id: str, fmt: Format, *,
                  feedback_dir: Path | None = None) -> str:
    """Build and render in one call (what ``counselsim report`` and the web app use)."""
    session = store.get_session(session_id)
    rubric = session_rubric(store, session)
    report = build_report(store, session_id, feedback_dir=feedback_dir, rubric=rubric)
    return render(report, fmt, feedback_dir=feedback_dir, rubric=rubric)


def report_json(report: Report) -> dict[str, Any]:
    return json.loads(report.model_dump_json())
