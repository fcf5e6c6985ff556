"""A session as JSON-ready data, the same for every reader: turns with the client's act and state,
and each trainee turn's effective codes (a supervisor's correction over the grader over the coder,
``Store.effective_codes``), exactly what the web transcript and the report show."""

from __future__ import annotations

from typing import Any

from simulator.store import Store


def session_summary(store: Store, session_id: str) -> dict[str, Any]:
    """The current branch of a session: turns with acts, state after each reply, codes."""
    session = store.get_session(session_id)
    effective = {et.turn.id: et for et in store.effective_codes(session_id)}
    turns = []
    for t in store.current_turns(session_id):
        row: dict[str, Any] = {"idx": t.idx, "speaker": t.speaker, "text": t.text}
        if t.speaker == "client":
            row.update(act=t.act, fact_id=t.fact_id, state=t.state)
        elif t.id in effective and effective[t.id].values:
            row["codes"] = effective[t.id].values
            row["code_sources"] = effective[t.id].sources
        turns.append(row)
    final_state = next((t["state"] for t in reversed(turns) if t.get("state")), None)
    return {"session_id": session_id, "trainee": session.trainee, "persona": session.persona_id,
            "rubric": session.rubric_id, "mode": session.mode, "status": session.status,
            "turns": turns, "final_state": final_state}


__all__ = ["session_summary"]
