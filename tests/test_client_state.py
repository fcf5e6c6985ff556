"""The client state machine: what each kind of trainee move does, and exactly when facts unlock."""

from __future__ import annotations

import pytest
from engine_fixtures import dana, with_changes

from simulator.client.state import (
    CLOSED_RUN_PENALTY_FROM,
    MAX_STAGE_ADVANCE,
    STAGES,
    ClientState,
    fact_unlocks,
    gain_of,
    initial_state,
    mentions,
    record_reply,
    update_state,
)

NEUTRAL = "Tell me more."


def step(state: ClientState, codes: list[str], text: str = NEUTRAL) -> ClientState:
    return update_state(state, dana(), codes, text)


def test_initial_state_follows_persona_difficulty_and_style() -> None:
    p = dana()
    s = initial_state(p)
    assert s.resistance == p.style.resistance
    assert s.stage == p.stage_of_change and s.turn == 0 and s.unlocked == []
    easy = with_changes(p, difficulty=1, style={**p.style.model_dump(), "guardedness": 0.2})
    hard = with_changes(p, difficulty=5, style={**p.style.model_dump(), "guardedness": 0.9})
    assert initial_state(easy).rapport > s.rapport > initial_state(hard).rapport
    assert gain_of(easy) > gain_of(p) > gain_of(hard)


def test_reflections_and_open_questions_raise_rapport_complex_most() -> None:
    s0 = initial_state(dana())
    cr, sr, oq = step(s0, ["CR", "NQ"]), step(s0, ["SR", "NQ"]), step(s0, ["Q", "OQ"])
    assert cr.rapport > oq.rapport > sr.rapport > s0.rapport
    assert cr.resistance < s0.resistance


def test_affirmation_and_autonomy_lower_resistance() -> None:
    s0 = initial_state(dana())
    for code in ("AF", "EMPHASIZE"):
        assert step(s0, [code, "NQ"]).resistance < s0.resistance
    assert step(s0, ["EMPHASIZE", "NQ"]).resistance < step(s0, ["SR", "NQ"]).resistance


@pytest.mark.parametrize("code", ["CONFRONT", "PERSUADE"])
def test_confrontation_and_persuasion_raise_resistance_and_cost_rapport(code: str) -> None:
    s0 = initial_state(dana())
    s1 = step(s0, [code, "NQ"])
    assert s1.resistance > s0.resistance and s1.rapport < s0.rapport
    assert s1.emotional_intensity > s0.emotional_intensity
    assert step(s0, ["CONFRONT", "NQ"]).resistance > step(s0, ["PERSUADE", "NQ"]).resistance


def test_closed_question_runs_are_penalised_from_the_third() -> None:
    s = initial_state(dana())
    rapports = []
    for _ in range(CLOSED_RUN_PENALTY_FROM + 1):
        s = step(s, ["Q", "CQ"])
        rapports.append(s.rapport)
    assert s.closed_run == CLOSED_RUN_PENALTY_FROM + 1
    assert rapports[1] > rapports[0]  # early closed questions are harmless
    assert rapports[CLOSED_RUN_PENALTY_FROM - 1] < rapports[CLOSED_RUN_PENALTY_FROM - 2]
    assert step(s, ["CR", "NQ"]).closed_run == 0


def test_update_is_pure_and_deterministic() -> None:
    s0 = initial_state(dana())
    before = s0.model_dump()
    a, b = step(s0, ["CR", "NQ"], "work"), step(s0, ["CR", "NQ"], "work")
    assert a == b and s0.model_dump() == before
    assert a.turn == 1 and a.skill_counts == {"CR": 1, "NQ": 1}


def test_rapport_unlock_opens_exactly_when_rapport_reaches_threshold() -> None:
    threshold = dana().fact("rapport-fact").unlock.rapport
    assert threshold is not None
    s, seen_open = initial_state(dana()), False
    for _ in range(15):
        s = step(s, ["AF", "NQ"])  # AF: rapport rises, no CR/SR counted, no topic mentioned
        assert ("rapport-fact" in s.unlocked) == (s.rapport >= threshold or seen_open)
        seen_open = seen_open or "rapport-fact" in s.unlocked
    assert seen_open


