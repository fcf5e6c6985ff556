"""Risk topics by meaning: the learned head adds what the phrasing rules miss, only once the
conversation is about suicide or self-harm, and never takes away what the rules found."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from simulator.cli.main import app
from simulator.coder.miti_data import DEFAULT_DATA, read_trainee
from simulator.coder.risk import detect_risk
from simulator.coder.risk_meaning import RiskHead, find_risk, risk_head
from simulator.coder.risk_training import fit_risk_head


def test_a_follow_up_the_rules_cannot_read_is_found() -> None:
    ctx = ["Sometimes I wish I could just not wake up."]
    question = "Who would you want to stay around for?"
    assert detect_risk(question, ctx) == []
    assert find_risk(question, ctx, client_last=ctx[-1]) == ["protective_factors"]
    ctx = ["I can't see a way out."]
    assert find_risk("How close have you come to acting on it?", ctx,
                     client_last=ctx[-1]) == ["intent"]


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
    result = CliRunner().invoke(app, ["train-coder", "--risk", "--no-transformer", "--data",
                                      str(data), "--out", str(out), "--json"])
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
    assert find_risk(q, []) == []  # alone, the words say nothing about risk
    # self-harm now; since stop 27 history too (the reader's 0.4 in a risk conversation: the
    # client told of self-harm in the past, and the question asks whether it goes on)
    assert find_risk(q, [said], client_last=said)[0] == "self_harm"
    # a statement is not a follow-up question; a question with a topic of its own keeps it
    assert find_risk("That sounds really painful.", [said], client_last=said) == []
    own = "Have you ever thought about ending your life?"
    assert "ideation" in find_risk(own, [said], client_last=said)
    # after ordinary words there is nothing to inherit
    assert find_risk("How long has that been going on?", ["My knee still hurts."],
                     client_last="My knee still hurts.") == []


def test_the_reader_finds_follow_ups_only_the_client_line_makes_risk() -> None:
    """The fine-tuned reader reads the question after the client's last words: with no word of
    risk in it and no word pointing back, "How many have you got now?" asks about means after
    a stockpile, and about nothing after an ordinary line."""
    from simulator.coder.risk_meaning import risk_reader

    assert risk_reader() is not None  # shipped
    q = "How many have you got now?"
    said = "I've been saving up my sleeping tablets in a drawer."
    assert detect_risk(q, [said]) == []
    assert "means" in find_risk(q, [said], client_last=said)
    other = "I've been collecting old vinyl records since college."
    assert find_risk(q, [other], client_last=other) == []
    said = "I had the rope ready on Sunday."
    assert "protective_factors" in find_risk("What stopped you?", [said], client_last=said)
    other = "I nearly applied for the manager's job."
    assert find_risk("What stopped you?", [other], client_last=other) == []


@pytest.mark.train
def test_train_risk_fine_tunes_a_reader_the_app_can_load(tmp_path: Path) -> None:
    from simulator.coder.finetune import FinetuneConfig
    from simulator.coder.risk_meaning import reader_topics
    from simulator.coder.risk_training import train_risk_head
    from simulator.coder.transformer import BehaviourModel

    rows = [json.loads(line) for line in DEFAULT_DATA.read_text().splitlines()]
    small = [r for r in rows if r["split"] == "train" and r["risk"]][:60] + \
        [r for r in rows if r["split"] == "train" and not r["risk"]][:140]
    data = tmp_path / "small.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in small))
    out = tmp_path / "head.npz"
    report = train_risk_head(data, out, transformer=True,
                             reader_config=FinetuneConfig(layers=1, epochs=1))
    reader = BehaviourModel(report["reader"])
    assert report["reader"] == str(tmp_path / "head.reader.onnx")
    assert reader.config.labels[0] == "none" and len(reader.config.labels) == 9
    assert reader.config.multi_label  # a sigmoid per topic: the probabilities need not sum to 1
    assert reader.meta["train_rows"] == 200
    assert reader.meta["everyday_negatives"] > 0  # AnnoMI's ordinary lines, read as "none"
    assert isinstance(reader_topics(reader, "Have you thought about suicide?", None), list)


def test_the_reader_reads_the_same_pair_in_training_and_in_the_app() -> None:
    """Until stop 27 training prefixed the client's words with " | " and the app did not: the
    same follow-up read as intent 0.12 in one and 0.96 in the other."""
    from simulator.coder.labels import Utterance
    from simulator.coder.miti_data import TraineeUtterance
    from simulator.coder.risk_finetune import pair_of
    from simulator.coder.risk_meaning import reader_pair

    said = "I'm not going to do anything stupid, if that's what you're asking."
    row = TraineeUtterance(id="u1", split="train", speaker="counselor",
                           context=[Utterance(speaker="counselor", text="How are things?"),
                                    Utterance(speaker="client", text=said)],
                           text="How sure are you about that?", behaviour="Q",
                           question_type="CQ", risk=["intent"])
    assert pair_of(row) == reader_pair(said, row.text) == (said, row.text)
    line = row.model_copy(update={"speaker": "client", "behaviour": None,
                                  "question_type": None})
    assert pair_of(line) == reader_pair(None, row.text) == ("", row.text)


def test_a_client_line_with_several_topics_finds_them_all() -> None:
    """The reader gives each topic its own probability (multi-label since stop 27), and a line
    that surely discloses one topic is read for its others at the in-conversation threshold."""
    from simulator.coder.risk_meaning import risk_reader

    reader = risk_reader()
    assert reader is not None and reader.config.multi_label
    line = "I've got the pills in the drawer and I know it will be Sunday night."
    assert {"plan", "means"} <= set(find_risk(line, [], client_line=True))
    assert find_risk("Work is killing me this month.", [], client_line=True) == []


def test_a_disclosure_makes_the_next_question_part_of_a_risk_conversation() -> None:
    """Neither "I bought some rope last week." nor "Where is it now?" has a word of suicide; the
    client's line read as a disclosure opens the gate (``risk_meaning._discloses``)."""
    said = "I bought some rope last week. I don't really know why."
    assert "means" in find_risk("Where is it now?", [said], client_last=said)
    other = "I lost my wedding ring last week."
    assert find_risk("Where is it now?", [other], client_last=other) == []


