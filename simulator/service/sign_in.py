"""Signing in to the web app without letting the sign-in page be turned against the class.

What an attacker could do before: post random names to the login form from 40 connections; every
attempt cost a full argon2 hash on the thread pool the trainees' turns also use, so turns took 28 s
and memory doubled. What this module does instead:

* **A bounded hashing pool of its own** (``hash_workers`` threads, ``hash_queue`` waiting at most):
  password checks never take the threads turns run on, and a flood beyond the queue is answered
  at once ("busy") without hashing.
* **Growing delays per name and per address** (``simulator.service.throttle``): a name with too many
  failures is told "try again in N minutes" (no hash is computed while it waits); an address over
  its failure budget no longer gets the equal-cost hash for names that do not exist (it waits the
  same time without computing it), so random-name floods cost nothing after the first 20.
  Known names from that address are still checked, bounded by their own per-name delays, so a
  person behind the same classroom address can still sign in.
* **No writes on the event loop**: the user lookup, the stored sign-in and the audit event all run
  in worker threads; a database that cannot be written gives a clear "not saved" answer (503),
  never a 500.

Sign-ins are stored in the database as the sha256 of a random token (the token itself lives only
in the browser's cookie), with an absolute expiry (``sign_in_hours``) and an idle timeout
(``sign_in_idle_minutes``), so they survive a restart and an admin's reset, disable or delete ends
them at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import secrets
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import BaseModel

from simulator.errors import InvalidInput, StorageError
from simulator.service.accounts import (
    _DUMMY_HASH,
    MAX_PASSWORD_LENGTH,
    _hasher,
    check_password,
    hash_password,
    verify_password,
)
from simulator.service.throttle import LoginThrottle, minutes
from simulator.store import Store, StoreError, UnknownRecord

log = logging.getLogger("counselsim.sign_in")

WRONG = "Incorrect user name or password."
BUSY = "The server is busy signing people in. Try again in a minute."
TARPIT_S = 3.0
"""A failed attempt from an address over its budget is answered after this long (a timer, no
work): a flooding client's rate drops to a third of a request per second per connection, while
a right password from that address is answered at once. The wait doubles with every
``TARPIT_STEP`` further failures, up to ``TARPIT_MAX_S`` (``tarpit_s``)."""
TARPIT_STEP = 100
TARPIT_MAX_S = 12.0


def tarpit_s(over: int) -> float:
    """How long to answer a failure ``over`` failures past its address's budget: a flood that
    keeps going gets slower answers (40 connections: 13 attempts a second at first, about 3
    after 200 more), so its share of the server's time keeps falling; a person who mistypes
    behind that address waits at most ``TARPIT_MAX_S``."""
    return float(min(TARPIT_MAX_S, TARPIT_S * 2 ** (max(0, over) // TARPIT_STEP)))
CACHE_S = 5.0
"""How long a resolved sign-in is trusted without asking the database (revocations reach the web
app within this; every handler also re-reads the account, so a disabled one stops at once)."""
TOUCH_S = 60.0
"""``last_seen`` is written at most once a minute per sign-in (idle timeout granularity)."""


class Outcome(BaseModel):
    """What a sign-in attempt got: a token, or a message and the HTTP status to answer with."""

    token: str | None = None
    message: str = ""
    status: int = 200
    retry_after_s: int | None = None
    must_change: bool = False


class Who(BaseModel):
    """A valid sign-in: whose it is and whether they must change their password first."""

    name: str
    uid: str
    must_change: bool
    token_sha256: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def _iso(dt: datetime) -> str:
    return dt.isoformat(timespec="microseconds")


def storage_message(exc: Exception) -> str:
    text = str(exc).lower()
    why = ("the server's disk is full" if "full" in text else
           "the database is busy" if "locked" in text or "busy" in text else
           "the database could not be written")
    return (f"Your sign-in could not be saved: {why}. Try again in a moment or tell your "
            "administrator.")


HASH_NICE = 10


def _lower_priority() -> None:
    """Hashing threads run at a lower CPU priority (Linux: per thread), so a burst of sign-ins
    yields the cores to trainees' turns instead of competing with them as equals."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_NICE)


