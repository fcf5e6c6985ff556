"""Who may see and do what: the one place the product's access rules live.

The web app and the CLI both ask here; neither decides by itself. A refusal is always
``NotFoundOrNoAccess`` with the same words whether the session exists or not, so probing ids
reveals nothing.

- Everyone may hold practice sessions of their own (supervisors and educators try personas).
- Trainees see only their own sessions.
- Supervisors read the sessions of trainees in their cohort and review them; they never write a
  trainee's turns.
- Educators author personas and rubrics. Admins may do everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from simulator.errors import NotFoundOrNoAccess
from simulator.store import Session, Store, UnknownRecord
from simulator.vocab import ROLES

TRAINEE, SUPERVISOR, EDUCATOR, ADMIN = ROLES
PRACTISE = (TRAINEE, SUPERVISOR, EDUCATOR, ADMIN)
REVIEW = (SUPERVISOR, ADMIN)
AUTHOR = (EDUCATOR, ADMIN)


class UserLike(Protocol):
    """A signed-in user as the rules see them (a ``store.User`` fits)."""

    @property
    def name(self) -> str: ...

    @property
    def role(self) -> str: ...

    @property
    def cohort(self) -> str | None: ...


class RoleRefused(NotFoundOrNoAccess):
    """The user's role does not include this kind of work."""

    def __init__(self) -> None:
        super().__init__("Your role does not allow this.")


def require_role(user: UserLike, roles: Iterable[str]) -> UserLike:
    if user.role not in tuple(roles):
        raise RoleRefused()
    return user


def session_for(store: Store, session_id: str | None, user: UserLike, *,
                write: bool = False) -> Session:
    """The session, if ``user`` may see it (or, with ``write``, act in it as its trainee).

    Owner: read and write. A supervisor: read the sessions of their cohort's trainees. Admin:
    read everything, write only their own (turns are the trainee's words).
    """
    if not session_id or not isinstance(session_id, str) or len(session_id) > 100:
        raise NotFoundOrNoAccess()
    try:
        session = store.get_session(session_id)
    except UnknownRecord:
        raise NotFoundOrNoAccess() from None
    if session.trainee == user.name:
        return session
    if write:
        raise NotFoundOrNoAccess()
    if user.role == ADMIN:
        return session
    if user.role == SUPERVISOR and session.cohort is not None and session.cohort == user.cohort:
        return session
    raise NotFoundOrNoAccess()


def review_scope(user: UserLike) -> str | None:
    """The cohort a reviewer may see; None means every cohort (admins)."""
    require_role(user, REVIEW)
    if user.role == ADMIN:
        return None
    if not user.cohort:
        raise NotFoundOrNoAccess("You are not assigned to a cohort yet; ask an administrator.")
    return str(user.cohort)


__all__ = ["ADMIN", "AUTHOR", "EDUCATOR", "PRACTISE", "REVIEW", "SUPERVISOR", "TRAINEE",
           "RoleRefused", "UserLike", "require_role", "review_scope", "session_for"]
