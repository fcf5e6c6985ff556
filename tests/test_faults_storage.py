"""Storage faults during a turn: another writer holding the database, a full disk.

Nothing committed may be lost, and the trainee gets a plain message instead of a traceback: a turn
the database refused raises ``TurnNotSaved`` (a ``TurnRejected``, so the UI gives the text back);
a reply the database refused is an ``error`` event with ``retry``. The killed-process case is in
tests/test_session.py.
"""

from __future__ import annotations

import asyncio
import shutil
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.service.practice import Practice, TurnNotSaved, TurnRejected
from simulator.settings import ROOT, Settings
from simulator.store import Store, StoreUnavailable
from simulator.store import sqlite_backend as store_module

PERSONA = ROOT / "tests" / "fixtures" / "engine" / "test-dana.yaml"


def make_practice(tmp_path: Path) -> Practice:
    personas = tmp_path / "personas"
    personas.mkdir(exist_ok=True)
    shutil.copy(PERSONA, personas / PERSONA.name)
    p = Practice.from_settings(Settings(db=tmp_path / "db.sqlite", personas=personas,
                                        rubrics=ROOT / "rubrics"))
    p.store.add_user("ana", "trainee")
    return p


@pytest.fixture
def practice(tmp_path: Path) -> Iterator[Practice]:
    p = make_practice(tmp_path)
    yield p
    p.store.close()


def run(events: AsyncIterator[Any]) -> list[Any]:
    async def go() -> list[Any]:
        return [e async for e in events]

    return asyncio.run(go())


def snapshot(path: Path) -> list[tuple[Any, ...]]:
    """Every committed turn, read by a fresh connection (what a restarted app would see)."""
    conn = sqlite3.connect(path)
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return conn.execute("SELECT session_id, idx, speaker, text FROM turns "
                            "ORDER BY id").fetchall()
    finally:
        conn.close()


class Holder:
    """A second connection that takes the write lock (BEGIN EXCLUSIVE), writes, and holds it."""

    def __init__(self, path: Path, hold_s: float) -> None:
        self.path, self.hold_s = path, hold_s
        self.locked = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            conn.execute("BEGIN EXCLUSIVE")
            conn.execute("INSERT INTO events (session_id, kind, data_json, created) "
                         "VALUES (NULL, 'other-writer', NULL, '2026-01-01')")
            self.locked.set()
            threading.Event().wait(self.hold_s)
            conn.execute("COMMIT")
            conn.close()
        except BaseException as exc:  # reported to the test
            self.error = exc
            self.locked.set()

    def __enter__(self) -> Holder:
        self.thread.start()
        assert self.locked.wait(10) and self.error is None, self.error
        return self

    def __exit__(self, *exc: object) -> None:
        self.thread.join(30)


def test_a_turn_waits_for_another_writer_and_nothing_is_lost(practice: Practice) -> None:
    sid = practice.start("ana", "test-dana")
    run(practice.turn(sid, "ana", "What brings you here?"))
    before = snapshot(practice.store.path)

    with Holder(practice.store.path, hold_s=0.5) as holder:
        events = run(practice.turn(sid, "ana", "Tell me about your evenings."))

    assert holder.error is None
    assert [e.kind for e in events][0] == "stored" and events[-1].kind == "client"
    after = snapshot(practice.store.path)
    assert after[:len(before)] == before
    assert [row[2] for row in after] == ["client", "counselor", "client", "counselor", "client"]
    assert practice.store.events(kind="other-writer"), "the other writer's commit was lost"


def test_a_database_locked_past_the_wait_refuses_the_turn_clearly(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "BUSY_TIMEOUT_MS", 200)
    practice = make_practice(tmp_path)
    sid = practice.start("ana", "test-dana")
    run(practice.turn(sid, "ana", "What brings you here?"))
    before = snapshot(practice.store.path)

    with Holder(practice.store.path, hold_s=2.0), pytest.raises(TurnNotSaved) as info:
        run(practice.turn(sid, "ana", "And how is work going?"))

    message = str(info.value)
    assert isinstance(info.value, TurnRejected)
    assert "not saved" in message and "busy" in message and "again" in message
    assert "sqlite" not in message.lower() and "Traceback" not in message
    assert snapshot(practice.store.path)[:len(before)] == before
    # the lock is gone: the same text goes through and the session continues
    events = run(practice.turn(sid, "ana", "And how is work going?"))
    assert events[-1].kind == "client"
    practice.store.close()


def test_a_full_disk_refuses_the_turn_clearly_and_keeps_what_was_committed(
        practice: Practice, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real SQLITE_FULL: no connection of the app (any thread) may grow the file any more."""
    sid = practice.start("ana", "test-dana")
    run(practice.turn(sid, "ana", "What brings you here?"))
    before = snapshot(practice.store.path)
    limit = {"pages": 1_073_741_823}
    real_db = store_module.SqliteBackend.db

    def limited(self: store_module.SqliteBackend) -> Any:
        db = real_db.fget(self)  # type: ignore[attr-defined]
        db.execute(f"PRAGMA max_page_count = {limit['pages']}")
        return db

    monkeypatch.setattr(store_module.SqliteBackend, "db", property(limited))
    limit["pages"] = practice.store.db.execute("PRAGMA page_count").fetchone()[0]

    with pytest.raises(TurnNotSaved) as info:
        for n in range(20):  # until the pages run out (free space in pages absorbs a few)
            run(practice.turn(sid, "ana", f"Turn {n}: " + "tell me more about that. " * 150))

    assert "disk is full" in str(info.value) and "again" in str(info.value)
    committed = snapshot(practice.store.path)
    assert committed[:len(before)] == before
    limit["pages"] = 1_073_741_823
    events = run(practice.turn(sid, "ana", "Shall we go on?"))
    assert events[-1].kind == "client"
    speakers = [t.speaker for t in practice.store.current_turns(sid)]
    assert speakers[-2:] == ["counselor", "client"]


def test_a_full_disk_while_saving_the_reply_keeps_the_turn_and_retry_works(
        practice: Practice, monkeypatch: pytest.MonkeyPatch) -> None:
    sid = practice.start("ana", "test-dana")
    real_add_turn = Store.add_turn

    def full_for_client(self: Store, session_id: str, speaker: str, text: str,
                        **kw: Any) -> Any:
        if speaker == "client":
            raise StoreUnavailable("database or disk is full")
        return real_add_turn(self, session_id, speaker, text, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Store, "add_turn", full_for_client)
    events = run(practice.turn(sid, "ana", "What would you like to change?"))
    assert [e.kind for e in events][0] == "stored" and events[-1].kind == "error"
    assert events[-1].data["retry"] is True
    assert "Your turn is saved" in events[-1].text and "disk is full" in events[-1].text
    assert practice.store.current_turns(sid)[-1].text == "What would you like to change?"

    monkeypatch.setattr(Store, "add_turn", real_add_turn)
    events = run(practice.reply(sid, "ana"))
    assert events[-1].kind == "client"
    turns = practice.store.current_turns(sid)
    assert [t.speaker for t in turns] == ["client", "counselor", "client"]
    assert len(practice.store.codes(turns[1].id)) == 1
