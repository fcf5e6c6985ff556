"""Feedback outside the report: the terminal's coach card and risk warnings, and the risk review
behind the web coach panel. One risk review (``grader.risk_review``) for the report, the panel
and the terminal, so they never disagree about what was assessed."""

from __future__ import annotations

from simulator.coder.risk import TOPIC_NAMES
from simulator.grader.risk_review import RiskReview, review
from simulator.reports.render import session_persona, stored_labels
from simulator.store import Session, Store


def session_risk_review(store: Store, session: Session) -> RiskReview | None:
    """The persona's risk items against the session's current turns; None when the persona
    version the session ran with no longer loads (no checklist rather than a crash)."""
    try:
        persona = session_persona(store, session)
    except Exception:  # noqa: BLE001 - an old persona version that no longer validates
        return None
    turns = store.current_turns(session.session_id)
    labels = {t.id: stored_labels(store, t.id) for t in turns if t.speaker == "counselor"}
    return review(persona.risk.must_assess, turns, labels,
                  persona.follow_up_facts())


def coach_card(store: Store, session_id: str) -> str:
    """The coach card of the trainee's last turn, as the terminal shows it (empty while an LLM
    grader is still working on it)."""
    turns = store.current_turns(session_id)
    last = next((t for t in reversed(turns) if t.speaker == "counselor"), None)
    grade = next((g for g in reversed(store.grades(session_id))
                  if last is not None and g.turn_id == last.id and g.status != "pending"), None)
    if grade is None:
        return "  coach: (grading this turn...)"
    from simulator.reports.render import strip_quote

    assert last is not None
    lines = [f"  coach: {strip_quote(grade.rationale, last.text)}"]
    if grade.alternative:
        lines.append(f"  try:   {grade.alternative}")
    return "\n".join(lines)


def risk_warnings(store: Store, session_id: str) -> list[str]:
    """What the report warns about risk, for the end of a terminal session."""
    session = store.get_session(session_id)
    turns = store.current_turns(session_id)
    if not any(t.speaker == "counselor" for t in turns):
        return []
    found = session_risk_review(store, session)
    if found is None:
        return []
    numbers = {t.idx: n for n, t in enumerate(
        (t for t in turns if t.speaker == "counselor"), start=1)}
    out = []
    for c in found.not_assessed:
        if c.turns and c.missing and len(c.missing) < len(c.topics):  # part of it was asked
            out.append(f"\n  !! RISK NOT FULLY ASSESSED: {c.item} (your turn "
                       f"{', '.join(str(numbers[i]) for i in c.turns)} asked part of it; not "
                       f"asked: {', '.join(TOPIC_NAMES.get(t, t) for t in c.missing)})")
            continue
        out.append(f"\n  !! RISK NOT ASSESSED: {c.item}" + (
            f" (your turn {', '.join(str(numbers[i]) for i in c.touched)} touched on it: check "
            "it covered the whole item)" if c.touched else ""))
    out += [f"\n  !! RISK DISCLOSURE NOT FOLLOWED UP: the client said \"{d.text}\""
            for d in found.missed_disclosures]
    return out


__all__ = ["coach_card", "risk_warnings", "session_risk_review"]
