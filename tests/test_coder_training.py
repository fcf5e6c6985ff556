"""``counselsim train-coder``: the TF-IDF model and the transformer, trained for real on a slice of
the shared AnnoMI data (its first 40 transcripts, so each training takes seconds, not minutes; the
transformer with one layer, one epoch and a few utterances). The shipped model's figures come
from the whole file (``counselsim train-coder``; docs/coder.md)."""

from __future__ import annotations

import csv
import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from simulator.cli.coder import make_coder
from simulator.coder.annomi import default_data_dir, read_annomi, split_by_video, training_file
from simulator.coder.finetune import FinetuneConfig, behaviour_pairs, export, finetune
from simulator.coder.offline import CoderModel
from simulator.coder.training import train_coder
from simulator.coder.transformer import BehaviourModel

DATA = default_data_dir()
TINY = FinetuneConfig(layers=1, epochs=1, limit=48)

SLICE_TRANSCRIPTS = 40

needs_data = pytest.mark.skipif(not DATA.exists(), reason="needs ../shared/data/annomi")


@pytest.fixture(scope="module")
def data_slice(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding the first transcripts of the AnnoMI training file, in its own format."""
    source = training_file(DATA)
    folder = tmp_path_factory.mktemp("annomi-slice")
    with source.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        rows, kept = [], set()
        for row in reader:
            if row["transcript_id"] not in kept and len(kept) >= SLICE_TRANSCRIPTS:
                continue
            kept.add(row["transcript_id"])
            rows.append(row)
    with (folder / source.name).open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return folder


@pytest.fixture(scope="module")
def split(data_slice: Path):
    return split_by_video(read_annomi(training_file(data_slice)).transcripts)


@needs_data
def test_tfidf_only_from_the_command_line(tmp_path: Path, data_slice: Path, cli):
    out = tmp_path / "m.npz"
    done = cli("train-coder", "--no-transformer", "--data", str(data_slice), "--out", str(out),
               "--json")
    assert done.exit_code == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["dev"] == report["dev_tfidf_only"]
    assert "behaviour_model" not in report
    assert 0.6 < report["dev"]["macro_f1"] < 1.0
    model = CoderModel.load(out)
    assert not set(model.meta["dev_videos"]) & set(model.meta["train_videos"])
    assert make_coder(str(out)).behaviour is None  # trained without one


@needs_data
@pytest.mark.train
def test_with_the_transformer_saves_both_and_scores_them_together(tmp_path: Path,
                                                                  data_slice: Path):
    out = tmp_path / "m.npz"
    report = train_coder(data_slice, out, finetune_config=TINY)
    onnx = tmp_path / "m.behaviour.onnx"
    assert report["behaviour_model"] == str(onnx) and onnx.exists()
    assert (tmp_path / "m.behaviour.tokenizer.json").exists()
    coder = make_coder(str(out))
    assert coder.behaviour is not None
    assert coder.behaviour.meta["dev_videos"] == CoderModel.load(out).meta["dev_videos"]
    assert set(report["dev"]) >= {"macro_f1", "cohen_kappa", "per_class_f1"}
    assert report["dev"] != report["dev_tfidf_only"]  # the average changed the dev predictions

    again = train_coder(data_slice, out, transformer=False)  # TF-IDF only: the old ONNX must go
    assert again["removed"] == [str(onnx), str(tmp_path / "m.behaviour.tokenizer.json")]
    assert not onnx.exists() and make_coder(str(out)).behaviour is None


@needs_data
@pytest.mark.train
def test_finetuning_is_deterministic(tmp_path: Path, split):
    train, dev = split
    digests = []
    for run in range(2):
        model, tokens = finetune(*behaviour_pairs(train), TINY)
        path = tmp_path / f"run{run}" / "m.behaviour.onnx"
        export(model, tokens, path, TINY, {"dev_videos": []})
        digests.append(hashlib.sha256(path.read_bytes()).hexdigest())
    assert digests[0] == digests[1]
    items = [(u.text, t.context(i)) for t in dev[:1] for i, u in enumerate(t.utterances)
             if u.speaker == "counselor"]
    proba = BehaviourModel(path).proba(items)
    assert proba.shape == (len(items), 4) and np.allclose(proba.sum(axis=1), 1.0)
