"""Model provider faults, end to end through ``Practice`` and the real openai/anthropic SDKs.

tests/test_providers.py covers what the SDK layer raises; here the question is what the trainee
gets: for every fault the stub can inject, a turn ends in a plain ``error`` event (no exception,
no traceback text), the trainee's turn is in the database, and ``Practice.reply`` (the UI's
"ask the client again") then answers it without coding or grading the turn twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from stub_llm_server import Fault, Reply, StubLLMServer

from simulator.llm.providers import chat_model
from simulator.service.practice import Practice
from simulator.settings import ROOT, Settings

PERSONA = ROOT / "tests" / "fixtures" / "engine" / "test-dana.yaml"
KEY = "sk-test-fault-key-never-shown"
TRAINEE = "What has the drinking been like for you this week?"
RECOVERED = "Honestly, it has been most nights."




def settings_for(tmp_path: Path, **kw: Any) -> Settings:
    personas = tmp_path / "personas"
    personas.mkdir(exist_ok=True)
    shutil.copy(PERSONA, personas / PERSONA.name)
    base = dict(db=tmp_path / "db.sqlite", personas=personas, rubrics=ROOT / "rubrics",
                max_retries=1, request_timeout_s=0.5, requests_per_second=1000.0)
    return Settings(**{**base, **kw})


def provider_model(provider: str, stub_llm: StubLLMServer, settings: Settings,
                   monkeypatch: pytest.MonkeyPatch) -> tuple[str, Any]:
    if provider == "openai":
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", stub_llm.openai_base_url)
        spec = "openai:gpt-test"
    else:
        monkeypatch.setenv("ANTHROPIC_API_KEY", KEY)
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub_llm.anthropic_base_url)
        spec = "anthropic:claude-test"
    model = chat_model(spec, settings)
    assert model is not None
    return spec, model


def practice_with(provider: str, stub_llm: StubLLMServer, tmp_path: Path,
                  monkeypatch: pytest.MonkeyPatch) -> Practice:
    settings = settings_for(tmp_path)
    spec, model = provider_model(provider, stub_llm, settings, monkeypatch)
    settings = settings.model_copy(update={"client_model": spec})
    p = Practice.from_settings(settings, client_model=model)
    p.grader_model = None  # offline grading: the stub_llm only serves the client
    p.store.add_user("ana", "trainee")
    return p


async def collect(events: AsyncIterator[Any]) -> list[Any]:
    return [e async for e in events]


FAULTS = {
    "429-persistent": Fault.rate_limited(retry_after=0.05),
    "500": Fault.server_error(500),
    "503": Fault.server_error(503),
    "connection-reset": Fault.reset(),
    "timeout-before-first-byte": Fault.hang(),
    "timeout-mid-stream": Fault.hang_mid_stream("Well, I was going to", after_chunks=2),
    "malformed-stream": Fault.malformed(),
    "empty-reply": Fault.empty(),
}


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("fault", list(FAULTS))
def test_a_failing_model_gives_a_clear_error_keeps_the_turn_and_retry_answers(
        provider: str, fault: str, stub_llm: StubLLMServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    p = practice_with(provider, stub_llm, tmp_path, monkeypatch)
    sid = p.start("ana", "test-dana")
    stub_llm.default = FAULTS[fault]
    asyncio.run(fail_then_retry(p, sid, stub_llm))
    p.store.close()


async def fail_then_retry(p: Practice, sid: str, stub_llm: StubLLMServer) -> None:
    """One event loop for both calls, as in the web app (SDK clients belong to their loop)."""
    events = await collect(p.turn(sid, "ana", TRAINEE))

    kinds = [e.kind for e in events]
    assert kinds[0] == "stored" and kinds[-1] == "error", kinds
    assert "client" not in kinds
    err = events[-1]
    assert err.data == {"turn_id": events[0].data["turn_id"], "retry": True}
    assert "Your turn is saved" in err.text
    assert "Traceback" not in err.text and KEY not in err.text
    assert len(err.text) < 300
    turns = p.store.current_turns(sid)
    assert [t.speaker for t in turns] == ["client", "counselor"]
    assert turns[-1].text == TRAINEE
    assert [e.kind for e in p.store.events(sid, "client_error")] == ["client_error"]

    stub_llm.default = Reply(RECOVERED)
    retried = await collect(p.reply(sid, "ana"))
    assert retried[-1].kind == "client"
    assert "".join(e.text for e in retried if e.kind == "token").strip() == RECOVERED
    turns = p.store.current_turns(sid)
    assert [t.speaker for t in turns] == ["client", "counselor", "client"]
    assert turns[-1].text == RECOVERED and turns[-1].act
    assert len(p.store.codes(turns[1].id)) == 1, "the retry coded the turn again"
    assert len(p.store.grades(sid)) == 1, "the retry graded the turn again"


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_a_429_with_retry_after_is_waited_out_and_the_trainee_never_sees_it(
        provider: str, stub_llm: StubLLMServer, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    p = practice_with(provider, stub_llm, tmp_path, monkeypatch)
    sid = p.start("ana", "test-dana")
    stub_llm.enqueue(Fault.rate_limited(retry_after=0.05), Reply(RECOVERED))

    events = asyncio.run(collect(p.turn(sid, "ana", TRAINEE)))

    assert [e.kind for e in events][-1] == "client"
    assert [r.outcome for r in stub_llm.requests] == ["status", "reply"]
    assert p.store.current_turns(sid)[-1].text == RECOVERED
    assert p.store.events(sid, "client_error") == []
    p.store.close()


def test_malformed_structured_output_from_the_grader_never_delays_or_breaks_the_reply(
        stub_llm: StubLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Client offline, grader ChatOpenAI against the stub_llm answering non-JSON every time."""
    settings = settings_for(tmp_path, request_timeout_s=2.0)
    spec, grader = provider_model("openai", stub_llm, settings, monkeypatch)
    p = Practice.from_settings(settings.model_copy(update={"grader_model": spec}),
                               grader_model=grader)
    p.client_model = None
    p.store.add_user("ana", "trainee")
    sid = p.start("ana", "test-dana")
    stub_llm.default = Fault.malformed()

    async def turn_then_grades() -> list[Any]:
        events = [e async for e in p.turn(sid, "ana", TRAINEE)]
        assert p.store.grades(sid) == [], "the reply waited for the grader"
        await p.wait_for_grades()
        return events

    events = asyncio.run(turn_then_grades())
    assert events[-1].kind == "client"
    grades = p.store.grades(sid)
    assert len(grades) == 1 and grades[0].status == "pending"
    assert grades[0].error and KEY not in grades[0].error
    assert p.store.pending_grades(sid)[0].turn_id == events[0].data["turn_id"]
    assert len(stub_llm.requests) >= 2  # retried before giving up
    p.store.close()


