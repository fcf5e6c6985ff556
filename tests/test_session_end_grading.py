"""Ending a session starts the LLM's session-level grade (the rubric's globals) in the background.

The grader is a scripted LangChain chat model (``test_grader.ScriptedChatModel``) that answers
turn-grade prompts and session-grade prompts differently; the engine runs offline otherwise.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatResult
from pydantic import Field
from test_grader import ScriptedChatModel, tool_call
from test_session import make_settings

from simulator.grader.grade import GradeOptions
from simulator.reports.render import build_report, render
from simulator.service.practice import Practice
from simulator.service.regrade import regrade_session


@pytest.fixture
def practice(tmp_path: Path) -> Iterator[Practice]:
    p = Practice.from_settings(make_settings(tmp_path))
    p.store.add_user("ana", "trainee", cohort="c1")
    yield p
    p.store.close()


FAST = GradeOptions(attempts=2, backoff_s=0, timeout_s=30)
TURNS = ["What brings you in today?", "It sounds like coming here was not your idea."]
TURN_ANSWER = tool_call({"rationale": "An open question.",
                         "codes": {"behaviour": "Q", "question_type": "OQ"},
                         "alternative": "What would you like to get out of today?"})


def globals_answer(partnership: int = 4) -> AIMessage:
    item = {"score": 3, "rationale": "Some reflections.", "evidence": []}
    return tool_call({"items": {
        "cultivating_change_talk": item, "softening_sustain_talk": item, "empathy": item,
        "partnership": {"score": partnership, "rationale": "Invited the client's view.",
                        "evidence": [TURNS[0]]}}}, name="session_grade")


class Grader(ScriptedChatModel):
    """Turn prompts get ``TURN_ANSWER``; session prompts get ``session`` (after ``gate`` opens)."""

    session: AIMessage = Field(default_factory=globals_answer)
    gate: threading.Event | None = None
    session_calls: int = 0

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        if "global items" not in messages[0].text.lower():
            self.script = [TURN_ANSWER]
            return super()._generate(messages, stop, run_manager, **kwargs)
        if self.gate is not None:
            assert self.gate.wait(timeout=30), "the test never released the session grade"
        self.session_calls += 1
        self.script = [self.session]
        return super()._generate(messages, stop, run_manager, **kwargs)


def use_grader(practice: Practice, grader: Grader) -> Grader:
    """Grade with ``grader``, recorded on new sessions as an LLM grader (not "offline")."""
    practice.grader_model = grader
    practice.settings = practice.settings.model_copy(update={"grader_model": "openai:gpt-test"})
    return grader


def play(practice: Practice, *, end: bool = True, between: Any = None) -> str:
    """Start, take the turns and end in one event loop (grade tasks live on it), then wait."""
    async def scenario() -> str:
        sid = practice.start("ana", "test-dana")
        for text in TURNS:
            async for _ in practice.turn(sid, "ana", text):
                pass
        if end:
            await practice.end_async(sid, "ana")
        if between is not None:
            await between(sid)
        await practice.wait_for_grades()
        return sid

    return asyncio.run(scenario())


def test_ending_grades_the_globals_in_the_background_and_the_report_shows_them(
        practice: Practice) -> None:
    gate = threading.Event()
    use_grader(practice, Grader(gate=gate))
    practice.grade_options = FAST

    async def ended_before_the_grade(sid: str) -> None:
        assert practice.store.get_session(sid).status == "ended"
        for _ in range(3000):  # the task reaches the model (held at the gate)
            if practice.store.events(sid, "session_grade_started"):
                break
            await asyncio.sleep(0.01)
        assert practice.store.session_grade(sid, "miti-4.2.1") is None  # still being graded
        waiting = build_report(practice.store, sid)
        assert waiting.globals_status == "waiting"
        assert "still scoring the global items" in render(waiting, "html")
        gate.set()

    sid = play(practice, between=ended_before_the_grade)
    sg = practice.store.session_grade(sid, "miti-4.2.1")
    assert sg is not None and sg.items["partnership"].score == 4
    assert sg.items["partnership"].evidence == [TURNS[0]]
    assert all(g.status == "ok" for g in practice.store.grades(sid))

    report = build_report(practice.store, sid)
    assert report.globals_status == "graded"
    data = json.loads(render(report, "json"))
    partnership = next(s for s in data["scores"]["session_items"] if s["id"] == "partnership")
    assert partnership["score"] == 4 and partnership["source"] == "grader"
    assert partnership["evidence"] == [TURNS[0]]
    html = render(report, "html")
    assert "by grader" in html and "Invited the client&#39;s view." in html
    assert "What brings you in today?" in html.split("Global scores")[1].split("</section>")[0]
    assert "Invited the client" in render(report, "md")


def test_malformed_globals_stay_pending_and_regrade_fills_them(practice: Practice) -> None:
    model = use_grader(practice, Grader(session=globals_answer(partnership=9)))  # out of range
    practice.grade_options = FAST
    sid = play(practice)
    assert model.session_calls == 2  # retried once, then left pending
    session = practice.store.get_session(sid)
    assert session.status == "ended"
    assert [t.text for t in practice.store.current_turns(sid) if t.speaker == "counselor"] == TURNS
    assert practice.store.session_grade(sid, "miti-4.2.1") is None
    pending = practice.store.events(sid, "session_grade_pending")
    assert len(pending) == 1 and pending[0].data and pending[0].data["status"] == "pending"
    report = build_report(practice.store, sid)
    assert {s.source for s in report.scores.session_items} == {"estimate"}
    assert "regrade" in render(report, "html")

    result = asyncio.run(regrade_session(practice.store, sid, model=Grader(),
                                         spec="openai:gpt-test", options=FAST))
    assert result.session_items == "ok"
    sg = practice.store.session_grade(sid, "miti-4.2.1")
    assert sg is not None and sg.items["partnership"].score == 4


def test_ending_never_fails_because_grading_does(practice: Practice,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    use_grader(practice, Grader())
    practice.grade_options = FAST

    calls: list[str] = []

    def broken(*args: Any, **kwargs: Any) -> bool:
        calls.append("store")
        raise OSError("disk gone")

    monkeypatch.setattr("simulator.service.regrade.store_session_grade", broken)
    sid = play(practice)
    assert calls == ["store"]
    assert practice.store.get_session(sid).status == "ended"
    assert practice.store.session_grade(sid, "miti-4.2.1") is None
    pending = practice.store.events(sid, "session_grade_pending")
    assert pending and pending[-1].data == {"status": "error", "error": "OSError"}
    assert build_report(practice.store, sid).globals_status == "pending"


def test_sync_end_without_a_loop_leaves_the_globals_for_regrade(practice: Practice) -> None:
    model = use_grader(practice, Grader())
    practice.grade_options = FAST
    sid = play(practice, end=False)  # two trainee turns, graded; the session still active
    assert build_report(practice.store, sid).globals_status == "at_end"
    practice.end(sid, "ana")  # no running loop here
    assert practice.store.get_session(sid).status == "ended"
    assert model.session_calls == 0 and not practice._grading
    report = build_report(practice.store, sid)
    assert report.globals_status == "pending"  # never started: regrade scores them
    assert f"counselsim regrade {sid}" in render(report, "md")


def test_offline_ending_is_unchanged(practice: Practice) -> None:
    assert practice.grader_model is None
    sid = play(practice)
    assert practice.store.get_session(sid).status == "ended"
    assert practice.store.session_grade(sid, "miti-4.2.1") is None
    assert not practice.store.events(sid, "session_grade_pending")
    report = build_report(practice.store, sid)
    assert {s.source for s in report.scores.session_items} == {"estimate"}
    assert "regrade" not in render(report, "html")
    sid2 = practice.start("ana", "test-dana")
    practice.end(sid2, "ana")  # sync, no loop: fine offline too
    assert practice.store.get_session(sid2).status == "ended"


def test_the_terminal_chat_waits_for_the_global_grade(practice: Practice) -> None:
    from simulator.cli.chat import run_chat

    model = use_grader(practice, Grader())
    practice.grade_options = FAST
    summary = asyncio.run(run_chat(practice, trainee="ana", persona_id="test-dana",
                                   rubric_id=None, mode="coach", turns=TURNS, quiet=True))
    sid = summary["session_id"]
    assert model.session_calls == 1
    sg = practice.store.session_grade(sid, "miti-4.2.1")
    assert sg is not None and sg.items["partnership"].score == 4
