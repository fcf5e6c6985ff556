"""The client hears what was said: acts, topic by meaning, rules, CBT answers (issue 13)."""

from __future__ import annotations

import random

import pytest
from engine_fixtures import shipped_personas

from simulator.client import engine
from simulator.client.state import ClientState, initial_state
from simulator.client.understand import match_topic, understand
from simulator.content.persona import Persona

PERSONAS = {p.id: p for p in shipped_personas()}


def persona(name: str) -> Persona:
    return next(p for pid, p in PERSONAS.items() if pid.startswith(name))


def at_turn(p: Persona, turn: int) -> ClientState:
    return initial_state(p).model_copy(update={"turn": turn, "recent_acts": ["opening"]})


@pytest.mark.parametrize(("text", "topic"), [
    ("How are your nights at the moment?", "sleep"),
    ("What did the doctor say about your blood pressure?", "health"),
    ("are you suicidal?", "suicide"),
    ("Have you ever thought of harming yourself?", "self_harm"),
    ("Who do you share the house with?", "home_family"),
    ("What's your boss like?", "work"),
    ("How many units would you say you drink a week?", "substance_use"),
    ("How much do you believe that thought, 0 to 100?", "belief_rating"),
    ("Is there anything that doesn't support that thought?", "evidence_against"),
])
def test_topics_are_heard_by_meaning(text: str, topic: str) -> None:
    p = persona("farida")
    assert understand(p, text, ["Q", "OQ"], at_turn(p, 3)).topic == topic


def test_a_greeting_with_thanks_is_not_a_closing() -> None:
    p = persona("tomasz")
    heard = understand(p, "Hi Tomasz, thanks for coming. What brings you here?", ["Q", "OQ"],
                       initial_state(p))
    assert heard.did("greeting") and not heard.did("closing")
    step = engine.respond(p, engine.after(engine.opening(p)), ["Q", "OQ"],
                          "Hello, thank you for coming in today.", random.Random(0))
    assert step.plan.act != "closing"


@pytest.mark.parametrize(("text", "confronted"), [
    ("When you're lying awake, what goes through your mind?", False),
    ("You are lying in bed for hours, then.", False),
    ("You're lying to me, and to yourself.", True),
    ("Come on, you're just making excuses.", True),
])
def test_lying_awake_is_not_an_accusation_of_lying(text: str, confronted: bool) -> None:
    """Seen holding a Farida session: "When you're lying awake..." was heard as "you're lying",
    and she answered a gentle question with "I'm not being difficult" (resistance up)."""
    p = persona("farida")
    assert understand(p, text, ["Q", "OQ"], at_turn(p, 3)).did("confrontation") is confronted


@pytest.mark.parametrize(("text", "closing"), [
    ("We're nearly out of time, so let's stop there for today.", True),
    ("Thanks for coming today. Take care and see you next week.", True),
    ("Before we finish, is there anything else you want to say?", False),
    ("Thanks for sharing that. How did it feel?", False),
])
def test_closing_only_when_the_trainee_closes(text: str, closing: bool) -> None:
    p = persona("harjit")
    assert understand(p, text, ["GI", "NQ"], at_turn(p, 8)).did("closing") is closing


def test_an_abrupt_early_risk_question_is_minimised_and_guards_her() -> None:
    p = persona("farida")
    before = engine.after(engine.opening(p))
    step = engine.respond(p, before, ["Q", "CQ"], "Are you suicidal?", random.Random(0))
    assert step.plan.act == "minimise" and step.heard is not None
    assert step.heard.did("risk_question")
    assert step.state.resistance > before.resistance
    assert "passive-si" not in step.state.unlocked
    said = engine.say_offline(p, step, set(), random.Random(0))
    assert said in [p.fill(t) for t in p.rules[0].lines]


def test_a_lecture_shuts_alex_down() -> None:
    p = persona("alex")
    step = engine.respond(p, engine.after(engine.opening(p)), ["PERSUADE", "NQ"],
                          "You need to stop vaping, it wrecks your lungs.", random.Random(0))
    assert step.plan.act == "shut_down"
    assert engine.say_offline(p, step, set(), random.Random(0)) in [
        p.fill(t) for t in p.rules[0].lines]


def test_facts_unlock_by_topic_not_by_incidental_words() -> None:
    p = persona("harjit")
    trusting = at_turn(p, 6).model_copy(update={"rapport": 0.6})
    step = engine.respond(p, trusting, ["GI", "NQ"], "I'm afraid we started a bit late today.",
                          random.Random(0))
    assert "kidney-fear" not in step.state.unlocked
    step = engine.respond(p, trusting, ["Q", "OQ"],
                          "What have you heard about what the tablets can do?", random.Random(0))
    assert "kidney-fear" in step.state.unlocked and step.plan.fact_id == "kidney-fear"


def test_questions_are_answered_on_their_topic_with_a_stance() -> None:
    p = persona("farida")
    step = engine.respond(p, at_turn(p, 3), ["Q", "OQ"], "How are you sleeping?",
                          random.Random(0))
    assert (step.plan.act, step.plan.topic) == ("answer", "sleep")
    line = engine.say_offline(p, step, set(), random.Random(0))
    sleep = p.answer("sleep")
    assert sleep is not None and line in [p.fill(t) for t in sleep.lines(step.plan.stance
                                                                           or "guarded")]


def test_a_protective_question_in_any_tense_is_not_heard_as_about_sleep() -> None:
    p = persona("farida")
    for q in ("What has kept you going through the hardest nights?",
              "What's kept you going on the bad nights?"):
        topic, _ = match_topic(p, q)
        assert topic is not None and topic.id == "protective_factors", q
    topic, _ = match_topic(p, "How have your nights been?")
    assert topic is not None and topic.id == "sleep"


