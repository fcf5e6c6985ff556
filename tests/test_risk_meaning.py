"""Risk topics by meaning: the learned head adds what the phrasing rules miss, only once the
conversation is about suicide or self-harm, and never takes away what the rules found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from typer.testing import CliRunner

from simulator.cli.main import app
from simulator.coder.miti_data import DEFAULT_DATA, read_trainee
from simulator.coder.risk import detect_risk
from simulator.coder.risk_meaning import RiskHead, find_risk, risk_head
from simulator.coder.risk_training import fit_risk_head


def test_the_head_finds_a_follow_up_the_rules_cannot_read() -> None:
    ctx = ["Sometimes I wish I could just not wake up."]
    question = "Who would you want to stay around for?"
    assert detect_risk(question, ctx) == []
    assert find_risk(question, ctx) == ["protective_factors"]
    assert find_risk(question, ctx, head=None) == ["protective_factors"]  # the shipped head
    ctx = ["I can't see a way out."]
    assert find_risk("How close have you come to acting on it?", ctx) == ["intent"]


def test_look_alikes_stay_quiet_outside_a_risk_conversation() -> None:
    assert find_risk("Do you have a plan for the revision?", ["I've got an exam on Friday."]) == []
    assert find_risk("What keeps you going at work?", ["Work is killing me."]) == []
    assert find_risk("Any plans for the weekend?", []) == []


def test_the_rules_topics_are_kept_whatever_the_head_says() -> None:
    head = risk_head()
    assert head is not None
    deaf = RiskHead(topics=head.topics, coef=np.zeros_like(head.coef),
                    intercept=np.full_like(head.intercept, -50.0),
                    about_coef=np.zeros_like(head.about_coef), about_intercept=-50.0,
                    threshold=head.threshold, gate_threshold=head.gate_threshold)
    q = "Have you had thoughts of ending your life?"
    assert find_risk(q, [], deaf) == detect_risk(q, []) == ["ideation"]
    assert find_risk("Who would you want to stay around for?",
                     ["Sometimes I wish I could just not wake up."], deaf) == []


def test_a_head_saves_and_loads_as_plain_arrays(tmp_path: Path) -> None:
    train = [r for r in read_trainee(DEFAULT_DATA) if r.split == "train"]
    rows = [r for r in train if r.risk][:100] + [r for r in train if not r.risk][:300]
    head = fit_risk_head(rows, c=1.0)
    head.save(tmp_path / "h.npz")
    again = RiskHead.load(tmp_path / "h.npz")
    assert again.topics == head.topics and np.allclose(again.coef, head.coef)
    assert again.threshold == head.threshold
    emb = np.ones(384, np.float32) / np.sqrt(384)
    assert np.allclose(again.topic_proba(emb, True), head.topic_proba(emb, True))


def test_train_coder_risk_cross_validates_and_writes_the_head(tmp_path: Path) -> None:
    src = [json.loads(line) for line in DEFAULT_DATA.read_text().splitlines()]
    risky = [d for d in src if d["split"] == "train" and d["risk"]][:60]
    plain = [d for d in src if d["split"] == "train" and not d["risk"]][:140]
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps(d) + "\n" for d in risky + plain))
    out = tmp_path / "head.npz"
    result = CliRunner().invoke(app, ["train-coder", "--risk", "--data", str(data),
                                      "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output[result.output.index("{"):])
    assert report["train_rows"] == 200 and out.is_file()
    assert set(report["cv"]) == {"rules", "rules + head"}
    assert 0.0 <= report["cv"]["rules + head"]["recall"] <= 1.0
    assert RiskHead.load(out).topics == risk_head().topics  # type: ignore[union-attr]
    both = CliRunner().invoke(app, ["train-coder", "--risk", "--miti", "--data", str(data)])
    assert both.exit_code != 0 and "give one" in both.output


def test_a_question_pointing_back_at_a_disclosure_asks_about_it() -> None:
    said = "I used to cut myself at uni, mostly my legs."
    q = "And is that still going on these days?"
    assert find_risk(q, [said]) == []  # alone, the words say nothing about risk
    assert find_risk(q, [said], client_last=said) == ["self_harm"]
    # not a question, or a question with a topic of its own: nothing inherited
    assert find_risk("That sounds really painful.", [said], client_last=said) == []
    own = "Have you ever thought about ending your life?"
    assert find_risk(own, [said], client_last=said) == find_risk(own, [said])
    # after ordinary words there is nothing to inherit
    assert find_risk("How long has that been going on?", ["My knee still hurts."],
                     client_last="My knee still hurts.") == []
