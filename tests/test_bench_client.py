"""`counselsim bench client`: the probe set, its judgement, and the done-when figures."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from engine_fixtures import shipped_personas

from simulator.bench.client import Probe, judge, leaked_facts, load_probes, run_client_bench
from simulator.client import engine
from simulator.content.topics import common_topics
from simulator.service.selfplay import CodeFn, offline_code_fn
from simulator.settings import load_settings

PERSONAS = {p.id: p for p in shipped_personas()}


@pytest.fixture(scope="module")
def code() -> CodeFn:
    return offline_code_fn(load_settings())


def test_every_persona_has_at_least_20_probes_that_are_paraphrases() -> None:
    probes = load_probes()
    examples = {e.strip().lower() for t in common_topics() for e in t.examples}
    examples |= {e.strip().lower() for p in PERSONAS.values() for a in p.answers
                 for e in a.examples}
    for pid in PERSONAS:
        mine = probes.for_persona(pid)
        assert len(mine) >= 20, pid
        assert not [p.say for p in mine if p.say.strip().lower() in examples]
    assert set(probes.personas) <= set(PERSONAS)


def test_judgement_tells_on_topic_refusal_and_non_sequitur() -> None:
    p = PERSONAS["farida-passive-si-risk"]
    before = engine.after(engine.opening(p))
    step = engine.respond(p, before, ["Q", "OQ"], "How are you sleeping?", random.Random(0))
    assert judge(p, Probe(say="x", topic="sleep"), step) == "on_topic"
    assert judge(p, Probe(say="x", topic="work"), step) == "non_sequitur"
    shut = step.model_copy(update={"plan": step.plan.model_copy(update={"act": "deflect"})})
    assert judge(p, Probe(say="x", topic="work"), shut) == "refusal"
    assert leaked_facts(p, [], "My father's sleeping pills are in the kitchen cupboard.") == [
        "means-tablets"]
    assert leaked_facts(p, ["means-tablets"], "The kitchen cupboard.") == []


@pytest.mark.parametrize("pid", ["farida-passive-si-risk", "sofia-depression-cbt"])
def test_done_when_figures_hold_on_a_risk_and_a_cbt_persona(pid: str, code: CodeFn) -> None:
    result = run_client_bench([PERSONAS[pid]], code)
    assert result.on_topic_or_refusal_rate >= 0.9
    assert result.early_closings == 0 and result.leaks == 0


def test_cli_prints_json_last(tmp_path: Path) -> None:
    import json

    from typer.testing import CliRunner

    from simulator.cli.main import app

    probes = tmp_path / "probes.yaml"  # a small set: the CLI's wiring, not the figures
    probes.write_text("common:\n  - {say: 'How are you sleeping these days?', topic: sleep}\n"
                      "closing:\n  - {say: 'We will stop there for today.', act: closing}\n",
                      encoding="utf-8")
    tomasz = "tomasz-alcohol-precontemplation"
    out = CliRunner().invoke(app, ["bench", "client", "--persona", tomasz, "--probes",
                                   str(probes)])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output.strip().splitlines()[-1])
    assert data["bench"] == "client" and data["probes"] == 2
    assert {"on_topic_rate", "non_sequitur_rate", "early_closings", "leaks"} <= set(data)
    bad = CliRunner().invoke(app, ["bench", "client", "--persona", "nobody"])
    assert bad.exit_code == 1
