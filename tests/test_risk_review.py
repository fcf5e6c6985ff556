"""Risk items: must_assess -> risk topics, the coder's topics or the keyword check, follow-up of
disclosures; and the coach never criticises or rewrites a risk question."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from simulator.coder.labels import CodedTurn, CounselorLabels, Utterance
from simulator.content.loader import load_model_file
from simulator.content.rubric import Rubric
from simulator.grader.coach_offline import coach_turn
from simulator.grader.risk_review import item_topics, mentions_item, review
from simulator.settings import ROOT

FARIDA = ["Ask directly about suicidal thoughts", "Plan, intent, previous attempts",
          "Access to means (medication at home)", "Protective factors and supports",
          "Agree a safety plan and follow-up"]


@dataclass
class T:
    id: int
    idx: int
    speaker: str
    text: str
    fact_id: str | None = None


@pytest.mark.parametrize("item, topics", [
    ("Ask directly about suicidal thoughts", ["ideation"]),
    ("Plan, intent, previous attempts", ["plan", "intent", "history"]),
    ("Access to means (medication at home)", ["means"]),
    ("Protective factors and supports", ["protective_factors"]),
    ("Agree a safety plan and follow-up", ["safety_plan"]),
    ("Thoughts of self-harm or suicide (brief check)", ["ideation", "self_harm"]),
    ("Thoughts of death or of wishing to join her husband (brief, respectful check)",
     ["ideation"]),
    ("Sleep and appetite", []),
    ("Drink-driving", []),
])
def test_must_assess_items_map_to_risk_topics(item: str, topics: list[str]) -> None:
    assert sorted(item_topics(item)) == sorted(topics)


def test_keyword_check_ignores_instruction_words() -> None:
    assert mentions_item("Ask directly about suicidal thoughts",
                         "Do thoughts of suicide ever come?")
    assert mentions_item("Access to means (medication at home)",
                         "Is there medication at home you could take?")
    assert not mentions_item("Ask directly about suicidal thoughts", "How are you sleeping?")


def test_coder_topics_count_and_items_need_each_topic() -> None:
    turns = [T(1, 0, "client", "I'm so tired."),
             T(2, 1, "counselor", "Have you had thoughts of ending your life?"),
             T(3, 2, "client", "Sometimes."),
             T(4, 3, "counselor", "Have you thought about how you would do it?")]
    labels = {2: {"utterances": [{"text": "x", "behaviour": "Q", "risk": ["ideation"]}]},
              4: {"utterances": [{"text": "y", "behaviour": "Q", "risk": ["plan"]}]}}
    got = {c.item: c for c in review(FARIDA, turns, labels).checks}
    assert got["Ask directly about suicidal thoughts"].asked
    assert got["Ask directly about suicidal thoughts"].turns == [1]
    plan = got["Plan, intent, previous attempts"]
    assert not plan.asked and plan.missing == ["intent", "history"]
    assert not got["Agree a safety plan and follow-up"].asked


def test_without_coder_topics_the_keyword_check_still_finds_a_direct_question() -> None:
    turns = [T(1, 0, "counselor", "Do thoughts of suicide ever come?")]
    got = review(FARIDA, turns, {1: {"behaviour": "question"}}).checks
    assert [c.asked for c in got] == [True, False, False, False, False]


def test_a_risk_disclosure_the_next_turn_moves_away_from_is_flagged() -> None:
    turns = [T(1, 0, "counselor", "How have you been?"),
             T(2, 1, "client", "Sometimes I think they'd be better off without me.",
               fact_id="passive_si"),
             T(3, 2, "counselor", "Do you drink coffee at night?"),
             T(4, 3, "client", "Sometimes I think about the tablets.", fact_id="means"),
             T(5, 4, "counselor", "You've been thinking about the tablets.")]
    labels = {3: {"behaviour": "question"}, 5: {"behaviour": "reflection"}}
    got = review(FARIDA, turns, labels, ["passive_si", "means"]).disclosures
    assert [(d.idx, d.followed_up) for d in got] == [(1, False), (3, True)]


class _WithUtterances(CounselorLabels):
    utterances: list[dict[str, object]] = []


@pytest.fixture(scope="module")
def miti() -> Rubric:
    return load_model_file(Rubric, ROOT / "rubrics" / "miti-4.2.1.yaml")


@pytest.mark.parametrize("question, coder_topics", [
    ("Do thoughts of suicide ever come?", []),               # the keyword check finds it
    ("Do you have medication at home?", []),
    ("Have you had thoughts of ending your life?", ["ideation"]),  # only the coder can
    ("Have you thought about how you would do it?", ["plan"]),
])
def test_the_coach_never_criticises_or_rewrites_a_risk_question(
        miti: Rubric, question: str, coder_topics: list[str]) -> None:
    labels = (_WithUtterances(behaviour="question", subtype="closed", utterances=[
        {"text": question, "behaviour": "Q", "risk": coder_topics}]) if coder_topics
        else CounselorLabels(behaviour="question", subtype="closed"))
    coded = CodedTurn(labels=labels, codes={"behaviour": "Q", "question_type": "CQ"},
                      rubric_id=miti.id)
    transcript = [Utterance(speaker="client", text="Some nights I just want it all to stop.")]
    out = coach_turn(coded, miti, transcript, question, must_assess=FARIDA)
    assert out.featured == "risk"
    assert out.alternative is None
    assert "Closed question" not in out.rationale
    assert "This is the skill" in out.rationale


@pytest.mark.parametrize("question, expects_no", [
    ("You're not suicidal or anything, are you?", True),
    ("You don't have any plans to hurt yourself, do you?", True),
    ("Have you had thoughts of ending your life?", False),
    ("Are you having thoughts of suicide?", False),
])
def test_a_risk_question_framed_to_be_answered_no_is_named(
        miti: Rubric, question: str, expects_no: bool) -> None:
    coded = CodedTurn(labels=CounselorLabels(behaviour="question", subtype="closed"),
                      codes={"behaviour": "Q", "question_type": "CQ"}, rubric_id=miti.id)
    out = coach_turn(coded, miti, [], question, must_assess=FARIDA)
    assert out.featured == "risk" and out.alternative is None
    assert ('framed to be answered "no"' in out.rationale) is expects_no
    assert ("This is the skill" in out.rationale) is not expects_no


def test_an_ordinary_closed_question_is_still_coached(miti: Rubric) -> None:
    coded = CodedTurn(labels=CounselorLabels(behaviour="question", subtype="closed"),
                      codes={"behaviour": "Q", "question_type": "CQ"}, rubric_id=miti.id)
    out = coach_turn(coded, miti, [], "Do you sleep well?", must_assess=FARIDA)
    assert out.featured == "CQ" and out.alternative


def test_a_possible_risk_question_the_keywords_miss_is_still_not_rewritten(miti: Rubric) -> None:
    """"Mood and any thoughts of self-harm": the strict check wants "mood" too; the coach still
    leaves "Have you ever had thoughts of hurting yourself?" alone (the checklist gives no
    credit: that needs the coder's risk topics)."""
    item = "Mood and any thoughts of self-harm (brief, age-appropriate check)"
    text = "Have you ever had thoughts of hurting yourself?"
    coded = CodedTurn(labels=CounselorLabels(behaviour="question", subtype="closed"),
                      codes={"behaviour": "Q", "question_type": "CQ"}, rubric_id=miti.id)
    out = coach_turn(coded, miti, [], text, must_assess=[item])
    assert out.featured == "risk" and out.alternative is None
    assert not review([item], [T(1, 0, "counselor", text)], {}).checks[0].asked


def test_a_partly_asked_item_is_named_by_what_is_still_missing() -> None:
    """After "Have you thought about how you would do it?" the coach must not ask for "Plan,
    intent, previous attempts" again: only intent and past attempts are still to ask."""
    from simulator.grader.risk_review import still_to_ask

    item = "Plan, intent, previous attempts"
    assert still_to_ask(item, set()) == item
    assert still_to_ask(item, {"ideation", "plan"}) == f"intent, past attempts ({item})"
    assert still_to_ask("Sleep hygiene", {"plan"}) == "Sleep hygiene"  # no risk topics
