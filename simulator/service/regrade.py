"""Finish the grading a session could not do live: ``counselsim regrade SESSION_ID``.

A turn's grade is stored ``pending`` when the grader model kept answering badly or was down
(the session never waits or fails for it), ``failed`` when the provider refused the request, and
is missing altogether when the process stopped before the grade came back. ``regrade_session``
grades those turns again, against the exact rubric version the session was run with (from the
store, not today's file), and writes the result: a pending/failed row is updated in place (its
``attempts`` grows), a missing grade is added. Turns on abandoned (rewound) branches are left
alone. For an ended session whose rubric has session-level items and no session grade yet, the
globals are graded too (LLM only; offline they are estimates computed by ``grader.scores``).

Which model: ``--grader-model`` if given, else the one the session was run with. A model that is
configured but unavailable (no key, no server) is a user error, not a silent switch to offline;
``--grader-model offline`` regrades with the offline coder on purpose.
"""

from __future__ import annotations

import asyncio
from typing import Any, Literal

from pydantic import BaseModel

from simulator.coder.labels import Coder, CounselorLabels, Utterance, UtteranceCode
from simulator.coder.miti import with_utterances
from simulator.content.rubric import Rubric
from simulator.errors import InvalidInput
from simulator.grader import scores
from simulator.grader.grade import (
    GradeOptions,
    Mode,
    SessionGrade,
    TurnGrade,
    grade_session,
    grade_turn,
    grade_turn_offline,
)
from simulator.reports.render import session_persona
from simulator.settings import Settings
from simulator.store import Grade, Store, StoredItemScore, StoreError, Turn
from simulator.vocab import GradeStatus

Reason = Literal["pending", "failed", "missing"]


class RegradeError(InvalidInput):
    """A user error (unknown session, unusable model): the CLI prints it and exits 1."""


class RegradedTurn(BaseModel):
    turn_id: int
    idx: int
    was: Reason
    status: GradeStatus
    grade_id: int
    values: dict[str, Any] = {}
    error: str | None = None


class RegradeResult(BaseModel):
    session_id: str
    rubric_id: str
    model: str
    turns: list[RegradedTurn] = []
    ok: int = 0
    pending: int = 0
    failed: int = 0
    skipped_abandoned: int = 0
    """Pending grades of turns a rewind moved off the current branch (not regraded)."""
    skipped_graded: int = 0
    """Pending rows of turns that already have an ok grade (a later retry succeeded)."""
    session_items: Literal["ok", "pending", "failed", "not_needed", "estimate"] = "not_needed"


def session_rubric(store: Store, session_id: str) -> Rubric:
    """The rubric exactly as the session ran with it (by content hash)."""
    return scores.session_rubric(store, store.get_session(session_id))


def store_session_grade(store: Store, session_id: str, grade: SessionGrade) -> bool:
    """Keep an LLM session grade (items with scores and evidence); estimates are not stored."""
    if grade.status != "ok" or not grade.items:
        return False
    items: dict[str, StoredItemScore | dict[str, Any]] = {
        i.item_id: {"score": i.score, "rationale": i.rationale,
                    "evidence": [e.quote for e in i.evidence]}
        for i in grade.items if i.source == "llm"}
    if not items:
        return False
    store.add_session_grade(session_id, grade.rubric_id, items, model=grade.model)
    return True


def _targets(store: Store, session_id: str, rubric_id: str, turns: list[Turn],
             include_failed: bool, include_missing: bool
             ) -> tuple[list[tuple[Turn, Grade | None, Reason]], int, int]:
    current = {t.id: t for t in turns}
    grades = [g for g in store.grades(session_id) if g.rubric_id == rubric_id]
    ok_turns = {g.turn_id for g in grades if g.status == "ok"}
    latest: dict[int, Grade] = {}
    for g in grades:
        latest[g.turn_id] = g
    out: list[tuple[Turn, Grade | None, Reason]] = []
    abandoned = graded = 0
    wanted: tuple[str, ...] = ("pending", "failed") if include_failed else ("pending",)
    for turn_id, g in sorted(latest.items()):
        if g.status not in wanted:
            continue
        if turn_id not in current:
            abandoned += 1
        elif turn_id in ok_turns:
            graded += 1
        else:
            out.append((current[turn_id], g, g.status))  # type: ignore[arg-type]
    if include_missing:
        out += [(t, None, "missing") for t in turns
                if t.speaker == "counselor" and t.id not in latest]
    out.sort(key=lambda x: x[0].idx)
    return out, abandoned, graded


def _first_reading(store: Store, turn: Turn) -> list[UtteranceCode]:
    """The utterance codes stored with the turn's latest coding (none for rows coded before
    utterance coding existed): the LLM grader's hint, as in a live session."""
    for record in reversed(store.codes(turn.id)):
        if record.labels and record.labels.get("utterances"):
            return CounselorLabels.model_validate(record.labels).utterances
    return []


