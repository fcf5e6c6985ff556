"""``counselsim regrade``: pending, failed and missing grades are finished later, in the store."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from content_fixtures import new_session
from test_grader import ScriptedChatModel, tool_call
from typer.testing import CliRunner

from simulator.cli.main import app
from simulator.service.regrade import RegradeError, regrade_session, run_regrade
from simulator.settings import Settings
from simulator.store import Store

GOOD = {"rationale": 'A yes/no question: "Do you drink every night?"',
        "codes": {"behaviour": "Q", "question_type": "CQ", "empathy_turn": 3},
        "alternative": "What does an evening of drinking look like for you?"}


def build(store: Store) -> tuple[str, dict[str, int]]:
    """Turn a: ok grade; b: pending; c: no grade (process died); d: pending, then rewound away."""
    sid = new_session(store)
    ids: dict[str, int] = {}
    for key, text in [("a", "What brings you in?"), ("b", "Do you drink every night?"),
                      ("c", "Is it more than five pints?"), ("d", "Have you tried stopping?")]:
        t = store.add_turn(sid, "counselor", text)
        ids[key] = t.id
        store.add_turn(sid, "client", "Yeah.")
    store.add_grade(ids["a"], "test-miti", values={"behaviour": "Q", "question_type": "OQ",
                                                   "empathy_turn": 3}, model="fake")
    store.add_grade(ids["b"], "test-miti", status="pending", model="fake", error="malformed")
    store.add_grade(ids["d"], "test-miti", status="pending", model="fake", error="timeout")
    store.rewind(sid, store.get_turn(ids["d"]).idx)
    return sid, ids


def test_regrade_finishes_pending_and_missing_turns(tmp_path: Path) -> None:
    from simulator.grader.grade import GradeOptions

    store = Store(tmp_path / "db.sqlite")
    sid, ids = build(store)
    model = ScriptedChatModel(script=[tool_call(GOOD)])
    result = asyncio.run(regrade_session(store, sid, model=model, spec="openai:gpt-test",
                                         options=GradeOptions(backoff_s=0)))
    assert [(t.turn_id, t.was, t.status) for t in result.turns] == [
        (ids["b"], "pending", "ok"), (ids["c"], "missing", "ok")]
    assert result.ok == 2 and result.pending == 0 and result.skipped_abandoned == 1
    assert len(model.calls) == 2
    # The transcript before turn c is in the prompt; turn c itself is the quoted turn.
    human = model.calls[1][1].text
    assert "Do you drink every night?" in human and "Is it more than five pints?" in human
    b = [g for g in store.grades(sid) if g.turn_id == ids["b"]]
    assert len(b) == 1 and b[0].status == "ok" and b[0].attempts == 2
    assert b[0].values["question_type"] == "CQ" and b[0].model == "openai:gpt-test"
    assert not store.pending_grades(sid) or all(g.turn_id == ids["d"]
                                                for g in store.pending_grades(sid))
    # Nothing left to do: a second run grades nothing.
    again = asyncio.run(regrade_session(store, sid, model=model, spec="openai:gpt-test"))
    assert again.turns == [] and len(model.calls) == 2
    store.close()


def test_regrade_gives_the_llm_the_utterance_codes_stored_with_the_turn(tmp_path: Path) -> None:
    """A regrade grades like a live session: the LLM gets the offline coder's first reading."""
    from simulator.grader.grade import GradeOptions

    store = Store(tmp_path / "db.sqlite")
    sid, ids = build(store)
    labels = {"behaviour": "question", "subtype": "closed", "coder": "offline",
              "utterances": [{"text": "Do you drink every night?", "start": 0, "end": 25,
                              "behaviour": "Q", "question_type": "CQ", "confidence": 0.9}]}
    store.add_codes(ids["b"], "test-miti", {"behaviour": "Q"}, labels=labels, coder="offline")
    model = ScriptedChatModel(script=[tool_call(GOOD)])
    asyncio.run(regrade_session(store, sid, model=model, spec="openai:gpt-test",
                                options=GradeOptions(backoff_s=0)))
    human_b, human_c = model.calls[0][1].text, model.calls[1][1].text
    assert '"Do you drink every night?": Q (CQ); confidence 0.9' in human_b
    assert "<first_reading>" not in human_c  # no codes stored for turn c: no hint
    store.close()