def test_a_trainee_who_leaves_before_the_first_token_keeps_the_turns_codes(
        stub_llm: StubLLMServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The turn's codes are committed once the reply's first token is in (their commit took the
    GIL from the model request being built); a trainee who closes the tab while the model is
    still silent must not lose them."""
    p = practice_with("openai", stub_llm, tmp_path, monkeypatch)
    sid = p.start("ana", "test-dana")
    stub_llm.default = Fault.hang()

    async def leave_early() -> int:
        seen: list[Any] = []

        async def read() -> None:
            async for event in p.turn(sid, "ana", TRAINEE):
                seen.append(event)

        reading = asyncio.ensure_future(read())
        for _ in range(100):  # until the request is at the server, which says nothing
            if stub_llm.requests:
                break
            await asyncio.sleep(0.05)
        assert stub_llm.requests and [e.kind for e in seen] == ["stored"]
        reading.cancel()  # the tab is closed
        with contextlib.suppress(asyncio.CancelledError):
            await reading
        for _ in range(100):
            if p.store.codes(seen[0].data["turn_id"]):
                break
            await asyncio.sleep(0.05)
        return int(seen[0].data["turn_id"])

    turn_id = asyncio.run(leave_early())
    (record,) = p.store.codes(turn_id)
    assert record.labels and record.labels.get("utterances")
    p.store.close()
