"""Utterance segmentation (MITI's complete-thought unit) and risk-topic detection by phrasing."""

from __future__ import annotations

import pytest

from simulator.coder.risk import RISK_TOPICS, about_risk, detect_risk
from simulator.coder.segment import segment


def parts(text: str) -> list[str]:
    return [text[s:e] for s, e in segment(text)]


@pytest.mark.parametrize(("text", "expected"), [
    ("So drinking helps you relax. What would you lose if you cut down?",
     ["So drinking helps you relax.", "What would you lose if you cut down?"]),
    ("Okay. So you want to cut down. Is that right?",
     ["Okay.", "So you want to cut down. Is that right?"]),  # a check joins its reflection
    ("Dr. Smith said 2.5 units is fine.", ["Dr. Smith said 2.5 units is fine."]),
    ("So. You're worried.", ["So. You're worried."]),  # a lone marker is not a thought
    ("You feel stuck; part of you wants out.", ["You feel stuck; part of you wants out."]),
    ("Wow!  That took courage.\nWhat helped?", ["Wow!", "That took courage.", "What helped?"]),
    ("Mm-hmm.", ["Mm-hmm."]),
    ("no punctuation at all", ["no punctuation at all"]),
    # a greeting before a comma is its own (uncoded) utterance; the question after it counts
    ("Hi Tomasz, what brings you in today?", ["Hi Tomasz,", "what brings you in today?"]),
    ("Good morning Mrs Patel, thanks for coming.", ["Good morning Mrs Patel,",
                                                    "thanks for coming."]),
    ("Hi, ok.", ["Hi, ok."]),
])
def test_segments_are_complete_thoughts(text: str, expected: list[str]) -> None:
    assert parts(text) == expected


def test_offsets_index_the_original_text() -> None:
    text = "  You're tired.   What keeps you going?  "
    spans = segment(text)
    assert [text[s:e] for s, e in spans] == ["You're tired.", "What keeps you going?"]
    assert segment("") == [] and segment("   ") == []


def test_risk_topic_ids_are_the_must_assess_vocabulary() -> None:
    assert list(RISK_TOPICS) == ["ideation", "self_harm", "plan", "intent", "means",
                                 "protective_factors", "safety_plan", "history"]


@pytest.mark.parametrize(("text", "topic"), [
    ("Do thoughts of suicide ever come?", "ideation"),
    ("Have you felt like you would be better off not waking up?", "ideation"),
    ("Does it ever get so bad that you think about ending it all?", "ideation"),
    ("Have you wished you were dead?", "ideation"),
    ("Do you ever wish you weren't alive?", "ideation"),
    ("Have you been hurting yourself on purpose?", "self_harm"),
    ("Do you ever cut yourself when it gets too much?", "self_harm"),
    ("Have you made plans to end your life?", "plan"),
    ("Do you intend to kill yourself?", "intent"),
    ("Do you have access to a gun?", "means"),
    ("What are your reasons for living?", "protective_factors"),
    ("Do you have a safety plan?", "safety_plan"),
    ("Have you ever tried to kill yourself?", "history"),
    ("My brother took his own life two years ago.", "history"),
])
def test_risk_questions_phrased_many_ways(text: str, topic: str) -> None:
    assert topic in detect_risk(text)


@pytest.mark.parametrize(("text", "topic"), [
    ("Do you have a plan?", "plan"),
    ("What keeps you going?", "protective_factors"),
    ("Is there anything at home you could use?", "means"),
    ("Who could you call if things got that bad?", "safety_plan"),
    # asks about past attempts as well as intent: "not asked: past attempts" after it was wrong
    ("Have you ever acted on them?", "history"),
])
def test_context_decides_ambiguous_questions(text: str, topic: str) -> None:
    assert detect_risk(text) == []  # an alcohol or study session: not a risk question
    assert topic in detect_risk(text, ["Sometimes I just want to go to sleep and not wake up."])


@pytest.mark.parametrize("text", [
    "Do you have a plan for cutting down?",
    "What's your plan for the weekend?",
    "Have you ever tried to quit before?",
    "I'm dying for a cigarette.",
    "Do you wish he wasn't around so much?",
    "Work is killing me at the moment.",
    "Do you think your drinking is a problem?",
    "You should really think about cutting down.",
])
def test_everyday_words_are_not_risk(text: str) -> None:
    assert detect_risk(text) == []
    assert not about_risk(text)


@pytest.mark.parametrize("text", [
    "How many painkillers do you have at home?",
    "Have you been collecting tablets?",
    "Are the pills somewhere you can easily reach?",
    "Would you be willing to get the tablets out of the house for now?",
])
def test_means_questions_once_suicide_is_the_subject(text: str) -> None:
    assert "means" in detect_risk(text, ["I've thought about taking all my pills to end it."])
    assert "means" not in detect_risk(text)  # a pain clinic: a question about medication


def test_a_plan_question_is_not_counted_again_as_ideation() -> None:
    assert detect_risk("Have you made any plans to end your life?") == ["plan"]
    assert detect_risk("Are you thinking about suicide, and have you thought about how?") == [
        "ideation", "plan"]


@pytest.mark.parametrize(("text", "topic"), [
    ("How likely is it that you would act on the thoughts of suicide?", "intent"),
    ("When the thoughts of suicide are there, what keeps you going?", "protective_factors"),
    ("Shall we make a plan for what to do if the suicidal thoughts get worse?", "safety_plan"),
])
def test_thoughts_named_as_the_occasion_are_not_asked_about_again(text: str, topic: str) -> None:
    """Rounds 9 and 10 were labelled so by two authors: the thoughts are the occasion of the
    question, what it asks is the other topic (the coach would otherwise credit a question about
    the thoughts that was never asked)."""
    assert detect_risk(text) == [topic]


def test_a_client_who_tells_of_thoughts_and_a_crisis_line_tells_both() -> None:
    said = "I rang the crisis line on Tuesday when I wanted to die and it got me through."
    assert {"ideation", "safety_plan"} <= set(detect_risk(said))


@pytest.mark.parametrize(("text", "context"), [
    ("Let's make a plan together for keeping you safe.", []),
    ("Let's make a plan together for keeping you safe.", ["I keep thinking about ending it."]),
    ("Shall we make a plan for what to do if the suicidal thoughts get worse?", []),
])
def test_a_plan_to_stay_safe_is_safety_planning_not_a_plan(text: str, context: list) -> None:
    topics = detect_risk(text, context)
    assert "safety_plan" in topics and "plan" not in topics


def test_safety_words_without_suicide_are_not_risk() -> None:
    assert detect_risk("What's your plan for staying safe on the roads?") == []
    assert detect_risk("Do you have a plan for paying the cards off?") == []
    assert detect_risk("Have you made any plans to end your life?") == ["plan"]


def test_ending_a_relationship_or_in_the_end_is_not_ending_a_life() -> None:
    """Seen on round 8's test part (after scoring): the rules read "end it" inside these."""
    for text in ("In the end it's your body and your call.", "in the end it doesn't matter",
                 "What's making you want to end things with her?",
                 "I think I need to end it with Jess."):
        assert not about_risk(text) and detect_risk(text) == [], text
    for text in ("Have you thought about ending it?", "Some nights I think about ending it all.",
                 "I just want to end things."):
        assert detect_risk(text) == ["ideation"], text