def test_rapport_unlock_stays_unlocked_when_rapport_drops() -> None:
    s = initial_state(dana())
    while "rapport-fact" not in s.unlocked:
        s = step(s, ["AF", "NQ"])
    for _ in range(4):
        s = step(s, ["CONFRONT", "NQ"])
    assert s.rapport < 0.6 and "rapport-fact" in s.unlocked


def test_skills_unlock_opens_on_the_nth_listed_code() -> None:
    s = initial_state(dana())
    turns = [["SR", "NQ"], ["Q", "OQ"], ["CR", "NQ"], ["GI", "NQ"], ["SR", "NQ"]]
    for i, codes in enumerate(turns):
        s = step(s, codes)
        assert ("skills-fact" in s.unlocked) == (i == 4), i
        assert s.newly_unlocked == (["skills-fact"] if i == 4 else [])


def test_topic_unlock_opens_only_on_a_turn_that_mentions_the_keyword() -> None:
    s = initial_state(dana())
    s = step(s, ["Q", "OQ"], "How is the network at home?")  # "work" inside a word: no
    assert "topic-fact" not in s.unlocked
    s = step(s, ["Q", "OQ"], "How are things WORKING out for you?")
    assert "topic-fact" in s.unlocked and "work" in s.topics_seen
    assert mentions("my job", "job") and not mentions("shrink", "drink")


def test_combined_unlock_needs_every_condition_on_the_same_turn() -> None:
    fact = dana().fact("combined-fact")
    ok = {"CR": 2}
    assert fact_unlocks(fact, 0.7, ok, "any dark thoughts?")
    assert not fact_unlocks(fact, 0.69, ok, "any dark thoughts?")  # rapport short
    assert not fact_unlocks(fact, 0.9, {"CR": 1, "SR": 5}, "any dark thoughts?")  # skill short
    assert not fact_unlocks(fact, 0.9, ok, "how do you feel?")  # topic missing
    # through update_state: rapport and skills hold, topic asked later -> opens on that turn only
    s = initial_state(dana())
    for _ in range(8):
        s = step(s, ["CR", "NQ"])
    assert s.rapport >= 0.7 and "combined-fact" not in s.unlocked
    s = step(s, ["Q", "OQ"], "Have you felt hopeless at all?")
    assert "combined-fact" in s.newly_unlocked


def test_stage_moves_forward_with_sustained_mi_and_back_under_confrontation() -> None:
    p = dana()
    s = initial_state(p)
    for _ in range(30):
        s = update_state(s, p, ["CR", "NQ"], NEUTRAL)
    start = STAGES.index(p.stage_of_change)
    assert STAGES.index(s.stage) == start + MAX_STAGE_ADVANCE  # moved, but capped
    before = STAGES.index(s.stage)
    for _ in range(3):
        s = update_state(s, p, ["CONFRONT", "NQ"], NEUTRAL)
    assert STAGES.index(s.stage) < before


def test_a_single_good_turn_does_not_move_the_stage() -> None:
    s = step(initial_state(dana()), ["CR", "NQ"])
    assert s.stage == dana().stage_of_change


def test_trainee_closing_is_noticed() -> None:
    s0 = initial_state(dana())
    assert step(s0, ["GI", "NQ"], "Our time is nearly up; let's stop here.").trainee_closing
    assert not step(s0, ["Q", "OQ"], "What will you do next week?").trainee_closing


def test_record_reply_tracks_acts_and_refuses_locked_disclosure() -> None:
    s = initial_state(dana())
    with pytest.raises(ValueError, match="locked"):
        record_reply(s, "disclose", "topic-fact")
    s = step(s, ["Q", "OQ"], "and your job?")
    s = record_reply(s, "disclose", "topic-fact")
    assert s.disclosed == ["topic-fact"] and s.pending_disclosures() == []
    assert s.recent_acts == ["disclose"]


def test_state_round_trips_through_json() -> None:
    s = step(initial_state(dana()), ["CR", "NQ"], "work")
    assert ClientState.model_validate_json(s.model_dump_json()) == s
