"""The LLM realizer voices the plan: act and topic, safe principles, voice examples, a check."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from engine_fixtures import shipped_personas
from langchain_core.language_models.fake_chat_models import (
    FakeListChatModel,
    GenericFakeChatModel,
)
from langchain_core.messages import AIMessage
from test_session import run

from simulator.client import engine
from simulator.client.realize_llm import render_client_prompt, reply_problem, safe_principles
from simulator.client.state import initial_state
from simulator.content.persona import Persona
from simulator.service.practice import Practice
from simulator.settings import ROOT, Settings

PERSONAS = {p.id: p for p in shipped_personas()}
TOMASZ = PERSONAS["tomasz-alcohol-precontemplation"]


def asked(p: Persona, text: str, rapport: float = 0.3) -> engine.Step:
    state = engine.after(engine.opening(p)).model_copy(update={"rapport": rapport, "turn": 3})
    return engine.respond(p, state, ["Q", "OQ"], text, random.Random(0))


def test_answer_prompt_names_the_topic_and_says_answer_it() -> None:
    step = asked(TOMASZ, "How much do you drink in an average week?")
    assert step.plan.act == "answer"
    prompt = render_client_prompt(TOMASZ, step.plan, step.state)
    assert "Answer it" in prompt and "alcohol, drugs or smoking" in prompt
    assert "How this client sounds" in prompt  # voice examples from the answer bank
    answer = TOMASZ.answer("substance_use")
    assert answer is not None
    assert any(TOMASZ.fill(t) in prompt for st in ("open", "guarded", "deflecting")
               for t in answer.lines(st))


def test_principles_that_name_a_locked_fact_are_left_out_until_it_unlocks() -> None:
    shakes = "Never volunteers the shakes unless the trainee has really listened"
    locked = initial_state(TOMASZ)
    assert not [p for p in safe_principles(TOMASZ, locked) if p.startswith(shakes)]
    prompt = render_client_prompt(TOMASZ, asked(TOMASZ, "How is work?").plan, locked)
    assert "shakes" not in prompt and "warning at work" not in prompt
    opened = locked.model_copy(update={"unlocked": [f.id for f in TOMASZ.hidden_facts]})
    assert [p for p in safe_principles(TOMASZ, opened) if p.startswith(shakes)]


def test_cbt_and_rule_acts_reach_the_prompt() -> None:
    sofia = PERSONAS["sofia-depression-cbt"]
    step = asked(sofia, "How strongly do you believe that, 0 to 100?", rapport=0.5)
    prompt = render_client_prompt(sofia, step.plan, step.state)
    assert step.plan.act == "cbt" and "about 90 out of 100" in prompt
    alex = PERSONAS["alex-adolescent-mandated"]
    state = engine.after(engine.opening(alex))
    step = engine.respond(alex, state, ["PERSUADE", "NQ"], "You should quit vaping now.",
                          random.Random(0))
    prompt = render_client_prompt(alex, step.plan, step.state)
    assert step.plan.act == "shut_down" and alex.rules[0].principle in prompt


def test_the_check_catches_a_leak_by_keyword_and_by_meaning() -> None:
    step = asked(TOMASZ, "How is work?")
    plan, state = step.plan, step.state
    assert reply_problem(TOMASZ, plan, state, "Work's fine. Long days on site.") is None
    assert reply_problem(TOMASZ, plan, state, "My hands shake in the mornings.") is not None
    # no keyword in it: caught by meaning (close to a disclosure line of the shakes)
    assert reply_problem(TOMASZ, plan, state,
                         "Some mornings my hands won't keep still until I've had a can.")
    assert reply_problem(TOMASZ, plan, state, "I have a few cans in the evening.") is None
    assert reply_problem(TOMASZ, plan, state, "As an AI, I cannot say.") is not None
    assert reply_problem(TOMASZ, plan, state, "word " * 200) is not None


def _reply(model: FakeListChatModel, step: engine.Step) -> str:
    return asyncio.run(engine.reply(TOMASZ, step, [], set(), random.Random(0), model))


def test_one_regeneration_then_the_offline_line() -> None:
    step = asked(TOMASZ, "How is work?")
    fixed = FakeListChatModel(responses=["My hands shake, since you ask.", "Long days. Fine."])
    assert _reply(fixed, step) == "Long days. Fine."
    stuck = FakeListChatModel(responses=["My hands shake.", "Still shaky hands."])
    offline = _reply(stuck, step)
    answer = TOMASZ.answer("work")
    assert answer is not None and offline in [
        TOMASZ.fill(t) for st in ("open", "guarded", "deflecting") for t in answer.lines(st)]


def test_practice_stores_the_checked_reply_and_says_it_was_revised(tmp_path: Path) -> None:
    personas = tmp_path / "personas"
    personas.mkdir()
    src = ROOT / "personas" / "tomasz-alcohol-precontemplation.yaml"
    (personas / src.name).write_text(src.read_text(encoding="utf-8"), encoding="utf-8")
    settings = Settings(db=tmp_path / "db.sqlite", personas=personas, rubrics=ROOT / "rubrics")
    model = GenericFakeChatModel(messages=iter([AIMessage("Shaky hands, some mornings."),
                                                AIMessage("Work is work. Long days.")]))
    practice = Practice.from_settings(settings, client_model=model)
    practice.store.add_user("ana", "trainee")
    sid = practice.start("ana", TOMASZ.id)
    events = run(practice.turn(sid, "ana", "How are things at work?"))
    client = events[-1]
    assert client.kind == "client" and client.text == "Work is work. Long days."
    assert client.data["revised"] is True
    assert practice.store.current_turns(sid)[-1].text == "Work is work. Long days."
    practice.store.close()
