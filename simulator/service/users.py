"""Managing accounts: the one name rule, the lifecycle and the audit trail, for the web's Users
tab and ``counselsim users`` alike.

There are no default passwords. An account added without one gets a random one-time password,
returned once for the admin to hand over; only its argon2 hash is stored, and the person must
choose their own at first sign-in. A chosen password meets ``accounts.check_password``.

Lifecycle: ``reset_password`` (a new one-time password, forced change), ``set_disabled`` (the
account stays, signing in stops), ``delete_user`` (the account goes; its practice sessions are
kept under a pseudonym for the program's records, or deleted). Each ends the account's
sign-ins at once and leaves an event saying who did it. Accounts carry a random ``uid``, so a
name deleted and added again is a new person: the old sign-ins and sessions are not theirs.
An admin cannot disable or delete themselves, and the last admin cannot be removed.
"""

from __future__ import annotations

import re
import secrets

from simulator.errors import InvalidInput
from simulator.service.accounts import check_password, hash_password
from simulator.store import Store, StoreError, User
from simulator.vocab import ROLES

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
NAME_RULE = ("user names are letters, digits and . _ @ - (at most 64, starting with a letter "
             "or digit)")


def one_time_password() -> str:
    return secrets.token_urlsafe(12)


def add_user(store: Store, name: str, role: str, *, cohort: str | None = None,
             password: str | None = None, must_change: bool | None = None,
             by: str) -> tuple[User, str | None]:
    """Create an account; return it and the one-time password when one was generated.

    A given password must meet the policy. ``must_change`` defaults to True for a generated
    password and False for a chosen one. ``by`` names who added it (an admin's name, or
    ``cli``), recorded in a ``user_added`` event.
    """
    name = (name or "").strip()
    cohort = (cohort or "").strip() or None
    if not NAME.match(name):
        raise InvalidInput(f"{name!r}: {NAME_RULE}")
    if role not in ROLES:
        raise InvalidInput(f"unknown role {role!r}: use {', '.join(ROLES)}")
    generated = None
    if password is None:
        generated = password = one_time_password()
    else:
        check_password(password, name)
    forced = generated is not None if must_change is None else must_change
    try:
        hashed = hash_password(password)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    try:
        user = store.add_user(name, role, cohort=cohort, password_hash=hashed,
                              must_change_password=forced)
    except StoreError as exc:
        raise InvalidInput(str(exc)) from None
    store.add_event(None, "user_added", {"user": name, "role": role, "by": by})
    return user, generated


def _other_than(name: str, by: str, what: str) -> None:
    if name == by:
        raise InvalidInput(f"You cannot {what} your own account; ask another admin.")


def _not_last_admin(store: Store, user: User, what: str) -> None:
    if user.role != "admin":
        return
    others = [u for u in store.list_users(role="admin") if u.name != user.name and not u.disabled]
    if not others:
        raise InvalidInput(f"{user.name!r} is the last admin; add another before you {what} it.")


def reset_password(store: Store, name: str, *, by: str) -> str:
    """A new one-time password for ``name`` (returned once); they must change it at sign-in.
    Their sign-ins end."""
    user = store.get_user(name)
    password = one_time_password()
    store.set_password_hash(user.name, hash_password(password), must_change=True)
    store.delete_sign_ins(uid=user.uid)
    store.add_event(None, "password_reset", {"user": user.name, "by": by})
    return password


def set_password(store: Store, name: str, password: str, *, by: str) -> None:
    """Set a chosen password (policy applies); the account's sign-ins end."""
    user = store.get_user(name)
    check_password(password, user.name)
    store.set_password_hash(user.name, hash_password(password), must_change=False)
    store.delete_sign_ins(uid=user.uid)
    store.add_event(None, "password_set", {"user": user.name, "by": by})


def set_disabled(store: Store, name: str, disabled: bool, *, by: str) -> User:
    """Disable (sign-ins end, signing in refused) or enable an account."""
    user = store.get_user(name)
    if disabled:
        _other_than(user.name, by, "disable")
        _not_last_admin(store, user, "disable")
    store.set_disabled(user.name, disabled)
    if disabled:
        store.delete_sign_ins(uid=user.uid)
    store.add_event(None, "user_disabled" if disabled else "user_enabled",
                    {"user": user.name, "by": by})
    return store.get_user(user.name)


def pseudonym_for(user: User) -> str:
    """What a deleted person's kept sessions are filed under: from the random uid, so it cannot
    be traced back to the name from a class list."""
    return f"deleted-{user.uid[:10]}"


def delete_user(store: Store, name: str, *, keep_sessions: bool, by: str) -> tuple[str | None, int]:
    """Delete an account. Its sessions are kept under a pseudonym (returned) or deleted.
    Returns (pseudonym or None, number of sessions kept or deleted)."""
    user = store.get_user(name)
    _other_than(user.name, by, "delete")
    _not_last_admin(store, user, "delete")
    pseudonym = pseudonym_for(user) if keep_sessions else None
    n = store.delete_user(user.name, sessions_to=pseudonym)
    store.add_event(None, "user_deleted", {"uid": user.uid, "role": user.role, "by": by,
                                           "sessions": "kept as " + pseudonym if pseudonym
                                           else "deleted", "n_sessions": n})
    return pseudonym, n


__all__ = ["NAME", "NAME_RULE", "add_user", "delete_user", "one_time_password", "pseudonym_for",
           "reset_password", "set_disabled", "set_password"]
