"""Signing in: growing delays instead of a lock, stored and expiring sign-ins, the hashing pool."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from simulator.errors import InvalidInput
from simulator.service.sign_in import BUSY, WRONG, SignIns, token_hash
from simulator.service.throttle import Backoff, LoginThrottle, minutes
from simulator.service.users import add_user, set_disabled
from simulator.store import open_store


@pytest.fixture(autouse=True)
def cheap_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """argon2 with test parameters: what is tested is when a hash is computed, not its cost."""
    from argon2 import PasswordHasher

    from simulator.service import accounts, sign_in

    cheap = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    dummy = cheap.hash("dummy")
    monkeypatch.setattr(sign_in, "TARPIT_S", 0.01)
    for module in (accounts, sign_in):
        monkeypatch.setattr(module, "_hasher", cheap)
        monkeypatch.setattr(module, "_DUMMY_HASH", dummy)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_backoff_grows_and_is_capped() -> None:
    rule = Backoff(free=3, first_s=60, max_s=900)
    assert [rule.delay(n) for n in (1, 3, 4, 5, 6, 9, 50)] == [0, 0, 60, 120, 240, 900, 900]
    assert minutes(1) == "1 minute" and minutes(61) == "2 minutes"


def test_throttle_per_name_and_per_address_and_bounded() -> None:
    clock = Clock()
    t = LoginThrottle(Backoff(free=2, first_s=60), Backoff(free=3, first_s=30), max_tracked=5,
                      clock=clock)
    t.failed("Amy", "10.0.0.1")
    t.failed("amy", "10.0.0.2")
    assert t.name_wait("AMY") == 0  # two free failures, whatever the case
    t.failed("amy", "10.0.0.2")
    assert t.name_wait("amy") == 60 and t.name_wait("ben") == 0
    clock.t += 61
    assert t.name_wait("amy") == 0  # the wait is over: the right password works again
    t.failed("x1", "10.0.0.2")
    t.failed("x2", "10.0.0.2")
    assert t.address_wait("10.0.0.2") == 30 and t.address_wait("10.0.0.1") == 0
    t.succeeded("amy")
    assert t.name_wait("amy") == 0
    for i in range(50):
        t.failed(f"random{i}", "10.0.0.9")
    assert len(t._names.records) <= 5  # a flood of random names cannot grow it


@pytest.fixture
def service(tmp_path: Path) -> tuple[Any, SignIns, Clock]:
    store = open_store(tmp_path / "s.db")
    add_user(store, "amy", "trainee", password="sunny-long-pass", by="test")
    clock = Clock()
    throttle = LoginThrottle(Backoff(free=3, first_s=120), Backoff(free=5, first_s=60),
                             clock=clock)
    sign_ins = SignIns(store, throttle=throttle, idle_minutes=30, hours=8)
    return store, sign_ins, clock


def test_delay_not_lock_with_a_clear_message(service: Any) -> None:
    store, sign_ins, clock = service
    for _ in range(4):  # three free failures, then the fourth starts a 2-minute wait
        assert run(sign_ins.sign_in("amy", "wrong-guess", "1.2.3.4")).message == WRONG
    out = run(sign_ins.sign_in("amy", "sunny-long-pass", "1.2.3.4"))
    assert out.token is None and out.status == 429 and "try again in 2 minutes" in \
        out.message.lower() and out.retry_after_s
    unknown = [run(sign_ins.sign_in("nobody", "x" * 12, "5.6.7.8")).message for _ in range(5)]
    assert unknown[-1].startswith("Too many failed sign-ins")  # same answer: no name leaks
    clock.t += 121
    ok = run(sign_ins.sign_in("amy", "sunny-long-pass", "1.2.3.4"))
    assert ok.token and not ok.must_change


def test_an_address_over_budget_costs_no_hash_for_unknown_names(service: Any) -> None:
    store, sign_ins, clock = service
    for i in range(6):
        run(sign_ins.sign_in(f"random{i}", "whatever-pass", "9.9.9.9"))
    assert sign_ins.throttle.address_wait("9.9.9.9") > 0
    calls = []
    real = sign_ins._hashing

    async def counting(fn: Any, *args: Any) -> Any:
        calls.append(fn)
        return await real(fn, *args)

    sign_ins._hashing = counting  # type: ignore[method-assign]
    assert run(sign_ins.sign_in("random-new", "whatever-pass", "9.9.9.9")).message == WRONG
    assert calls == []  # no argon2 for a random name from a flooding address
    ok = run(sign_ins.sign_in("amy", "sunny-long-pass", "9.9.9.9"))  # a real person still can
    assert ok.token and len(calls) == 1


def test_a_full_hashing_queue_answers_busy_at_once(service: Any) -> None:
    store, sign_ins, clock = service
    sign_ins.hash_queue = 0
    out = run(sign_ins.sign_in("amy", "sunny-long-pass", "1.1.1.1"))
    assert (out.token, out.status, out.message) == (None, 503, BUSY)


def test_sign_ins_are_stored_hashed_survive_a_restart_and_expire(service: Any,
                                                                  tmp_path: Path) -> None:
    store, sign_ins, clock = service
    token = run(sign_ins.sign_in("amy", "sunny-long-pass", "1.1.1.1")).token
    assert token and store.get_sign_in(token) is None  # never stored as is
    assert store.get_sign_in(token_hash(token)) is not None
    again = SignIns(open_store(tmp_path / "s.db"))  # a restart: a new process, same database
    who = run(again.resolve(token))
    assert who is not None and who.name == "amy"
    with store._write() as db:  # idle for longer than the timeout
        db.execute("UPDATE sign_ins SET last_seen = '2000-01-01T00:00:00+00:00'")
    assert run(SignIns(store, idle_minutes=30).resolve(token)) is None
    assert store.get_sign_in(token_hash(token)) is None  # and removed
    token2 = run(sign_ins.sign_in("amy", "sunny-long-pass", "1.1.1.1")).token
    with store._write() as db:
        db.execute("UPDATE sign_ins SET expires = '2000-01-01'")
    assert run(SignIns(store).resolve(token2)) is None
    assert run(sign_ins.resolve("not-a-token")) is None


def test_disabled_and_forced_change(service: Any) -> None:
    store, sign_ins, clock = service
    token = run(sign_ins.sign_in("amy", "sunny-long-pass", "1.1.1.1")).token
    set_disabled(store, "amy", True, by="admin")
    sign_ins.forget(uid=store.get_user("amy").uid)
    assert run(sign_ins.resolve(token)) is None  # ended at once
    out = run(sign_ins.sign_in("amy", "sunny-long-pass", "1.1.1.1"))
    assert out.token is None and "disabled" in out.message
    set_disabled(store, "amy", False, by="admin")
    _, one_time = add_user(store, "ben", "trainee", by="admin")
    assert one_time
    first = run(sign_ins.sign_in("ben", one_time, "1.1.1.1"))
    assert first.token and first.must_change
    who = run(sign_ins.resolve(first.token))
    assert who is not None and who.must_change
    with pytest.raises(InvalidInput, match="differ"):
        run(sign_ins.change_password(who, one_time, "new-pass-xyz-1", "new-pass-xyz-2"))
    with pytest.raises(InvalidInput, match="common"):
        run(sign_ins.change_password(who, one_time, "password123", "password123"))
    with pytest.raises(InvalidInput, match="not right"):
        run(sign_ins.change_password(who, "wrong-current", "new-pass-xyz-1", "new-pass-xyz-1"))
    other = run(sign_ins.sign_in("ben", one_time, "1.1.1.1")).token
    run(sign_ins.change_password(who, one_time, "new-pass-xyz-1", "new-pass-xyz-1"))
    now = run(sign_ins.resolve(first.token))
    assert now is not None and not now.must_change
    assert run(sign_ins.resolve(other)) is None  # the other sign-in ended
    assert run(sign_ins.sign_in("ben", one_time, "1.1.1.1")).token is None


def test_a_flood_from_one_address_gets_ever_slower_answers_up_to_a_ceiling() -> None:
    from simulator.service import sign_in
    from simulator.service.throttle import LoginThrottle

    assert sign_in.tarpit_s(0) == sign_in.TARPIT_S
    assert sign_in.tarpit_s(sign_in.TARPIT_STEP) == 2 * sign_in.TARPIT_S
    assert sign_in.tarpit_s(40 * sign_in.TARPIT_STEP) == sign_in.TARPIT_MAX_S
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for i in range(20):  # the address's free failures
        throttle.failed(f"name{i}", "10.0.0.9")
    assert throttle.address_over("10.0.0.9") == 0
    for i in range(150):
        throttle.failed(f"other{i}", "10.0.0.9")
    assert throttle.address_over("10.0.0.9") == 150
    assert throttle.address_over("10.0.0.10") == 0
