"""The MITI 4.2.1 utterance coder: codes per utterance, the manual's rules, turn codes and
scores from utterances, the labelled-set reader, ``bench coder`` on a trainee-style file and the
LLM MITI coder with a scripted fake model."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.runnables import RunnableLambda

from simulator.bench.coder_miti import run_miti_bench, score_behaviours
from simulator.coder.labels import CounselorLabels, Utterance, UtteranceCode
from simulator.coder.llm import LLMMitiCoder, MitiUtteranceSchema, miti_system_prompt
from simulator.coder.miti import (
    CLASSES,
    apply_rules,
    load_miti_model,
    miti_coder,
    miti_fields,
    permission_granted,
)
from simulator.coder.miti_data import DEFAULT_DATA, TraineeUtterance, read_trainee
from simulator.coder.miti_training import fit_miti, model_target
from simulator.coder.rubric_codes import code_turn
from simulator.content.library import load_paths
from simulator.content.rubric import Rubric
from simulator.grader.scores import compute_scores
from simulator.settings import ROOT


@pytest.fixture(scope="module")
def miti() -> Rubric:
    return load_paths([ROOT / "rubrics"]).rubric("miti-4.2.1")


def utt(behaviour: str, qtype: str | None = None, text: str = "x") -> UtteranceCode:
    return UtteranceCode(text=text, start=0, end=len(text), behaviour=behaviour,
                         question_type=qtype)


def test_a_turn_is_coded_per_utterance() -> None:
    coder = miti_coder()
    text = "So drinking helps you relax. What would you lose if you cut down?"
    labels = coder.code_counselor(text, [Utterance(speaker="client",
                                                   text="A few beers help me relax.")])
    codes = [(u.behaviour, u.question_type) for u in labels.utterances]
    assert codes[0][0] in {"SR", "CR"} and codes[1] == ("Q", "OQ")
    assert [text[u.start:u.end] for u in labels.utterances] == [u.text for u in labels.utterances]
    assert labels.behaviour in {"question", "reflection", "therapist_input", "other"}  # AnnoMI


@pytest.mark.parametrize(("text", "code", "qtype"), [
    ("That's not a good enough reason to miss class.", "CONFRONT", None),
    ("You're not being honest with yourself.", "CONFRONT", None),
    ("Do you think your drinking is a problem?", "Q", "CQ"),
    ("Will you give it a try?", "Q", "CQ"),
    ("It's really up to you whether and when you cut down.", "EMPHASIZE", None),
])
def test_issue_examples(text: str, code: str, qtype: str | None) -> None:
    (u,) = miti_coder().code_counselor(text, []).utterances
    assert (u.behaviour, u.question_type) == (code, qtype)
    assert 0.0 <= u.confidence <= 1.0


def test_permission_rules_follow_the_manual() -> None:
    asked = ("May I share a concern?",)
    assert apply_rules("PERSUADE", "You might cut down on weekdays.", [], asked) == "PERSUADE_WITH"
    assert apply_rules("PERSUADE", "Cut down, but it's your call.", [], ()) == "PERSUADE_WITH"
    granted = [Utterance(speaker="counselor", text="Would it be OK if I shared an idea?"),
               Utterance(speaker="client", text="Sure, go ahead.")]
    assert apply_rules("PERSUADE", "Try a smaller glass.", granted, ()) == "PERSUADE_WITH"
    assert apply_rules("PERSUADE", "Try a smaller glass.", [], ()) == "PERSUADE"
    # asking permission is Seek, not Persuade with permission
    assert apply_rules("PERSUADE_WITH", "May I share a concern?", [], ()) == "SEEK"
    # the client asking for advice is permission; any other client question is not
    asked_advice = [Utterance(speaker="client", text="What do you think I should do?")]
    assert apply_rules("PERSUADE", "Try a smaller glass.", asked_advice, ()) == "PERSUADE_WITH"
    chatting = [Utterance(speaker="client", text="I'm sorry, I'm going on and on. What do you "
                                                 "usually talk about with people?")]
    assert apply_rules("PERSUADE", "You should try to get more sleep and exercise.", chatting,
                       ()) == "PERSUADE"


def test_advice_after_a_client_question_that_is_not_a_request() -> None:
    """A live session coded this Persuade with permission: a client question is not a request
    for advice (MITI 4.2.1, "Persuade with Permission")."""
    chatting = [Utterance(speaker="client", text="I'm sorry, I'm going on and on. What do you "
                                                 "usually talk about with people?")]
    (u,) = miti_coder().code_counselor("You should try to get more sleep and exercise.",
                                       chatting).utterances
    assert u.behaviour == "PERSUADE"


@pytest.mark.parametrize("text", ["What do you think might help?", "That's a big question."])
def test_no_advice_is_not_persuade_after_a_request_for_advice(text: str) -> None:
    """After the client asks for advice, an utterance with no advice in it is not Persuade with
    permission: the context feeds the permission rule, not the model (docs/coder.md, round 6)."""
    asked = [Utterance(speaker="client", text="What do you think I should do about it?")]
    (u,) = miti_coder().code_counselor(text, asked).utterances
    assert u.behaviour not in {"PERSUADE", "PERSUADE_WITH"}
    assert "ctx_client_asked" not in miti_fields(text, asked)["cues"]
    # the advice itself still gets the permission the client gave
    (advice,) = miti_coder().code_counselor("You could try a smaller glass.", asked).utterances
    assert advice.behaviour == "PERSUADE_WITH"


def test_a_model_with_meaning_trains_saves_and_loads(tmp_path: Path) -> None:
    """The embedding path end to end on a small slice (the shipped model's recipe, tiny)."""
    rows = [r for r in read_trainee(DEFAULT_DATA) if r.split == "train" and
            r.speaker == "counselor"][::25]
    fields = [miti_fields(r.text, r.context) for r in rows]
    model = fit_miti(rows, fields, 10.0, {"fields": ["text"], "weight": 1.0})
    width = sum(len(b.vocab) for b in model.model.counselor.blocks)
    assert model.model.counselor.heads["behaviour"].coef.shape[1] == width + 384
    model.model.save(tmp_path / "m.npz")
    loaded = load_miti_model(tmp_path / "m.npz")
    codes, proba, _ = loaded.predict(fields[:3])
    assert codes == model.predict(fields[:3])[0] and proba.shape == (3, len(loaded.classes))
    assert model_target(next(r for r in rows if r.behaviour == "PERSUADE_WITH" and
                             permission_granted(r.context, ()))) == "PERSUADE"


@pytest.mark.parametrize("text", ["That is a cop-out.", "You're just being lazy."])
def test_blunt_judgements_are_confront(text: str) -> None:
    (u,) = miti_coder().code_counselor(text, []).utterances
    assert u.behaviour == "CONFRONT"


def test_turn_code_from_utterances(miti: Rubric) -> None:
    labels = CounselorLabels(behaviour="reflection", subtype="complex",
                             utterances=[utt("CR"), utt("Q", "OQ")])
    assert code_turn(labels, "x", miti).codes == {"behaviour": "CR", "question_type": "OQ"}
    bad = CounselorLabels(behaviour="reflection", subtype="complex",
                          utterances=[utt("CR"), utt("CONFRONT")])
    assert code_turn(bad, "x", miti).codes == {"behaviour": "CONFRONT", "question_type": "NQ"}
    plain = CounselorLabels(behaviour="question", subtype="open")  # a stored row without them
    assert code_turn(plain, "What happened?", miti).codes == {"behaviour": "Q",
                                                              "question_type": "OQ"}


def test_scores_count_every_utterance(miti: Rubric) -> None:
    turns = [{"behaviour": "CR", "question_type": "OQ"}, {"behaviour": "SR",
                                                          "question_type": "NQ"}]
    utterances = [[utt("CR"), utt("Q", "OQ")], [utt("SR"), utt("SR")]]
    per_turn = compute_scores(miti, turns)
    assert per_turn.counts["Q"] == 0 and per_turn.counts["SR"] == 1
    per_utt = compute_scores(miti, turns, utterances=utterances)
    assert (per_utt.counts["CR"], per_utt.counts["SR"], per_utt.counts["Q"],
            per_utt.counts["OQ"]) == (1, 2, 1, 1)
    assert per_utt.metric("r_q").value == 3.0 and per_utt.n_utterances == 4
    assert per_utt.n_turns == 2


def test_a_correction_is_counted_whole(miti: Rubric) -> None:
    # the supervisor said CONFRONT: the coder's SR + Q utterances no longer stand for the turn
    scores = compute_scores(miti, [{"behaviour": "CONFRONT", "question_type": "OQ"}],
                            utterances=[[utt("SR"), utt("Q", "OQ")]])
    assert scores.counts["CONFRONT"] == 1 and scores.counts["SR"] == 0
    assert scores.counts["OQ"] == 1  # the question type still agrees, so it is still counted


def test_labelled_set_is_large_and_balanced() -> None:
    rows = read_trainee(DEFAULT_DATA)
    counselor = [r for r in rows if r.speaker == "counselor"]
    assert len(counselor) >= 600
    for split in ("train", "test"):
        codes = {r.behaviour for r in counselor if r.split == split}
        assert codes >= {"GI", "PERSUADE", "PERSUADE_WITH", "Q", "SR", "CR", "AF", "SEEK",
                         "EMPHASIZE", "CONFRONT"}
    assert sum(1 for r in rows if r.risk and r.split == "test") >= 30


def test_bad_lines_name_file_and_line(tmp_path: Path) -> None:
    p = tmp_path / "bad.jsonl"
    good = {"id": "a", "split": "test", "text": "Hi.", "behaviour": "NC"}
    p.write_text(json.dumps(good) + "\n" + json.dumps({**good, "id": "b", "behaviour": "XX"}))
    with pytest.raises(ValueError, match=r"bad.jsonl:2: .*unknown MITI code 'XX'"):
        read_trainee(p)
    p.write_text(json.dumps({**good, "question_type": "OQ"}))
    with pytest.raises(ValueError, match=r"bad.jsonl:1: .*only given to Q"):
        read_trainee(p)


def _tiny(tmp_path: Path) -> Path:
    rows = [
        {"id": "1", "split": "test", "text": "You're an alcoholic.", "behaviour": "CONFRONT"},
        {"id": "2", "split": "test", "text": "Stop drinking.", "behaviour": "PERSUADE"},
        {"id": "3", "split": "test", "text": "Do you drink daily?", "behaviour": "Q",
         "question_type": "CQ"},
        {"id": "4", "split": "test", "text": "Do thoughts of suicide come?", "behaviour": "Q",
         "question_type": "CQ", "risk": ["ideation"]},
        {"id": "5", "split": "train", "text": "Great effort.", "behaviour": "AF"},
        {"id": "6", "split": "test", "speaker": "client", "text": "I took an overdose last year.",
         "risk": ["history"]},
    ]
    p = tmp_path / "tiny.jsonl"
    p.write_text("\n".join(json.dumps(r) for r in rows))
    return p


class Scripted:
    """A fake utterance coder answering from a table (tests the bench's arithmetic)."""

    name = "scripted"

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers

    def code_segments(self, items: Sequence[tuple[str, Sequence[Any], Sequence[str]]]
                      ) -> list[UtteranceCode]:
        return [utt(self.answers[t], "CQ" if self.answers[t] == "Q" else None, t)
                for t, _, _ in items]


def test_bench_scores_the_test_part(tmp_path: Path) -> None:
    coder = Scripted({"You're an alcoholic.": "PERSUADE", "Stop drinking.": "GI",
                      "Do you drink daily?": "Q", "Do thoughts of suicide come?": "Q"})
    r = run_miti_bench(_tiny(tmp_path), coder)
    assert r["utterances"] == 4 and r["client_utterances"] == 1
    assert r["per_code"]["Q"]["recall"] == 1.0 and r["per_code"]["CONFRONT"]["recall"] == 0.0
    assert r["mi_non_adherent_recall"] == 0.5  # the confrontation was at least flagged as MINA
    assert r["question_type_accuracy"] == 1.0
    # the scripted coder finds no risk itself: its utterances carry none
    assert r["risk_recall"] == 0.5 and r["risk_items"] == 2  # the client disclosure: detect_risk
    assert r["risk_false_alarm_rate"] == 0.0 and r["non_risk_questions"] == 1


def test_macro_f1_is_over_the_ten_behaviours() -> None:
    s = score_behaviours(["Q", "NC"], ["Q", "Q"])
    assert s["per_code"]["Q"]["f1"] == pytest.approx(2 / 3, abs=1e-3)
    assert s["macro_f1"] == pytest.approx(s["per_code"]["Q"]["f1"] / 10, abs=1e-3)


def test_llm_miti_coder_with_a_scripted_model(tmp_path: Path, miti: Rubric) -> None:
    seen: list[Any] = []

    def fake(messages: list[Any]) -> Any:
        seen.append(messages)
        target = json.loads(messages[-1].content.split("<transcript>")[1]
                            .split("</transcript>")[0])["TARGET"]
        if "suicide" in target:
            return MitiUtteranceSchema(behaviour="Q", question_type="CQ", risk=["ideation"])
        if target.endswith("?"):
            return {"behaviour": "Q", "question_type": "CQ", "risk": []}
        if "alcoholic" in target:
            return {"behaviour": "CONFRONT", "risk": []}
        return "not json"  # retried, then marked failed

    coder = LLMMitiCoder(RunnableLambda(fake), miti, name="fake")
    r = run_miti_bench(_tiny(tmp_path), coder)
    assert r["per_code"]["CONFRONT"]["recall"] == 1.0 and r["risk_recall"] == 1.0
    system = seen[0][0].content
    # each code's contrasting examples from the rubric reach the prompt
    assert "is not: You don't see drinking as a problem right now." in system
    assert "CONFRONT" in system and "SEEK" in system and "Seeking collaboration" in system
    assert miti_system_prompt(miti) == system


def test_a_practice_turn_stores_and_counts_utterances(tmp_path: Path) -> None:
    import asyncio
    import shutil

    from simulator.grader.scores import session_scores
    from simulator.service.practice import Practice
    from simulator.settings import Settings

    personas = tmp_path / "personas"
    personas.mkdir()
    shutil.copy(ROOT / "tests" / "fixtures" / "engine" / "test-dana.yaml", personas)
    practice = Practice.from_settings(Settings(db=tmp_path / "db.sqlite", personas=personas,
                                               rubrics=ROOT / "rubrics"))
    try:
        practice.store.add_user("ana", "trainee", cohort="c1")
        sid = practice.start("ana", "test-dana")

        async def say(text: str) -> None:
            async for _ in practice.turn(sid, "ana", text):
                pass
            await practice.wait_for_grades()

        asyncio.run(say("So you're tired of it all. How has your sleep been?"))
        turn = next(t for t in practice.store.current_turns(sid) if t.speaker == "counselor")
        (record,) = [r for r in practice.store.codes(turn.id) if r.labels]
        stored = record.labels["utterances"] if record.labels else []
        assert [u["question_type"] for u in stored] == [None, "OQ"]
        scores = session_scores(practice.store, sid)
        # the reflection and the question are both counted (one turn, two utterances)
        assert scores.counts["Q"] == 1 and scores.counts["SR"] + scores.counts["CR"] == 1
        assert scores.n_utterances == 2 and scores.n_turns == 1
        # the live turn read its own AnnoMI label from the TF-IDF half (its transformer pass
        # waits until the reply is under way); what is stored is the whole coder's label
        context = practice.history(practice.store.current_turns(sid)[:turn.idx])
        whole = practice.coder.code_counselor(turn.text, context)
        assert record.labels is not None
        assert (record.labels["behaviour"], record.labels["confidence"]) == (
            whole.behaviour, whole.confidence)
    finally:
        practice.store.close()


def test_code_weights_follow_utterance_confidence(miti: Rubric) -> None:
    low = UtteranceCode(text="x", start=0, end=1, behaviour="CONFRONT", confidence=0.3)
    sure = UtteranceCode(text="y", start=0, end=1, behaviour="Q", question_type="OQ",
                         confidence=0.9)
    coded = code_turn(CounselorLabels(behaviour="other", utterances=[low, sure]), "x y", miti)
    assert coded.code_weights() == {"CONFRONT": 0.3, "OQ": 0.9}
    plain = code_turn(CounselorLabels(behaviour="question", subtype="open", confidence=0.7),
                      "What happened?", miti)
    assert plain.code_weights() == {"Q": 0.7, "OQ": 0.7}


def test_llm_grader_prompt_carries_contrasting_examples(miti: Rubric) -> None:
    from simulator.grader.grade import turn_messages

    system = turn_messages(miti, [], "Hello.", "coach")[0].content
    assert ('Is NOT this code: "You don\'t see drinking as a problem right now."' in system)
    assert '"Would it be OK if I shared some ideas that have helped other people?"' in system


def test_an_llm_turn_coder_is_called_once_per_turn() -> None:
    from simulator.coder.miti import with_utterances

    calls: list[str] = []

    class OneCall:
        name = "llm-fake"

        def code_counselor(self, text: str, context: Sequence[Utterance]) -> CounselorLabels:
            calls.append(text)
            return CounselorLabels(behaviour="reflection", subtype="simple", coder=self.name)

        def code_counselor_batch(self, items: Sequence[tuple[str, Sequence[Utterance]]]
                                 ) -> list[CounselorLabels]:
            return [self.code_counselor(t, c) for t, c in items]

        def code_client(self, text: str, context: Sequence[Utterance]) -> Any:
            raise AssertionError("not used")

    labels = with_utterances(OneCall(), "You're tired. How long has it been like this?", [])
    assert calls == ["You're tired. How long has it been like this?"]
    assert labels.coder == "llm-fake" and [u.behaviour for u in labels.utterances][1] == "Q"


def test_context_twins_take_away_the_client_just_spoke_cue() -> None:
    """The labelled set has the client's words before reflections but mostly none before
    affirmations or autonomy; training on both context states of every row (its twin) stops
    the model from reading "the client just spoke" as "a reflection"."""
    from simulator.coder.miti_training import client_lines, context_twin

    bare = TraineeUtterance(id="x1", split="train", text="You get to decide.",
                            behaviour="EMPHASIZE")
    said = TraineeUtterance(id="x2", split="train", text="You feel stuck.", behaviour="SR",
                            context=[Utterance(speaker="client", text="I can't move on.")])
    pool = client_lines([bare, said])
    assert pool == ["I can't move on."]
    twin = context_twin(bare, pool)
    assert [u.text for u in twin.context] == ["I can't move on."] and twin.text == bare.text
    assert context_twin(said, pool).context == [] and context_twin(bare, pool) == twin


def test_the_shipped_model_codes_affirmation_and_autonomy_after_a_client_line() -> None:
    """In a live session the client has always just spoken: the codes must not turn into
    reflections because of it."""
    coder = miti_coder()
    context = [Utterance(speaker="client", text="I'm not sure why I'm here, to be honest.")]
    for text, code in [("It's really up to you what, if anything, you decide to change.",
                        "EMPHASIZE"),
                       ("It took courage to come here today.", "AF"),
                       ("Nicotine patches double the chance of quitting.", "GI")]:
        assert [u.behaviour for u in coder.code_counselor(text, context).utterances] == [code]


def _small_miti_file(tmp_path: Path) -> Path:
    src = [json.loads(line) for line in DEFAULT_DATA.read_text().splitlines()]
    by_code: dict[str, list[dict]] = {}
    for d in src:
        if d["split"] == "train" and d["speaker"] == "counselor":
            by_code.setdefault(d["behaviour"], []).append(d)
    rows = [d for group in by_code.values() for d in group[:12]]
    path = tmp_path / "small.jsonl"
    path.write_text("".join(json.dumps(d) + "\n" for d in rows))
    return path


def test_train_miti_without_the_transformer_saves_a_model_that_codes(tmp_path: Path) -> None:
    """The LR half alone (no PyTorch): fitted, saved, loaded and coding; a fine-tuned file left
    beside it from another training is removed, never averaged in."""
    from simulator.coder.miti import load_miti_model
    from simulator.coder.miti_training import train_miti

    out = tmp_path / "m.npz"
    stale = tmp_path / "m.behaviour.onnx"
    stale.write_bytes(b"old")
    report = train_miti(_small_miti_file(tmp_path), out, grid=[(3.0, None)], transformer=False)
    assert report["fine_tuned"] is None and not stale.exists()
    model = load_miti_model(out)
    assert model.behaviour is None
    codes, proba, _ = model.predict([miti_fields("You're just making excuses.", [])])
    assert codes[0] in CLASSES and abs(float(proba.sum()) - 1.0) < 1e-6


@pytest.mark.train
def test_train_miti_fine_tunes_and_averages_the_model_in(tmp_path: Path) -> None:
    from simulator.coder.finetune import FinetuneConfig
    from simulator.coder.miti import load_miti_model
    from simulator.coder.miti_training import train_miti

    out = tmp_path / "m.npz"
    report = train_miti(_small_miti_file(tmp_path), out, grid=[(3.0, None)],
                        finetune_config=FinetuneConfig(layers=1, epochs=1, limit=48))
    assert report["fine_tuned"] == str(tmp_path / "m.behaviour.onnx")
    model = load_miti_model(out)
    assert model.behaviour is not None and list(model.behaviour.config.labels) == list(CLASSES)
    fields = [miti_fields("You're just making excuses.", [])]
    _, alone, _ = model.predict_unweighted(fields)
    model.behaviour.config = model.behaviour.config.model_copy(update={"weight": 1e-9})
    model.forget()
    _, lr_only, _ = model.predict_unweighted(fields)
    assert not np.allclose(alone, lr_only)  # the fine-tuned half moved the probabilities
    (tmp_path / "m.behaviour.onnx").write_bytes(b"tampered")
    with pytest.raises(ValueError, match="not the fine-tuned model"):
        load_miti_model(out)