def test_a_long_assessment_of_denials_stays_a_conversation_about_risk() -> None:
    """Once suicide has come up, the session stays about risk: eight exchanges of denials and
    ordinary questions later, taking the tablets back is still a means question (it was coached
    as a closed question to rewrite when the gate read only the last twelve utterances)."""
    opening = ["I just can't see the point of anything lately.",
               "Does it ever go as far as wishing you weren't alive?",
               "Sometimes, at night. I wouldn't do anything.",
               "Is there anything at home you've thought about using?",
               "There's my mum's tablets, from before. I haven't touched them."]
    ordinary = ["How are you sleeping?", "Badly. Three hours maybe.",
                "And your appetite?", "I don't really eat breakfast.",
                "How's work been?", "Same as always. I just get on with it.",
                "How's your brother doing?", "He's fine. He doesn't call much.",
                "What do you do at weekends?", "Shopping. The launderette.",
                "And your neighbour?", "She waves. That's about it."]
    question = "Would you be willing to take the tablets back to the pharmacy this week?"
    assert find_risk(question, opening + ordinary, client_last=ordinary[-1]) == ["means"]
    # the reader's low threshold is kept for the recent conversation: "look after yourself" late
    # in the session is not a self-harm question
    assert find_risk("What do you do to look after yourself these days?", opening + ordinary,
                     client_last="Honestly, other people have it so much worse.") == []
    # the same question after the same ordinary talk, with no risk anywhere before it
    assert find_risk(question, ordinary, client_last=ordinary[-1]) == []
