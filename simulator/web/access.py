"""Who is asking, and may they? Every handler calls one of these first, on the server.

Hiding a tab in the browser is only a convenience: Gradio lets any logged-in user post to any
event by its index, so the role (and the ownership of a session) is checked again here, for every
read and every write. A refusal raises ``gr.Error`` with a plain message and reveals nothing about
whether the session exists.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import gradio as gr

TRAINEE, SUPERVISOR, EDUCATOR, ADMIN = "trainee", "supervisor", "educator", "admin"
ROLES = (TRAINEE, SUPERVISOR, EDUCATOR, ADMIN)

PRACTISE = (TRAINEE, SUPERVISOR, EDUCATOR, ADMIN)
"""Everyone may hold practice sessions of their own (supervisors and educators try personas)."""
REVIEW = (SUPERVISOR, ADMIN)
AUTHOR = (EDUCATOR, ADMIN)

REFUSED = "Not found, or you do not have access to it."


class UserLike(Protocol):
    name: str
    role: str
    cohort: str | None


class Denied(gr.Error):
    """A refusal: shown to the user as a toast, returned to API callers as an error."""

    def __init__(self, message: str = REFUSED) -> None:
        super().__init__(message, print_exception=False)


def username_of(request: gr.Request | None) -> str:
    name = getattr(request, "username", None) if request is not None else None
    if not name:
        raise Denied("Please sign in.")
    return str(name)


def current_user(store: Any, request: gr.Request | None) -> UserLike:
    """The signed-in user, read fresh from the database (a removed account loses access at once)."""
    try:
        user: UserLike = store.get_user(username_of(request))
        return user
    except ValueError:  # StoreError: unknown user
        raise Denied("Your account no longer exists.") from None


def require(store: Any, request: gr.Request | None, roles: Iterable[str]) -> UserLike:
    user = current_user(store, request)
    if user.role not in tuple(roles):
        raise Denied("Your role does not allow this.")
    return user


def check_session(practice: Any, session_id: str | None, user: UserLike) -> str:
    """The session id, if this user may see that session (owner, its cohort's supervisor, admin)."""
    if not session_id or not isinstance(session_id, str) or len(session_id) > 100:
        raise Denied()
    try:
        practice.check_access(session_id, user)
    except (PermissionError, LookupError, ValueError):  # ValueError covers StoreError (unknown id)
        raise Denied() from None
    return session_id


def check_own_session(practice: Any, session_id: str | None, user: UserLike) -> str:
    """Writing turns (send, rewind, end, self-rate) is for the session's own trainee only."""
    sid = check_session(practice, session_id, user)
    if practice.store.get_session(sid).trainee != user.name:
        raise Denied()
    return sid
