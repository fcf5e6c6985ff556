"""Who is asking, and may they? Every handler calls one of these first, on the server.

Hiding a tab in the browser is only a convenience: Gradio lets any logged-in user post to any
event by its index, so the role (and the ownership of a session) is checked again here, for every
read and every write. The rules themselves are ``simulator.service.access``'s; this module only
turns their refusals into ``gr.Error`` notices that reveal nothing about whether a session exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import gradio as gr

from simulator.errors import CounselSimError, NotFoundOrNoAccess
from simulator.service import access as rules
from simulator.service.access import (
    ADMIN,
    AUTHOR,
    EDUCATOR,
    PRACTISE,
    REVIEW,
    SUPERVISOR,
    TRAINEE,
    UserLike,
)
from simulator.store import UnknownRecord
from simulator.vocab import ROLES

REFUSED = NotFoundOrNoAccess().args[0]

T = TypeVar("T")


class Denied(gr.Error):
    """A refusal: shown to the user as a toast, returned to API callers as an error."""

    def __init__(self, message: str = REFUSED) -> None:
        super().__init__(message, print_exception=False)


def shown(call: Callable[[], T]) -> T:
    """Run a service call; a ``CounselSimError`` becomes a notice with its own words."""
    try:
        return call()
    except NotFoundOrNoAccess as exc:
        raise Denied(str(exc)) from None
    except CounselSimError as exc:
        raise gr.Error(str(exc), print_exception=False) from None


def username_of(request: gr.Request | None) -> str:
    name = getattr(request, "username", None) if request is not None else None
    if not name:
        raise Denied("Please sign in.")
    return str(name)


def current_user(store: Any, request: gr.Request | None) -> UserLike:
    """The signed-in user, read fresh from the database (a removed account loses access at once)."""
    try:
        user = store.get_user(username_of(request))
    except UnknownRecord:
        raise Denied("Your account no longer exists.") from None
    if getattr(user, "disabled", False):
        raise Denied("Your account is disabled. Ask your administrator.")
    if getattr(user, "must_change_password", False):
        raise Denied("Choose a new password first: reload the page.")
    found: UserLike = user
    return found


def require(store: Any, request: gr.Request | None, roles: Iterable[str]) -> UserLike:
    user = current_user(store, request)
    return shown(lambda: rules.require_role(user, roles))


def check_session(practice: Any, session_id: str | None, user: UserLike) -> str:
    """The session id, if this user may see that session (owner, its cohort's supervisor, admin)."""
    return shown(lambda: rules.session_for(practice.store, session_id, user)).session_id


def check_own_session(practice: Any, session_id: str | None, user: UserLike) -> str:
    """Writing turns (send, rewind, end, self-rate) is for the session's own trainee only."""
    return shown(lambda: rules.session_for(practice.store, session_id, user,
                                           write=True)).session_id


__all__ = ["ADMIN", "AUTHOR", "EDUCATOR", "PRACTISE", "REVIEW", "ROLES", "SUPERVISOR", "TRAINEE",
           "Denied", "check_own_session", "check_session", "current_user", "require", "shown",
           "username_of"]
