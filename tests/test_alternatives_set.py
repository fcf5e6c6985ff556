"""The offline coach's alternatives, generated over every authored client line of the shipped
personas (simulator.grader.alternatives_check), carry none of the failures issue 18 quoted."""

from __future__ import annotations

import pytest

from simulator.content.library import load_library
from simulator.grader.alternatives_check import KINDS, build_risk_set, build_set, problems, summary
from simulator.settings import ROOT


@pytest.fixture(scope="module")
def rows() -> list:
    lib = load_library([ROOT / "personas"], [ROOT / "rubrics"])
    return build_set(lib.personas.values(), lib.rubric("miti-4.2.1"))


def test_the_set_is_large_and_covers_every_kind(rows: list) -> None:
    figures = summary(rows)
    assert figures["n"] >= 400
    assert all(figures["by_kind"][k]["n"] >= 100 for k in KINDS)


def test_no_generated_alternative_has_a_quoted_failure(rows: list) -> None:
    bad = [(r.kind, r.client, r.turn, r.alternative, r.problems) for r in rows if r.problems]
    assert bad == []


def test_most_alternatives_build_on_the_clients_own_words(rows: list) -> None:
    """Grounded = reuses the client's content words; the rest fall back to a plain open
    invitation (no usable clause: a question, a fragment, "Yeah.")."""
    for kind in ("simple_to_complex", "confront_to_reflect", "advice_to_elicit"):
        mine = [r for r in rows if r.kind == kind]
        assert sum(r.grounded for r in mine) / len(mine) >= 0.6, kind


@pytest.mark.parametrize("kind, alternative", [
    ("advice_to_elicit", "It sounds like Since you were young. What ideas do you have?"),
    ("confront_to_reflect", "It sounds like Why do me care."),
    ("closed_to_open", "In what ways is that every night?"),
    ("advice_to_elicit", "It sounds like you didn't tell the doctor that\u2026"),
    ("advice_to_elicit", "It sounds like you like beer. You should try low-alcohol beer."),
    ("closed_to_open", "Do you drink every day?"),
    # seen holding a Tomasz session (stop 27), from "...got it wrong, if you ask me."
    ("confront_to_reflect", "It sounds like it's the doctor who's got it wrong, if me ask you."),
])
def test_the_checks_catch_each_quoted_failure(kind: str, alternative: str) -> None:
    assert problems(kind, "", alternative)


def test_the_checks_catch_the_trainees_own_confrontation_reflected_back() -> None:
    assert problems("confront_to_reflect", "", "It sounds like that's not a good enough reason "
                    "to ignore your liver.", turn="That's not a good enough reason to ignore "
                    "your liver.")


def test_the_checks_pass_good_alternatives() -> None:
    assert problems("advice_to_elicit", "I like a beer after work.",
                    "It sounds like you like a beer after work. What ideas do you have about "
                    "what might work for you?") == []
    assert problems("closed_to_open", "", "How ready are you to quit?") == []
    assert problems("confront_to_reflect", "Sarah left me.",
                    "It sounds like Sarah left you, and that matters to you.") == []


def test_risk_questions_are_never_rewritten_whatever_their_code() -> None:
    """A risk question coded as a restatement, a closed question, advice or a confrontation is
    still praised as a risk question and never given an alternative ("Let's make a plan together
    for keeping you safe" was coached as a simple reflection)."""
    rows = build_risk_set(load_library([ROOT / "personas"], [ROOT / "rubrics"])
                          .rubric("miti-4.2.1"))
    assert len(rows) >= 20
    assert [(r.kind, r.turn, r.problems) for r in rows if r.problems] == []
    plan = next(r for r in rows if r.turn.startswith("Let's make a plan"))
    assert "safety plan" in plan.rationale and "reflection" not in plan.rationale.lower()


def test_the_risk_check_catches_a_rewrite() -> None:
    (row,) = [r for r in build_risk_set(load_library([ROOT / "personas"], [ROOT / "rubrics"])
                                        .rubric("miti-4.2.1"))
              if r.kind == "risk_as_closed_to_open" and r.turn == "Do you have a plan?"]
    assert row.alternative is None and row.problems == []


def test_the_coach_does_not_ask_again_for_a_risk_topic_already_asked() -> None:
    """A practice session asked "Do you ever think about killing yourself?" and, two turns later,
    the coach still said to "Ask directly about suicidal thoughts"."""
    from simulator.coder.labels import CodedTurn, CounselorLabels, Utterance
    from simulator.grader.coach_offline import coaching_context

    rubric = load_library([ROOT / "personas"], [ROOT / "rubrics"]).rubric("miti-4.2.1")
    must = ["Ask directly about suicidal thoughts", "Plan, intent, previous attempts",
            "Protective factors and supports"]
    transcript = [Utterance(speaker="counselor", text="Do you ever think about killing yourself?"),
                  Utterance(speaker="client", text="Nothing like that."),
                  Utterance(speaker="counselor", text="Do you have a plan?"),
                  Utterance(speaker="client", text="No.")]
    coded = CodedTurn(labels=CounselorLabels(behaviour="question", coder="t"),
                      codes={"behaviour": "Q", "question_type": "CQ"}, rubric_id=rubric.id)
    ctx = coaching_context(coded, rubric, transcript, "Is there anything at home you could use?",
                           must_assess=must)
    assert ctx["risk"] == ["means"]
    # "Do you have a plan?" covered the plan: only the rest of that item is still to ask
    assert ctx["risk_todo"] == ["intent, past attempts (Plan, intent, previous attempts)",
                                "Protective factors and supports"]