async def regrade_session(store: Store, session_id: str, *, model: Any, spec: str,
                          rubric: Rubric | None = None, coder: Coder | None = None,
                          include_failed: bool = True, include_missing: bool = True,
                          options: GradeOptions | None = None,
                          concurrency: int = 4, turn_ids: set[int] | None = None,
                          session_items: bool = True) -> RegradeResult:
    """Regrade the session's unfinished turn grades; ``model`` None means offline (``coder``).

    Each finished grade is written as soon as it is back, so an interrupted regrade keeps what
    it did. Never raises for a grading problem (those stay pending); raises ``RegradeError`` for
    an unknown session. ``turn_ids`` limits the turns regraded (a grading job's one turn);
    ``session_items=False`` leaves the session-level grade alone.
    """
    try:
        session = store.get_session(session_id)
    except StoreError as exc:
        raise RegradeError(str(exc)) from None
    rubric = rubric or scores.session_rubric(store, session)
    must_assess = session_persona(store, session).risk.must_assess
    mode: Mode = session.mode
    turns = store.current_turns(session_id)
    targets, abandoned, graded = _targets(store, session_id, rubric.id, turns, include_failed,
                                          include_missing)
    if turn_ids is not None:
        targets = [t for t in targets if t[0].id in turn_ids]
    result = RegradeResult(session_id=session_id, rubric_id=rubric.id, model=spec,
                           skipped_abandoned=abandoned, skipped_graded=graded)
    if model is None and coder is None:
        from simulator.coder.offline import load_offline_coder

        coder = load_offline_coder()
    gate = asyncio.Semaphore(max(1, concurrency))

    async def one(turn: Turn, old: Grade | None, why: Reason) -> RegradedTurn:
        context = [Utterance(speaker=t.speaker, text=t.text) for t in turns if t.idx < turn.idx]
        async with gate:
            if model is None:
                assert coder is not None
                labels = with_utterances(coder, turn.text, context)  # MITI per utterance
                grade: TurnGrade = grade_turn_offline(labels, rubric, context, turn.text, mode,
                                                      must_assess=must_assess)
            else:
                grade = await grade_turn(model, rubric, context, turn.text, mode, spec,
                                         options=options, must_assess=must_assess,
                                         first_reading=_first_reading(store, turn))
        if old is None:
            row = store.add_grade(turn.id, rubric.id, status=grade.status,
                                  values=dict(grade.values), rationale=grade.rationale,
                                  alternative=grade.alternative or "", model=grade.model,
                                  error=grade.error or "", attempts=grade.attempts)
        else:
            row = store.update_grade(old.id, status=grade.status,
                                     values=dict(grade.values) if grade.status == "ok" else None,
                                     rationale=grade.rationale if grade.status == "ok" else None,
                                     alternative=(grade.alternative or "")
                                     if grade.status == "ok" else None,
                                     model=grade.model, error=grade.error or "")
        return RegradedTurn(turn_id=turn.id, idx=turn.idx, was=why, status=grade.status,
                            grade_id=row.id, values=dict(grade.values), error=grade.error)

    result.turns = list(await asyncio.gather(*(one(*t) for t in targets)))
    for r in result.turns:
        setattr(result, r.status, getattr(result, r.status) + 1)

    if session_items and session.status == "ended" and rubric.session_items:
        if model is None:
            result.session_items = "estimate"
        elif store.session_grade(session_id, rubric.id) is None:
            transcript = [Utterance(speaker=t.speaker, text=t.text) for t in turns]
            sg = await grade_session(model, rubric, transcript, spec, options=options)
            store_session_grade(store, session_id, sg)
            result.session_items = sg.status
    return result


def run_regrade(session_id: str, grader_model: str | None,
                settings: Settings, *, include_failed: bool = True,
                include_missing: bool = True) -> RegradeResult:
    """The CLI's entry: open the store, resolve the session (an id prefix is fine) and the model,
    regrade. Raises ``RegradeError`` with a message for the user."""
    from simulator.llm.providers import chat_model, describe_model, parse_spec, redact_spec
    from simulator.store import open_store

    s = settings
    store = open_store(s.db)
    try:
        try:
            sid = store.resolve_session_id(session_id)
        except StoreError as exc:
            raise RegradeError(str(exc)) from None
        spec = grader_model or store.get_session(sid).grader_model or "offline"
        try:
            offline = parse_spec(spec).provider == "offline"
        except ValueError as exc:
            raise RegradeError(str(exc)) from None
        model = None
        if not offline:
            model = chat_model(spec, s)
            if model is None:
                info = describe_model(spec, "grader")
                raise RegradeError(f"{info.notice or 'the grader model is unavailable'} "
                                   "Set it up, or pass --grader-model offline.")
        result = asyncio.run(regrade_session(
            store, sid, model=model, spec=redact_spec(spec), include_failed=include_failed,
            include_missing=include_missing, options=GradeOptions.from_settings(s)))
    finally:
        store.close()
    return result
