"""Supervisor review: corrections of the machine's codes and scores, checked against the rubric
exactly as the session ran with it.

A rubric may change after a session (an educator renames a code); a correction must still be a
code that session's rubric had, so the check reads the rubric version the session recorded (by
content hash), not the file on disk today. The machine's own code is always kept beside the
correction; the report shows both.
"""

from __future__ import annotations

from simulator.errors import InvalidInput, NotFoundOrNoAccess
from simulator.grader.scores import SessionItemScore, session_scores
from simulator.service.access import REVIEW, UserLike, require_role, session_for
from simulator.service.regrade import session_rubric
from simulator.store import Review, Store

MAX_COMMENT = 2000


def _comment(comment: str | None) -> str:
    return (comment or "").strip()[:MAX_COMMENT]


def correct_turn(store: Store, user: UserLike, session_id: str, turn_id: int | str | None,
                 item_id: str | None, value: str | None, comment: str = "") -> Review:
    """Correct one trainee turn's code for a categorical item of the session's rubric."""
    require_role(user, REVIEW)
    session = session_for(store, session_id, user)
    rubric = session_rubric(store, session.session_id)
    item = next((it for it in rubric.turn_items if it.id == item_id), None)
    if item is None or item.kind != "categorical" or value not in {c.id for c in item.codes}:
        raise InvalidInput("Choose a turn, an item and one of its codes.")
    try:
        tid = int(turn_id or "")
    except ValueError:
        raise InvalidInput("Choose a trainee turn.") from None
    if tid not in {et.turn.id for et in store.effective_codes(session.session_id)}:
        raise NotFoundOrNoAccess()
    return store.add_review(session.session_id, reviewer=user.name, turn_id=tid,
                            item_id=item.id, value=value, comment=_comment(comment))


def score_session_item(store: Store, user: UserLike, session_id: str, item_id: str | None,
                       value: float | None, comment: str = "") -> Review:
    """Set a session-level score (a global) within the item's scale."""
    require_role(user, REVIEW)
    session = session_for(store, session_id, user)
    rubric = session_rubric(store, session.session_id)
    item = next((it for it in rubric.session_items if it.id == item_id), None)
    if item is None or value is None or not item.min <= float(value) <= item.max:
        raise InvalidInput("Choose a score and a value within its scale.")
    return store.add_review(session.session_id, reviewer=user.name, item_id=item.id,
                            value=float(value), comment=_comment(comment))


def session_item_scores(store: Store, user: UserLike, session_id: str) -> list[SessionItemScore]:
    """The session-level scores as the report shows them, each with its scale and the machine's
    value (grader or estimate): what a supervisor's correction starts from."""
    require_role(user, REVIEW)
    session = session_for(store, session_id, user)
    return list(session_scores(store, session.session_id).session_items)


__all__ = ["correct_turn", "score_session_item", "session_item_scores"]