def test_farida_risk_follow_ups_unlock_one_by_one_after_ideation() -> None:
    p = persona("farida")
    s = at_turn(p, 8).model_copy(update={"rapport": 0.7, "resistance": 0.1})
    asked = engine.respond(p, s, ["Q", "OQ"], "Do you have access to pills at home?",
                           random.Random(0))
    assert "means-tablets" not in asked.state.unlocked  # ideation not disclosed yet
    step = engine.respond(p, s, ["Q", "CQ"], "Do you ever think about ending your life?",
                          random.Random(0))
    assert step.plan.fact_id == "passive-si"
    s = engine.after(step)
    for text, fact in [("Have you made any plans?", "no-plan-intent"),
                       ("Do you have access to pills at home?", "means-tablets"),
                       ("What keeps you going?", "protective"),
                       ("Can we make a safety plan together?", "safety-plan")]:
        step = engine.respond(p, s, ["Q", "OQ"], text, random.Random(0))
        assert step.plan.fact_id == fact, text
        s = engine.after(step)
    assert set(s.disclosed) >= {"passive-si", "no-plan-intent", "means-tablets", "protective",
                                "safety-plan"}


def test_cbt_answers_come_from_the_cognitive_model_and_the_rating_moves() -> None:
    p = persona("sofia")
    s = at_turn(p, 6).model_copy(update={"rapport": 0.6})
    ask = "How much do you believe that thought, from 0 to 100?"
    step = engine.respond(p, s, ["Q", "OQ"], ask, random.Random(0))
    assert (step.plan.act, step.plan.topic) == ("cbt", "belief_rating")
    assert "90" in engine.say_offline(p, step, set(), random.Random(0))
    s = engine.after(step)
    step = engine.respond(p, s, ["Q", "OQ"], "Has anything happened that goes against it?",
                          random.Random(0))
    assert step.plan.topic == "evidence_against"
    cm = p.cognitive_model
    assert cm is not None and cm.cbt is not None
    assert engine.say_offline(p, step, set(), random.Random(0)) in cm.cbt.evidence_against
    s = engine.after(step)
    step = engine.respond(p, s, ["Q", "OQ"], ask, random.Random(1))
    assert "75" in engine.say_offline(p, step, set(), random.Random(0))


def test_an_invitation_to_plan_together_is_answered_on_its_topic() -> None:
    """"Let's make a plan for keeping you safe" is coded Seek, not a question: the client answers
    on the topic (guarded while the plan's fact is locked) instead of drawing a random act."""
    p = persona("farida")
    step = engine.respond(p, at_turn(p, 6), ["SEEK", "NQ"],
                          "Let's make a plan together for keeping you safe.", random.Random(0))
    assert (step.plan.act, step.plan.topic) == ("answer", "safety")
    assert step.plan.stance != "open"  # ideation not disclosed: the plan is not offered yet


def test_a_plan_question_is_heard_as_a_plan_even_when_it_names_ending_a_life() -> None:
    p = persona("farida")
    heard = understand(p, "Have you made any plans or thought about how you might end your life?",
                       ["Q", "CQ"], at_turn(p, 6))
    assert heard.topic == "suicide_plan"


@pytest.mark.parametrize("text", ["Would it be okay if I shared some information about how alcohol "
                                  "affects sleep?",
                                  "Do you mind if I tell you what other people have found?",
                                  "Could I suggest something that has helped others?"])
def test_a_permission_request_is_answered_as_one(text: str) -> None:
    """Not with how much he drinks: the answer to "may I share?" is yes (or a wary yes), and then
    the trainee's information follows; the MITI coder reads that yes as permission granted."""
    p = persona("tomasz")
    step = engine.respond(p, at_turn(p, 4), ["SEEK", "CQ"], text, random.Random(0))
    assert step.plan.act == "grant_permission" and step.plan.stance is not None
    said = engine.say_offline(p, step, set(), random.Random(0))
    assert said in [p.fill(t) for t in p.lines_for("grant_permission")]
    # the MITI coder reads the yes as permission granted: what follows is not unasked advice
    from simulator.coder.labels import Utterance
    from simulator.coder.miti import permission_granted
    assert permission_granted([Utterance(speaker="counselor", text=text),
                               Utterance(speaker="client", text=said)], [])
    asked = engine.respond(p, at_turn(p, 4), ["Q", "CQ"], "Is it the evenings you drink most?",
                           random.Random(0))
    assert asked.plan.act != "grant_permission"


def test_a_question_about_worries_is_not_heard_as_a_means_question() -> None:
    """Seen holding a skilled Tomasz session (stop 27): "What, if anything, worries you about
    it?" matched the means example "Is there anything at home that worries you, like
    tablets?", and he answered "No guns, nothing like that"."""
    topic, _ = match_topic(persona("tomasz"), "What, if anything, worries you about it?")
    assert topic is None or topic.id != "means"


def test_a_question_about_his_own_concerns_is_heard_as_one() -> None:
    """Stop 28: Tomasz had no topic for his own concerns, so "What, if anything, worries you
    about your drinking?" was heard as a question about how much he drinks ("Four. Maybe five.")
    or what he likes about it; evoking the client's own concerns is the skill his brief asks
    for."""
    for said in ("What, if anything, worries you about your drinking?",
                 "What concerns do you have about the drinking yourself?",
                 "What are the less good things about having a few cans?"):
        topic, _ = match_topic(persona("tomasz"), said)
        assert topic is not None and topic.id == "drinking_concerns", said
