"""Passwords for CounselSim users: argon2id hashes in the store, never the password itself.

``hash_password`` / ``verify_password`` wrap argon2-cffi's ``PasswordHasher`` (its defaults follow
RFC 9106). ``authenticate`` is what the web app's login calls. ``ensure_admin`` runs at start-up:
on an empty user table it creates ``admin`` with a random one-time password and returns it, so
the first person at the terminal can log in (and must change it at first sign-in); it returns
None whenever any user exists.

``check_password`` is the one password policy (length, not a common password, not the name),
used wherever a person chooses a password: the web's change page and ``counselsim users``.
"""

from __future__ import annotations

import secrets
from functools import cache
from importlib.resources import files

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from simulator.errors import InvalidInput
from simulator.store import Store, StoreError

_hasher = PasswordHasher()

MIN_PASSWORD_LENGTH = 8
"""What ``hash_password`` accepts at all (generated one-time passwords are 16 characters)."""
POLICY_LENGTH = 10
"""What a person must choose: long enough that an offline guess of its hash is slow."""
MAX_PASSWORD_LENGTH = 1024


@cache
def common_passwords() -> frozenset[str]:
    """The refused list shipped with the package (``common_passwords.txt``), casefolded."""
    text = files("simulator.service").joinpath("common_passwords.txt").read_text("utf-8")
    return frozenset(line.strip().casefold() for line in text.splitlines()
                     if line.strip() and not line.startswith("#"))


def check_password(password: str, name: str = "") -> str:
    """The password if it meets the policy; else ``InvalidInput`` saying what to change."""
    if len(password) < POLICY_LENGTH:
        raise InvalidInput(f"The password must be at least {POLICY_LENGTH} characters "
                           f"(a few words together are easy to remember).")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidInput(f"The password must be at most {MAX_PASSWORD_LENGTH} characters.")
    folded = password.strip().casefold()
    if folded in common_passwords():
        raise InvalidInput("That password is one of the most common ones; choose another.")
    if len(name) >= 3 and name.casefold() in folded:
        raise InvalidInput("The password must not contain your user name.")
    return password


def hash_password(password: str) -> str:
    """An argon2id hash (salted; two calls give different strings)."""
    if len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"password must be at least {MIN_PASSWORD_LENGTH} characters")
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; False for a wrong password or a missing/invalid hash."""
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def authenticate(store: Store, name: str, password: str) -> bool:
    """Login check; an unknown user costs a hash like a known one, so timing reveals nothing."""
    try:
        stored = store.password_hash(name)
    except StoreError:
        verify_password(_DUMMY_HASH, password)
        return False
    ok = verify_password(stored, password)
    if ok and stored and _hasher.check_needs_rehash(stored):
        store.set_password_hash(name, _hasher.hash(password))
    return ok


def ensure_admin(store: Store) -> str | None:
    """Create ``admin`` with a random one-time password when there are no users; return it."""
    if store.count_users() > 0:
        return None
    password = secrets.token_urlsafe(12)
    try:
        store.add_user("admin", "admin", password_hash=hash_password(password),
                       must_change_password=True)
    except StoreError:  # another process created the first user meanwhile
        return None
    store.add_event(None, "admin_created", {"user": "admin"})
    return password


_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))
