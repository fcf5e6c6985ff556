"""The shipped offline coder loads from disk with no network and codes obvious utterances right."""

from __future__ import annotations

import shutil
import socket

import pytest

from simulator.coder.labels import Coder, Utterance
from simulator.coder.offline import MODEL_PATH, CoderModel, OfflineCoder, load_offline_coder
from simulator.coder.transformer import behaviour_path, tokenizer_path

CLIENT = [Utterance(speaker="client",
                    text="I just don't know what to do anymore. Nothing changes.")]


@pytest.fixture(scope="module")
def coder():
    return load_offline_coder()


def test_shipped_model_is_small_and_loads_without_network(monkeypatch):
    assert MODEL_PATH.exists()
    assert MODEL_PATH.stat().st_size < 30_000_000

    def no_network(*args, **kwargs):
        raise AssertionError("the offline coder tried to open a network connection")

    monkeypatch.setattr(socket, "create_connection", no_network)
    monkeypatch.setattr(socket.socket, "connect", no_network)
    model = CoderModel.load(MODEL_PATH)
    assert set(model.counselor.heads) >= {"behaviour", "question_subtype", "reflection_subtype",
                                          "therapist_input_subtype"}
    assert model.client is not None and "talk_type" in model.client.heads
    assert model.meta["dev_videos"] and not set(model.meta["dev_videos"]) & set(
        model.meta["train_videos"])


def test_is_a_coder_and_cached(coder):
    c: Coder = coder
    assert c.name == "offline"
    assert load_offline_coder() is coder


def test_two_threads_code_like_one(coder):
    """The app's live coding may use two threads (settings.coder_threads); same labels."""
    two = load_offline_coder(threads=2)
    assert two is not coder and load_offline_coder(threads=2) is two
    items = [("What brings you here today?", []), ("So you feel stuck.", CLIENT),
             ("You need to cut down on the drinking.", CLIENT),
             ("It sounds like the evenings are the hardest part for you.", CLIENT)]
    for (text, ctx) in items:
        a, b = coder.code_counselor(text, ctx), two.code_counselor(text, ctx)
        assert (a.behaviour, a.subtype) == (b.behaviour, b.subtype)
        assert abs(a.confidence - b.confidence) < 1e-3


@pytest.mark.parametrize(("text", "behaviour", "subtype"), [
    ("What brings you here today?", "question", "open"),
    ("How would you like things to be different?", "question", "open"),
    ("Do you smoke?", "question", "closed"),
    ("So you feel stuck.", "reflection", None),
    ("It sounds like you're worried about your health.", "reflection", None),
])
def test_obvious_utterances(coder, text, behaviour, subtype):
    labels = coder.code_counselor(text, CLIENT)
    assert labels.behaviour == behaviour
    if subtype:
        assert labels.subtype == subtype
    if behaviour == "reflection":
        assert labels.subtype in {"simple", "complex"}
    assert 0.0 < labels.confidence <= 1.0
    assert labels.coder == "offline"


def test_batch_matches_single_calls(coder):
    items = [("What brings you here today?", []), ("So you feel stuck.", CLIENT),
             ("Thanks for coming in today.", [])]
    batch = coder.code_counselor_batch(items)
    singles = [coder.code_counselor(t, c) for t, c in items]
    assert [b.behaviour for b in batch] == [s.behaviour for s in singles]
    assert coder.code_counselor_batch([]) == []


def test_client_talk(coder):
    q = [Utterance(speaker="counselor", text="What would you like to do about your drinking?")]
    change = coder.code_client("I really want to quit, and I think I can do it.", q)
    assert change.talk_type == "change"
    assert coder.code_client("I'm not going to stop drinking, I like it and it helps me relax.",
                             q).talk_type == "sustain"


def test_roundtrip_save_load(coder, tmp_path):
    path = tmp_path / "m.npz"
    coder.model.save(path)
    text, ctx = "So you feel stuck.", CLIENT
    with pytest.raises(ValueError, match="m.behaviour.onnx, which is missing"):
        load_offline_coder(path)  # trained with a behaviour model: it must be beside it
    onnx = behaviour_path(path)
    shutil.copyfile(behaviour_path(MODEL_PATH), onnx)
    shutil.copyfile(tokenizer_path(behaviour_path(MODEL_PATH)), tokenizer_path(onnx))
    both = load_offline_coder(path)
    assert both.code_counselor(text, ctx) == coder.code_counselor(text, ctx)

    alone = CoderModel.load(MODEL_PATH)
    del alone.meta["behaviour_sha256"]
    alone.save(tmp_path / "alone.npz")
    shutil.copyfile(onnx, behaviour_path(tmp_path / "alone.npz"))
    with pytest.raises(ValueError, match="trained without a behaviour model"):
        load_offline_coder(tmp_path / "alone.npz")  # a stale file is never averaged in
    behaviour_path(tmp_path / "alone.npz").unlink()
    tfidf = load_offline_coder(tmp_path / "alone.npz")
    assert tfidf.behaviour is None
    assert tfidf.code_counselor(text, ctx) == OfflineCoder(coder.model).code_counselor(text, ctx)


def test_a_changed_behaviour_file_is_refused(coder, tmp_path):
    path = tmp_path / "m.npz"
    coder.model.save(path)
    onnx = behaviour_path(path)
    onnx.write_bytes(behaviour_path(MODEL_PATH).read_bytes() + b"\0")
    with pytest.raises(ValueError, match="not the behaviour model m.npz was trained with"):
        load_offline_coder(path)