class SignIns:
    """The web app's sign-in service (one per app; safe to call from the event loop)."""

    def __init__(self, store: Store, *, hours: float = 12.0, idle_minutes: float = 120.0,
                 hash_workers: int = 1, hash_queue: int = 256,
                 throttle: LoginThrottle | None = None) -> None:
        self.store = store
        self.lifetime = timedelta(hours=hours)
        self.idle = timedelta(minutes=idle_minutes)
        self.throttle = throttle or LoginThrottle()
        self.hash_queue = hash_queue
        self._pool = ThreadPoolExecutor(max_workers=max(1, hash_workers),
                                        thread_name_prefix="counselsim-hash",
                                        initializer=_lower_priority)
        # Account lookups of sign-in attempts run here, not in the event loop's default pool,
        # which stores and codes trainees' turns: a flood of attempts queues behind itself.
        self._lookups = ThreadPoolExecutor(max_workers=2, thread_name_prefix="counselsim-lookup")
        self._waiting = 0
        self._cache: OrderedDict[str, tuple[Who | None, float]] = OrderedDict()
        self._lock = threading.Lock()
        started = time.perf_counter()
        verify_password(_DUMMY_HASH, "calibration")
        self.hash_s = time.perf_counter() - started
        """What one check costs here: an unknown name that is not hashed waits this long."""

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._lookups.shutdown(wait=False, cancel_futures=True)

    def _tarpit(self, address: str) -> float:
        return tarpit_s(self.throttle.address_over(address))

    async def _hashing(self, fn: Any, *args: Any) -> Any:
        """Run a password hash/verify in the bounded pool; None when the queue is full."""
        if self._waiting >= self.hash_queue:
            return None
        self._waiting += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._waiting -= 1

    # -- signing in ---------------------------------------------------------------------------

    async def sign_in(self, name: str, password: str, address: str) -> Outcome:
        name = (name or "").strip()
        if not name or not password or len(name) > 64 or len(password) > MAX_PASSWORD_LENGTH:
            return Outcome(message=WRONG, status=400)
        wait = self.throttle.name_wait(name)
        if wait > 0:
            return Outcome(message=f"Too many failed sign-ins for this name. Try again in "
                                   f"{minutes(wait)}.", status=429, retry_after_s=int(wait) + 1)
        try:
            account = await asyncio.get_running_loop().run_in_executor(self._lookups,
                                                                       self._account, name)
        except StorageError as exc:
            log.warning("sign-in lookup failed: %s", exc)
            return Outcome(message=storage_message(exc), status=503)
        if account is None:
            # The answer is known; the equal-cost hash only hides which names exist. It is
            # counted at once, and skipped (the same time waited instead) when the address is
            # over its budget or a real check is waiting: the pool is for real names.
            self.throttle.failed(name, address)
            if self.throttle.address_wait(address) > 0:
                await asyncio.sleep(self._tarpit(address))
            elif self._waiting > 0:
                await asyncio.sleep(self.hash_s)
            else:
                await self._hashing(verify_password, _DUMMY_HASH, password)
            return Outcome(message=WRONG, status=400)
        ok = await self._hashing(verify_password, account["password_hash"], password)
        if ok is None:
            return Outcome(message=BUSY, status=503, retry_after_s=60)
        if not ok:
            self.throttle.failed(name, address)
            if self.throttle.address_wait(address) > 0:  # same wait as an unknown name
                await asyncio.sleep(self._tarpit(address))
            return Outcome(message=WRONG, status=400)
        self.throttle.succeeded(name)
        if account["disabled"]:
            return Outcome(message="This account is disabled. Ask your administrator.",
                           status=403)
        token = secrets.token_urlsafe(32)
        try:
            await asyncio.to_thread(self._record, account, token, password, address)
        except (StorageError, StoreError) as exc:
            log.warning("sign-in not saved: %s", exc)
            return Outcome(message=storage_message(exc), status=503)
        return Outcome(token=token, must_change=bool(account["must_change_password"]))

    def _account(self, name: str) -> dict[str, Any] | None:
        try:
            user = self.store.get_user(name)
            return {**user.model_dump(), "password_hash": self.store.password_hash(name)}
        except UnknownRecord:
            return None

    def _record(self, account: dict[str, Any], token: str, password: str, address: str) -> None:
        expires = _iso(datetime.now(UTC) + self.lifetime)
        self.store.add_sign_in(token_hash(token), account["uid"], expires)
        stored = account["password_hash"]
        if stored and _hasher.check_needs_rehash(stored):
            self.store.set_password_hash(account["name"], _hasher.hash(password))
        try:
            self.store.add_event(None, "login", {"user": account["name"]})
        except StorageError as exc:  # the audit line is not worth refusing a sign-in for
            log.warning("login event not recorded: %s", exc)

    # -- who is this cookie? ---------------------------------------------------------------------

    async def resolve(self, token: str | None) -> Who | None:
        """The sign-in behind a cookie's token, or None (unknown, expired, idle, disabled)."""
        if not token or len(token) > 200:
            return None
        sha = token_hash(token)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(sha)
        if hit is not None and now - hit[1] < CACHE_S:
            return hit[0]
        try:
            who = await asyncio.to_thread(self._load, sha)
        except StorageError as exc:
            log.warning("sign-in lookup failed: %s", exc)
            return None
        with self._lock:
            self._cache[sha] = (who, now)
            self._cache.move_to_end(sha)
            while len(self._cache) > 10_000:
                self._cache.popitem(last=False)
        return who

    def _load(self, sha: str) -> Who | None:
        sign_in = self.store.get_sign_in(sha)
        if sign_in is None:
            return None
        now = datetime.now(UTC)
        last_seen = datetime.fromisoformat(sign_in.last_seen)
        if sign_in.expires < _iso(now) or now - last_seen > self.idle:
            self.store.delete_sign_ins(token_sha256=sha)
            return None
        try:
            user = self.store.get_user(sign_in.name)
        except UnknownRecord:
            return None
        if user.disabled:
            return None
        if (now - last_seen).total_seconds() > TOUCH_S:
            try:
                self.store.touch_sign_in(sha)
            except StorageError as exc:
                log.warning("sign-in not touched: %s", exc)
        return Who(name=user.name, uid=user.uid, must_change=user.must_change_password,
                   token_sha256=sha)

    def forget(self, *, sha: str | None = None, uid: str | None = None,
               name: str | None = None) -> None:
        """Drop cached answers (after a sign-out or a revocation in this process)."""
        with self._lock:
            for key, (who, _) in list(self._cache.items()):
                if key == sha or (who is not None and (who.uid == uid or who.name == name)):
                    del self._cache[key]

    async def sign_out(self, token: str | None) -> None:
        if not token:
            return
        sha = token_hash(token)
        self.forget(sha=sha)
        try:
            await asyncio.to_thread(self.store.delete_sign_ins, token_sha256=sha)
        except StorageError as exc:
            log.warning("sign-out not saved: %s", exc)

    # -- changing one's own password -------------------------------------------------------------

    async def change_password(self, who: Who, current: str, new: str, repeat: str) -> str:
        """Change the signed-in person's password; returns what to tell them. Other sign-ins of
        the account end; this one stays. ``InvalidInput`` says what to fix."""
        if new != repeat:
            raise InvalidInput("The two new passwords differ; type the same one twice.")
        check_password(new, who.name)
        if new == current:
            raise InvalidInput("Choose a password different from the current one.")
        wait = self.throttle.name_wait(who.name)
        if wait > 0:
            raise InvalidInput(f"Too many wrong passwords. Try again in {minutes(wait)}.")
        account = await asyncio.to_thread(self._account, who.name)
        if account is None or account["uid"] != who.uid:
            raise InvalidInput("Your account no longer exists.")
        ok = await self._hashing(verify_password, account["password_hash"], current)
        if ok is None:
            raise InvalidInput(BUSY)
        if not ok:
            self.throttle.failed(who.name, "change:" + who.uid)
            raise InvalidInput("Your current password is not right.")
        hashed = await self._hashing(hash_password, new)
        if hashed is None:
            raise InvalidInput(BUSY)
        await asyncio.to_thread(self._store_new, who, hashed)
        self.forget(uid=who.uid)
        return "Your password is changed."

    def _store_new(self, who: Who, hashed: str) -> None:
        self.store.set_password_hash(who.name, hashed, must_change=False)
        self.store.delete_sign_ins(uid=who.uid, keep=who.token_sha256)  # the others end
        self.store.add_event(None, "password_changed", {"user": who.name})


__all__ = ["BUSY", "WRONG", "Outcome", "SignIns", "Who", "storage_message", "token_hash"]
