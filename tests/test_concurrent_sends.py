"""One turn at a time per session: five tabs sending at once, Enter then Send, a stale tab."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_session import make_settings

from simulator.service.practice import MOVED, Practice, TurnBusy, TurnRejected


@pytest.fixture
def practice(tmp_path: Path) -> Iterator[Practice]:
    p = Practice.from_settings(make_settings(tmp_path))
    p.store.add_user("ana", "trainee", cohort="c1")
    yield p
    p.store.close()


async def send(practice: Practice, sid: str, text: str, **kw: Any) -> list[str] | Exception:
    try:
        return [e.kind async for e in practice.turn(sid, "ana", text, **kw)]
    except TurnRejected as exc:
        return exc


def speakers(practice: Practice, sid: str) -> list[str]:
    return [t.speaker for t in practice.store.current_turns(sid)]


def test_five_tabs_at_once_store_one_turn_and_one_reply(practice: Practice) -> None:
    sid = practice.start("ana", "test-dana")

    async def five() -> list[Any]:
        return await asyncio.gather(*(send(practice, sid, f"Tab {i}: what brings you in?")
                                      for i in range(5)))

    results = asyncio.run(five())
    done = [r for r in results if isinstance(r, list)]
    refused = [r for r in results if isinstance(r, TurnBusy)]
    assert len(done) == 1 and done[0][-1] == "client" and len(refused) == 4
    assert "still being answered" in str(refused[0])
    assert speakers(practice, sid) == ["client", "counselor", "client"]
    assert not practice.busy(sid)


def test_enter_then_send_with_one_key_is_stored_once(practice: Practice) -> None:
    sid = practice.start("ana", "test-dana")
    text = "It sounds like this has been weighing on you."

    async def twice() -> list[Any]:
        return await asyncio.gather(send(practice, sid, text, key="k1", seen=1),
                                    send(practice, sid, text, key="k1", seen=1))

    first, second = asyncio.run(twice())
    assert first[-1] == "client" and second == ["duplicate"]
    again = asyncio.run(send(practice, sid, text, key="k1", seen=1))  # a late retry of it
    assert again == ["duplicate"]
    assert [t.text for t in practice.store.current_turns(sid)].count(text) == 1


def test_a_stale_tab_is_refused_and_told_why(practice: Practice) -> None:
    sid = practice.start("ana", "test-dana")
    asyncio.run(send(practice, sid, "What brings you in today?", seen=1))
    stale = asyncio.run(send(practice, sid, "Tell me more.", seen=1))  # that tab saw 1 turn
    assert isinstance(stale, TurnRejected) and str(stale) == MOVED
    assert speakers(practice, sid) == ["client", "counselor", "client"]


def test_rewind_and_end_wait_for_the_reply(practice: Practice) -> None:
    sid = practice.start("ana", "test-dana")

    async def during() -> tuple[Any, Any]:
        events = practice.turn(sid, "ana", "What brings you in today?")
        first = await events.__anext__()  # stored; the reply is in flight now
        with pytest.raises(TurnBusy):
            practice.rewind(sid, "ana", 1)
        with pytest.raises(TurnBusy):
            await practice.end_async(sid, "ana")
        rest = [e.kind async for e in events]
        return first.kind, rest

    first, rest = asyncio.run(during())
    assert first == "stored" and rest[-1] == "client"
    practice.rewind(sid, "ana", 1)  # once answered, allowed
    assert speakers(practice, sid) == ["client"]
