"""Feedback as the terminal shows it: the coach card of the last turn and the risk warnings at the
end of a session. The same risk review the report uses (``grader.risk_review``), so the terminal
and the report never disagree about what was assessed."""

from __future__ import annotations

from simulator.store import Store


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
    from simulator.grader import risk_review
    from simulator.reports.render import session_persona, stored_labels

    session = store.get_session(session_id)
    persona = session_persona(store, session)
    turns = store.current_turns(session_id)
    if not any(t.speaker == "counselor" for t in turns):
        return []
    labels = {t.id: stored_labels(store, t.id) for t in turns
              if t.speaker == "counselor"}
    review = risk_review.review(persona.risk.must_assess, turns, labels,
                                [f.id for f in persona.hidden_facts if f.risk])
    numbers = {t.idx: n for n, t in enumerate(
        (t for t in turns if t.speaker == "counselor"), start=1)}
    out = [f"\n  !! RISK NOT ASSESSED: {c.item}" + (
        f" (your turn {', '.join(str(numbers[i]) for i in c.touched)} touched on it: check it "
        "covered the whole item)" if c.touched else "") for c in review.not_assessed]
    out += [f"\n  !! RISK DISCLOSURE NOT FOLLOWED UP: the client said \"{d.text}\""
            for d in review.missed_disclosures]
    return out


__all__ = ["coach_card", "risk_warnings"]
