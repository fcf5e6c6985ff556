"""The transformer half of the offline coder: the shipped ONNX file, its encoding, and the average
with the TF-IDF head that ``OfflineCoder`` takes for the main behaviour."""

from __future__ import annotations

import socket

import numpy as np
import pytest
from pydantic import ValidationError

from simulator.coder.features import counselor_fields
from simulator.coder.labels import Utterance
from simulator.coder.offline import MODEL_PATH, CoderModel, OfflineCoder, load_offline_coder
from simulator.coder.transformer import (
    BehaviourModel,
    PairConfig,
    behaviour_path,
    context_text,
    encode_pair,
    pad,
    tokenizer_path,
)

ONNX_PATH = behaviour_path(MODEL_PATH)
CLIENT = Utterance(speaker="client", text="I just don't know what to do anymore.")
COUNSELOR = Utterance(speaker="counselor", text="What brings you in?")


@pytest.fixture(scope="module")
def behaviour() -> BehaviourModel:
    model = load_offline_coder().behaviour
    assert model is not None
    return model


def test_shipped_file_is_small_loads_offline_and_matches_the_tfidf_split(monkeypatch):
    assert ONNX_PATH.stat().st_size < 30_000_000
    assert tokenizer_path(ONNX_PATH).exists()

    def no_network(*args, **kwargs):
        raise AssertionError("the behaviour model tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    model = BehaviourModel(ONNX_PATH)
    tfidf = CoderModel.load(MODEL_PATH)
    assert sorted(model.config.labels) == sorted(tfidf.counselor.heads["behaviour"].classes)
    assert 0.0 < model.config.weight < 1.0
    # trained on the same side of the same split, so --dev-split figures stay honest
    assert model.meta["dev_videos"] == tfidf.meta["dev_videos"]


def test_a_file_that_is_not_a_behaviour_model_is_a_clear_error(tmp_path):
    bad = tmp_path / "x.behaviour.onnx"
    bad.write_bytes(b"not onnx")
    with pytest.raises(ValueError, match="x.behaviour.onnx: not a CounselSim behaviour model"):
        BehaviourModel(bad)
    with pytest.raises(ValidationError):
        PairConfig(weight=1.5)


def test_context_is_the_counselors_last_turn_then_the_clients():
    ctx = [COUNSELOR, CLIENT, Utterance(speaker="client", text="Really lost.")]
    assert context_text(ctx) == "What brings you in? | Really lost."
    assert context_text([]) == " | "


def test_pair_keeps_the_end_of_the_context_and_the_start_of_the_utterance(behaviour):
    tok = behaviour.tokenizer
    config = PairConfig(max_context=3, max_utterance=2)
    ids, types = encode_pair(tok, "one two three four five", "alpha beta gamma", config,
                             behaviour.cls_id, behaviour.sep_id)
    words = [tok.id_to_token(i) for i in ids]
    assert words == ["[CLS]", "three", "four", "five", "[SEP]", "alpha", "beta", "[SEP]"]
    assert types == [0, 0, 0, 0, 0, 1, 1, 1]
    batch = pad([(ids, types), ([1, 2], [0, 1])], behaviour.pad_id)
    assert batch["input_ids"].shape == (2, 8)
    assert batch["attention_mask"][1].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]


def test_an_utterance_is_coded_the_same_alone_and_among_others(behaviour):
    texts = [("word " * (i % 7 + 1)).strip() + ("?" if i % 3 == 0 else ".") for i in range(40)]
    texts[5] = "So you feel stuck, and nothing you have tried so far has changed that at all."
    items = [(t, [CLIENT]) for t in texts]
    together = behaviour.proba(items)
    alone = np.vstack([behaviour.proba([item]) for item in items])
    assert together.shape == (len(items), len(behaviour.config.labels))
    assert np.allclose(together.sum(axis=1), 1.0)
    assert np.array_equal(together, alone)


def test_offline_coder_averages_the_two_models(behaviour):
    coder = load_offline_coder()
    assert coder.behaviour is behaviour
    alone = OfflineCoder(coder.model)
    items = [("It sounds like you're worried about your health.", [CLIENT]),
             ("Do you smoke?", [COUNSELOR, CLIENT]),
             ("Many people find that cutting down slowly works best.", [CLIENT])]
    x = coder.model.counselor.features([counselor_fields(t, c) for t, c in items])
    classes, mixed = coder.behaviour_proba(items, x)
    _, tfidf = alone.behaviour_proba(items, x)
    labels = list(behaviour.config.labels)
    transformer = behaviour.proba(items)[:, [labels.index(c) for c in classes]]
    w = behaviour.config.weight
    assert np.allclose(mixed, w * transformer + (1 - w) * tfidf)
    coded = coder.code_counselor_batch(items)
    assert [c.behaviour for c in coded] == [classes[i] for i in mixed.argmax(axis=1)]
    assert [c.confidence for c in coded] == [round(float(p.max()), 4) for p in mixed]
    assert "MiniLM" in coder.description and "MiniLM" not in alone.description
