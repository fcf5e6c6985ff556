"""The planner: priority rules, stage-of-change talk mix, and enough variety not to loop."""

from __future__ import annotations

import random
from collections import Counter

from engine_fixtures import dana, with_changes

from simulator.client.planner import PLAN_ACTS, Plan, opening_plan, plan_next, talk_weights
from simulator.client.state import initial_state, record_reply, update_state


def after(codes: list[str], text: str = "Tell me more.", turns_before: int = 1):
    """State after ``turns_before`` neutral turns (opening done) and then this turn."""
    p = dana()
    s = initial_state(p)
    s = record_reply(s, "opening")
    for _ in range(turns_before):
        s = update_state(s, p, ["GI", "NQ"], "ok")
    return update_state(s, p, codes, text)


def plan(codes: list[str], text: str = "Tell me more.", seed: int = 0) -> Plan:
    return plan_next(after(codes, text), dana(), codes, random.Random(seed))


def test_reactions_to_confrontation_advice_and_closing() -> None:
    assert plan(["CONFRONT", "NQ"]).act == "react_to_confrontation"
    assert plan(["PERSUADE", "NQ"]).act == "react_to_advice"
    assert plan(["GI", "NQ"], "We are out of time, so let's stop here.").act == "closing"


def test_a_newly_unlocked_fact_is_disclosed_once() -> None:
    p = dana()
    s = update_state(record_reply(initial_state(p), "opening"), p, ["Q", "OQ"], "How is work?")
    first = plan_next(s, p, ["Q", "OQ"], random.Random(0))
    assert (first.act, first.fact_id) == ("disclose", "topic-fact")
    s = record_reply(s, first.act, first.fact_id)
    s = update_state(s, p, ["Q", "OQ"], "And work again?")
    assert plan_next(s, p, ["Q", "OQ"], random.Random(0)).act != "disclose"


def test_confrontation_beats_disclosure() -> None:
    p = dana()
    s = update_state(initial_state(p), p, ["CONFRONT", "NQ"], "Your work is a mess, admit it.")
    assert "topic-fact" in s.unlocked
    assert plan_next(s, p, ["CONFRONT", "NQ"], random.Random(0)).act == "react_to_confrontation"


def test_opening_first_then_short_answers_after_closed_question_runs() -> None:
    p = dana()
    s = update_state(initial_state(p), p, ["Q", "OQ"], "What brings you here?")
    assert plan_next(s, p, ["Q", "OQ"], random.Random(0)).act == "opening"
    assert opening_plan(p).act == "opening"
    s = record_reply(s, "opening")
    for _ in range(2):
        s = update_state(s, p, ["Q", "CQ"], "Do you drink daily?")
    assert plan_next(s, p, ["Q", "CQ"], random.Random(0)).act == "short_answer"


def test_plan_fields_are_valid_and_short_answers_are_short() -> None:
    for seed in range(50):
        pl = plan(["CR", "NQ"], seed=seed)
        assert pl.act in PLAN_ACTS and pl.reason and pl.max_words >= 3
    assert plan_next(after(["Q", "CQ"]).model_copy(update={"closed_run": 3}), dana(), ["Q", "CQ"],
                     random.Random(0)).max_words <= 12


def draws(stage: str, n: int = 3000, resistance: float | None = None) -> Counter[str]:
    p = with_changes(dana(), stage_of_change=stage)
    s = update_state(record_reply(initial_state(p), "opening"), p, ["GI", "NQ"], "ok")
    if resistance is not None:
        s = s.model_copy(update={"resistance": resistance})
    rng = random.Random(7)
    return Counter(plan_next(s, p, ["GI", "NQ"], rng).act for _ in range(n))


def test_stage_of_change_sets_the_talk_mix() -> None:
    pre, prep = draws("precontemplation"), draws("preparation")
    assert pre["sustain_talk"] > pre["change_talk"]
    assert prep["change_talk"] > prep["sustain_talk"]
    assert prep["change_talk"] > pre["change_talk"]


def test_high_resistance_brings_deflection() -> None:
    assert draws("contemplation", resistance=0.9)["deflect"] > 3 * draws(
        "contemplation", resistance=0.2)["deflect"]


def test_reflections_invite_elaboration() -> None:
    s = after(["GI", "NQ"])
    assert talk_weights(s, dana(), ["CR", "NQ"])["elaborate"] > talk_weights(
        s, dana(), ["GI", "NQ"])["elaborate"]


def test_a_long_session_does_not_loop() -> None:
    """Thirty reflective turns: many different acts, and never the same act four times running."""
    p = dana()
    s = record_reply(initial_state(p), "opening")
    rng = random.Random(3)
    acts = []
    for i in range(30):
        codes = [["CR", "NQ"], ["Q", "OQ"], ["SR", "NQ"]][i % 3]
        s = update_state(s, p, codes, "Tell me more about that.")
        pl = plan_next(s, p, codes, rng)
        s = record_reply(s, pl.act, pl.fact_id)
        acts.append(pl.act)
    assert len(set(acts)) >= 5
    assert all(len(set(acts[i:i + 4])) > 1 for i in range(len(acts) - 3))
