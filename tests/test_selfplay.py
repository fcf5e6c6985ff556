"""Self-play: every shipped persona rewards the skilled scripted counselor over the unskilled."""

from __future__ import annotations

import json
from typing import Any

import pytest
from engine_fixtures import all_personas, dana, shipped_personas
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from simulator.coder.labels import Utterance
from simulator.content.persona import Persona
from simulator.service.selfplay import (
    CodeFn,
    load_counselors,
    offline_code_fn,
    persona_topics,
    run_selfplay,
)
from simulator.settings import ROOT, load_settings

PERSONAS = all_personas()


@pytest.fixture(scope="module")
def code() -> CodeFn:
    return offline_code_fn(load_settings())


def test_every_shipped_persona_file_loads() -> None:
    files = sorted(p for p in (ROOT / "personas").iterdir() if p.suffix in (".yaml", ".yml"))
    assert files, "no shipped personas"
    assert len(shipped_personas()) == len(files)


@pytest.mark.parametrize("counselor", ["skilled", "unskilled"])
def test_scripted_lines_get_the_codes_their_move_intends(counselor: str, code: CodeFn) -> None:
    script = load_counselors()[counselor]
    context = [Utterance(speaker="client", text="I'm not sure why I'm here, to be honest.")]
    wrong = []
    for name, move in script.moves.items():
        for line in move.lines:
            text = line.format(name="Sam", topic="work")
            got = code(text, context)
            if not set(got) & set(move.codes):
                wrong.append((name, text, got))
    assert not wrong


def both(persona: Persona, code: CodeFn, seed: int = 0) -> tuple[Any, Any]:
    return (run_selfplay(persona, "skilled", code, seed=seed),
            run_selfplay(persona, "unskilled", code, seed=seed))


@pytest.mark.parametrize("persona", PERSONAS, ids=[p.id for p in PERSONAS])
def test_skilled_unlocks_more_and_ends_less_resistant(persona: Persona, code: CodeFn) -> None:
    assert persona.hidden_facts, "a persona without hidden facts cannot reward skill"
    for seed in (0, 1):
        skilled, unskilled = both(persona, code, seed)
        assert len(skilled.unlocked_facts) > len(unskilled.unlocked_facts), seed
        assert skilled.final_state.resistance < unskilled.final_state.resistance, seed
        assert skilled.final_state.rapport > unskilled.final_state.rapport, seed


def test_counselors_ask_about_the_same_topics_at_the_same_turns(code: CodeFn) -> None:
    skilled, unskilled = both(dana(), code)
    topics = persona_topics(dana())

    def asked(result: Any) -> list[tuple[int, str]]:
        return [(i, t) for i, e in enumerate(result.transcript) if e.speaker == "counselor"
                for t in topics if e.move == "topic" and t in e.text]

    assert asked(skilled) and [i for i, _ in asked(skilled)] == [i for i, _ in asked(unskilled)]


def test_selfplay_is_deterministic_and_shaped_for_json(code: CodeFn) -> None:
    a = run_selfplay(dana(), "skilled", code, turns=6, seed=3).model_dump(mode="json")
    b = run_selfplay(dana(), "skilled", code, turns=6, seed=3).model_dump(mode="json")
    assert a == b
    assert {"persona", "counselor", "transcript", "unlocked_facts", "final_state"} <= set(a)
    t = a["transcript"]
    assert len(t) == 1 + 2 * 6 and t[0]["speaker"] == "client" and t[0]["act"] == "opening"
    assert all(e["codes"] for e in t if e["speaker"] == "counselor")
    assert all(e["act"] for e in t if e["speaker"] == "client")
    json.dumps(a)


def test_llm_counselor_and_llm_client(code: CodeFn) -> None:
    counselor = FakeListChatModel(responses=["What brings you here today?",
                                             "It sounds like this has been hard on you."])
    client = FakeListChatModel(responses=["The GP sent me.", "It has.", "I suppose."])
    result = run_selfplay(dana(), "skilled", code, turns=2, client_model=client,
                          counselor_model=counselor)
    texts = [e.text for e in result.transcript]
    assert texts == ["The GP sent me.", "What brings you here today?", "It has.",
                     "It sounds like this has been hard on you.", "I suppose."]
    assert result.transcript[1].codes == ["Q", "OQ"] and result.transcript[1].move is None


def test_unknown_counselor_is_a_clear_error(code: CodeFn) -> None:
    with pytest.raises(ValueError, match="unknown counselor 'brilliant'"):
        run_selfplay(dana(), "brilliant", code)


def test_cli_smoke(cli) -> None:
    persona = shipped_personas()[0].id
    done = cli("selfplay", "--persona", persona, "--counselor", "unskilled", "--turns", "3",
               "--json")
    assert done.exit_code == 0, done.stderr
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["persona"] == persona and out["counselor"] == "unskilled"
    assert len(out["transcript"]) == 7 and "resistance" in out["final_state"]


def test_cli_unknown_persona_is_a_user_error() -> None:
    from typer.testing import CliRunner

    from simulator.cli.main import app

    bad = CliRunner().invoke(app, ["selfplay", "--persona", "nobody", "--counselor", "skilled"])
    assert bad.exit_code == 1 and "unknown persona 'nobody'" in bad.output
