"""Managing accounts: the one name rule and the audit trail, for the web's Users tab and
``counselsim users add`` alike.

There are no default passwords. An account added without one gets a random one-time password,
returned once for the admin to hand over; only its argon2 hash is stored.
"""

from __future__ import annotations

import re
import secrets

from simulator.errors import InvalidInput
from simulator.service.accounts import hash_password
from simulator.store import Store, StoreError, User
from simulator.vocab import ROLES

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
NAME_RULE = ("user names are letters, digits and . _ @ - (at most 64, starting with a letter "
             "or digit)")


def add_user(store: Store, name: str, role: str, *, cohort: str | None = None,
             password: str | None = None, by: str) -> tuple[User, str | None]:
    """Create an account; return it and the one-time password when one was generated.

    ``by`` names who added it (an admin's name, or ``cli``), recorded in a ``user_added`` event.
    """
    name = (name or "").strip()
    cohort = (cohort or "").strip() or None
    if not NAME.match(name):
        raise InvalidInput(f"{name!r}: {NAME_RULE}")
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use {', '.join(ROLES)}")
    generated = None
    if password is None:
        generated = password = secrets.token_urlsafe(12)
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    try:
        user = store.add_user(name, role, cohort=cohort, password_hash=hashed)
    except StoreError as exc:
        raise InvalidInput(str(exc)) from None
    store.add_event(None, "user_added", {"user": name, "role": role, "by": by})
    return user, generated


__all__ = ["NAME", "NAME_RULE", "add_user"]
