"""Growing delays after failed sign-ins, per user name and per client address.

Why delays and not a lock: a lock lets anyone shut a named person out (the admin too) with five
wrong guesses, and a locked-out person meeting "Incorrect credentials" with the right password
cannot tell what happened. Here the first few failures are free; after that each failure pushes
the next allowed attempt further out (1 minute, 2, 4, ... at most 15), the person is told how long
to wait, and the right password works again as soon as the wait is over.

Per name: bounds guessing against one account, whoever guesses (applied to unknown names too, so
the answer never reveals which names exist). Per address: bounds what one machine (or one
classroom behind one address) can make the server do; see ``simulator.service.sign_in`` for what
an address over its budget still gets.

State is in memory, bounded (oldest entries dropped first) so a flood of random names cannot grow
it without limit; a restart forgets it, which only ever shortens a wait.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Backoff:
    free: int
    """Failures allowed before any delay."""
    first_s: float = 60.0
    max_s: float = 900.0
    forget_s: float = 3600.0
    """A record with no failure for this long starts over."""

    def delay(self, failures: int) -> float:
        over = failures - self.free
        if over <= 0:
            return 0.0
        return float(min(self.max_s, self.first_s * 2 ** min(over - 1, 30)))


@dataclass
class _Record:
    failures: int = 0
    last: float = 0.0
    until: float = 0.0


@dataclass
class _Book:
    rule: Backoff
    cap: int
    records: OrderedDict[str, _Record] = field(default_factory=OrderedDict)

    def get(self, key: str, now: float) -> _Record | None:
        rec = self.records.get(key)
        if rec is not None and now - rec.last > self.rule.forget_s and now >= rec.until:
            del self.records[key]
            return None
        return rec

    def fail(self, key: str, now: float) -> None:
        rec = self.get(key, now) or _Record()
        rec.failures += 1
        rec.last = now
        rec.until = max(rec.until, now + self.rule.delay(rec.failures))
        self.records[key] = rec
        self.records.move_to_end(key)
        while len(self.records) > self.cap:
            self.records.popitem(last=False)


ACCOUNT = Backoff(free=5)
ADDRESS = Backoff(free=20)


class LoginThrottle:
    """Thread-safe failure books for names and addresses (one per web app)."""

    def __init__(self, account: Backoff = ACCOUNT, address: Backoff = ADDRESS,
                 max_tracked: int = 50_000, clock: object = time.monotonic) -> None:
        self._names = _Book(account, max_tracked)
        self._addresses = _Book(address, max_tracked)
        self._lock = threading.Lock()
        self._clock = clock

    def _now(self) -> float:
        return float(self._clock())  # type: ignore[operator]

    def name_wait(self, name: str) -> float:
        """Seconds until ``name`` may try again (0: now)."""
        with self._lock:
            now = self._now()
            rec = self._names.get(name.casefold(), now)
            return max(0.0, rec.until - now) if rec else 0.0

    def address_wait(self, address: str) -> float:
        """Seconds until this address is back within its budget (0: it is now)."""
        with self._lock:
            now = self._now()
            rec = self._addresses.get(address, now)
            return max(0.0, rec.until - now) if rec else 0.0

    def address_over(self, address: str) -> int:
        """How many failures this address has had beyond its free ones (0: within them)."""
        with self._lock:
            rec = self._addresses.get(address, self._now())
            return max(0, rec.failures - self._addresses.rule.free) if rec else 0

    def failed(self, name: str, address: str) -> None:
        with self._lock:
            now = self._now()
            self._names.fail(name.casefold(), now)
            self._addresses.fail(address, now)

    def succeeded(self, name: str) -> None:
        """The right password: the name's failures are forgotten (the address's are not: one
        person signing in says nothing about the other attempts from that address)."""
        with self._lock:
            self._names.records.pop(name.casefold(), None)


def minutes(seconds: float) -> str:
    """'1 minute', '3 minutes': how a wait is said to a person (rounded up)."""
    n = max(1, math.ceil(seconds / 60))
    return f"{n} minute" if n == 1 else f"{n} minutes"


__all__ = ["ACCOUNT", "ADDRESS", "Backoff", "LoginThrottle", "minutes"]
