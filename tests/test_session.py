"""The flow of one turn (simulator/service/practice.py): store first, model errors, access, rewind.

Uses the engine's test persona and the shipped MITI rubric with the offline coder, in a temporary
database, so nothing here depends on a network or on the shipped persona library.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage

from simulator.llm.providers import ModelUnavailable
from simulator.service.practice import MAX_TURN_CHARS, Practice, TurnRejected, clean_turn_text
from simulator.settings import ROOT, Settings

FIXTURE_PERSONA = ROOT / "tests" / "fixtures" / "engine" / "test-dana.yaml"


def make_settings(tmp_path: Path) -> Settings:
    personas = tmp_path / "personas"
    personas.mkdir()
    shutil.copy(FIXTURE_PERSONA, personas / FIXTURE_PERSONA.name)
    return Settings(db=tmp_path / "db.sqlite", personas=personas, rubrics=ROOT / "rubrics")


@pytest.fixture
def practice(tmp_path: Path, db_target: str | Path) -> Iterator[Practice]:
    """Each practice test runs on SQLite, then on PostgreSQL."""
    settings = make_settings(tmp_path).model_copy(update={"db": db_target})
    p = Practice.from_settings(settings)
    p.store.add_user("ana", "trainee", cohort="c1")
    p.store.add_user("ben", "trainee", cohort="c1")
    p.store.add_user("sue", "supervisor", cohort="c1")
    p.store.add_user("sam", "supervisor", cohort="c2")
    yield p
    p.store.close()


def run(events: AsyncIterator[Any]) -> list[Any]:
    async def collect() -> list[Any]:
        return [e async for e in events]

    return asyncio.run(collect())


def test_a_turn_is_stored_coded_answered_and_graded(practice: Practice) -> None:
    sid = practice.start("ana", "test-dana")
    events = run(practice.turn(sid, "ana", "What brings you in today?"))
    kinds = [e.kind for e in events]
    assert kinds[0] == "stored" and kinds[-1] == "client"
    turns = practice.store.current_turns(sid)
    assert [t.speaker for t in turns] == ["client", "counselor", "client"]
    assert turns[1].text == "What brings you in today?"
    assert practice.store.codes(turns[1].id)[-1].codes["question_type"] == "OQ"
    assert turns[2].act and turns[2].state and turns[2].state["turn"] == 1
    grades = practice.store.grades(sid)
    assert len(grades) == 1 and grades[0].status == "ok" and grades[0].rationale


@pytest.mark.parametrize("bad", ["", "   \n\t ", "\x00\x07", "x" * (MAX_TURN_CHARS + 1)])
def test_unusable_turns_are_refused_with_a_reason_and_nothing_stored(
        practice: Practice, bad: str) -> None:
    sid = practice.start("ana", "test-dana")
    with pytest.raises(TurnRejected) as exc:
        run(practice.turn(sid, "ana", bad))
    assert "empty" in str(exc.value) or "limit" in str(exc.value)
    assert len(practice.store.current_turns(sid)) == 1


def test_control_characters_are_dropped_but_rtl_and_emoji_kept() -> None:
    assert clean_turn_text("hi\x1b[31m there") == "hi[31m there"
    assert clean_turn_text("שלום 🙂") == "שלום 🙂"


class FailingModel(GenericFakeChatModel):
    """A client model whose every call fails as a provider would after its retries."""

    async def _astream(self, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:  # type: ignore[override]
        raise ModelUnavailable("The client model is not answering (timed out). Your turn is "
                               "saved: press retry.", spec="openai:test", kind="timeout")
        yield  # pragma: no cover - makes this an async generator


def test_a_failed_client_model_keeps_the_turn_and_retry_answers_it(practice: Practice) -> None:
    sid = practice.start("ana", "test-dana")
    practice.client_model = FailingModel(messages=iter([]))
    events = run(practice.turn(sid, "ana", "How has the drinking been this week?"))
    assert [e.kind for e in events] == ["stored", "error"]
    assert "saved" in events[-1].text and events[-1].data["retry"] is True
    turns = practice.store.current_turns(sid)
    assert turns[-1].speaker == "counselor"
    assert turns[-1].text == "How has the drinking been this week?"

    reply = AIMessage("Pretty rough, honestly.")
    practice.client_model = GenericFakeChatModel(messages=iter([reply]))
    events = run(practice.reply(sid, "ana"))
    tokens = "".join(e.text for e in events if e.kind == "token")
    assert tokens.strip() == "Pretty rough, honestly."
    turns = practice.store.current_turns(sid)
    assert [t.speaker for t in turns][-2:] == ["counselor", "client"]
    assert turns[-1].text == "Pretty rough, honestly."


def test_trainees_only_reach_their_own_sessions(practice: Practice) -> None:
    sid = practice.start("ana", "test-dana")
    ana, ben = practice.store.get_user("ana"), practice.store.get_user("ben")
    sue, sam = practice.store.get_user("sue"), practice.store.get_user("sam")
    practice.check_access(sid, ana, write=True)
    practice.check_access(sid, sue)
    for user, write in [(ben, False), (ben, True), (sam, False), (sue, True)]:
        with pytest.raises(PermissionError):
            practice.check_access(sid, user, write=write)
    with pytest.raises(PermissionError):
        run(practice.turn(sid, "ben", "hello"))
    with pytest.raises(PermissionError):
        practice.check_access("not-a-session", ana)


def test_rewind_keeps_the_abandoned_branch(practice: Practice) -> None:
    sid = practice.start("ana", "test-dana")
    run(practice.turn(sid, "ana", "You need to stop drinking."))
    first_try = practice.store.current_turns(sid)[1]
    practice.rewind(sid, "ana", first_try.idx)
    run(practice.turn(sid, "ana", "What do you enjoy about drinking?"))
    current = practice.store.current_turns(sid)
    assert [t.text for t in current if t.speaker == "counselor"] == [
        "What do you enjoy about drinking?"]
    abandoned = [t for t in practice.store.all_turns(sid) if t.abandoned_branch is not None]
    assert "You need to stop drinking." in [t.text for t in abandoned]


def test_an_ended_session_takes_no_more_turns(practice: Practice) -> None:
    sid = practice.start("ana", "test-dana")
    practice.end(sid, "ana")
    with pytest.raises(TurnRejected):
        run(practice.turn(sid, "ana", "one more thing"))


KILLED_CHILD = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
    from simulator.service.practice import Practice
    from simulator.settings import Settings

    class Hangs(GenericFakeChatModel):
        async def _astream(self, *a, **k):
            await asyncio.sleep(3600)
            yield None

    tmp = Path(sys.argv[1])
    s = Settings(db=tmp / "db.sqlite", personas=tmp / "personas", rubrics=Path(sys.argv[2]))
    p = Practice.from_settings(s, client_model=Hangs(messages=iter([])))
    sid = p.start("ana", "test-dana")

    async def main():
        async for ev in p.turn(sid, "ana", "What matters most to you right now?"):
            if ev.kind == "stored":
                print(sid, flush=True)

    asyncio.run(main())
""")