def test_regrade_that_fails_again_stays_pending_with_more_attempts(tmp_path: Path) -> None:
    from simulator.grader.grade import GradeOptions

    store = Store(tmp_path / "db.sqlite")
    sid, ids = build(store)
    model = ScriptedChatModel(script=[tool_call({"codes": "junk"})])
    result = asyncio.run(regrade_session(store, sid, model=model, spec="openai:gpt-test",
                                         include_missing=False,
                                         options=GradeOptions(attempts=2, backoff_s=0)))
    assert [(t.was, t.status) for t in result.turns] == [("pending", "pending")]
    b = store.get_grade(result.turns[0].grade_id)
    assert b.status == "pending" and b.attempts == 2 and "unusable" in b.error
    store.close()


def test_ended_session_gets_its_session_items_graded(tmp_path: Path) -> None:
    from simulator.grader.grade import GradeOptions

    store = Store(tmp_path / "db.sqlite")
    sid, ids = build(store)
    store.end_session(sid)
    answers: list[Any] = [tool_call(GOOD), tool_call(GOOD), tool_call({"items": {
        "partnership": {"score": 4, "rationale": "Collaborative.",
                        "evidence": ["What brings you in?"]},
        "empathy": {"score": 2, "rationale": "Few reflections.", "evidence": []}}},
        name="session_grade")]
    model = ScriptedChatModel(script=answers)
    result = asyncio.run(regrade_session(store, sid, model=model, spec="openai:gpt-test",
                                         concurrency=1, options=GradeOptions(backoff_s=0)))
    assert result.session_items == "ok"
    sg = store.session_grade(sid, "test-miti")
    assert sg is not None and sg.items["partnership"].score == 4
    assert sg.items["partnership"].evidence == ["What brings you in?"]
    store.close()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "cli.sqlite"
    monkeypatch.setenv("COUNSELSIM_DB", str(path))
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    return path


def test_cli_regrade_offline_prints_json_last(db: Path) -> None:
    store = Store(db)
    sid, ids = build(store)
    store.close()
    out = CliRunner().invoke(app, ["regrade", sid[:8], "--grader-model", "offline", "--json"])
    assert out.exit_code == 0, out.output
    summary = json.loads(out.output.strip().splitlines()[-1])
    assert summary["session_id"] == sid and summary["ok"] == 2 and summary["model"] == "offline"
    assert {t["was"] for t in summary["turns"]} == {"pending", "missing"}
    assert all(t["values"]["question_type"] in ("OQ", "CQ", "NQ") for t in summary["turns"])


def test_cli_regrade_user_errors_exit_1(db: Path) -> None:
    store = Store(db)
    sid, _ = build(store)
    store.close()
    runner = CliRunner()
    unknown = runner.invoke(app, ["regrade", "no-such-session"])
    assert unknown.exit_code == 1 and "no session matches" in unknown.output
    no_key = runner.invoke(app, ["regrade", sid, "--grader-model", "openai:gpt-4o-mini"])
    assert no_key.exit_code == 1 and "OPENAI_API_KEY" in no_key.output
    bad = runner.invoke(app, ["regrade", sid, "--grader-model", "gpt"])
    assert bad.exit_code == 1 and "unknown model" in bad.output


def test_run_regrade_rejects_unknown_session(tmp_path: Path) -> None:
    with pytest.raises(RegradeError):
        run_regrade("nope", "offline", Settings(db=tmp_path / "x.sqlite"))