def test_a_process_killed_mid_turn_loses_nothing_and_the_session_continues(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    child = subprocess.Popen([sys.executable, "-c", KILLED_CHILD, str(tmp_path),
                              str(ROOT / "rubrics")], stdout=subprocess.PIPE, text=True,
                             env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert child.stdout is not None
    sid = child.stdout.readline().strip()
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=30)
    assert sid, "the child never reported the stored turn"

    practice = Practice.from_settings(settings)
    turns = practice.store.current_turns(sid)
    assert turns[-1].speaker == "counselor"
    assert turns[-1].text == "What matters most to you right now?"
    events = run(practice.reply(sid, "ana"))
    assert events[-1].kind == "client"
    run(practice.turn(sid, "ana", "Tell me more about that."))
    speakers = [t.speaker for t in practice.store.current_turns(sid)]
    assert speakers == ["client", "counselor", "client", "counselor", "client"]
    practice.store.close()


def test_a_persona_names_its_rubrics_and_the_trainee_picks_among_them(tmp_path: Path) -> None:
    """``rubrics`` / ``default_rubric`` in the persona: the default when none is chosen, a
    choice among them, and a clear refusal of a rubric the persona does not offer."""
    settings = make_settings(tmp_path)
    path = settings.personas / FIXTURE_PERSONA.name
    path.write_text(path.read_text(encoding="utf-8") +
                    "\nrubrics: [helping-skills, miti-4.2.1]\ndefault_rubric: helping-skills\n",
                    encoding="utf-8")
    p = Practice.from_settings(settings)
    try:
        p.store.add_user("ana", "trainee")
        assert p.store.get_session(p.start("ana", "test-dana")).rubric_id == "helping-skills"
        chosen = p.start("ana", "test-dana", "miti-4.2.1")
        assert p.store.get_session(chosen).rubric_id == "miti-4.2.1"
        with pytest.raises(KeyError, match="not offered for 'test-dana'.*helping-skills"):
            p.start("ana", "test-dana", "cbt-ctrs")
    finally:
        p.store.close()


def test_shipped_cbt_and_bereavement_clients_default_to_their_rubrics() -> None:
    from simulator.content.library import load_library

    lib = load_library([ROOT / "personas"], [ROOT / "rubrics"])
    assert not lib.errors
    defaults = {pid: p.default_rubric for pid, p in lib.personas.items()}
    assert defaults["sofia-depression-cbt"] == defaults["jonah-social-anxiety-cbt"] == "cbt-ctrs"
    assert defaults["mai-bereavement"] == "helping-skills"
    for p in lib.personas.values():
        assert p.default_rubric in p.rubrics and set(p.rubrics) <= set(lib.rubrics)
