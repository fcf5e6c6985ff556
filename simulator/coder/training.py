"""Training the offline coder from the AnnoMI training portion, deterministically.

``counselsim train-coder`` calls ``train_coder``: read the -full file (it has the subtypes), split
the transcripts by source video into train and dev (seeded), fit on train, report dev metrics, and
save the model trained on the train split. The shipped model is that model, so ``bench coder
--dev-split`` on the training file gives honest figures; the dev videos are recorded in the model.

The TF-IDF model is deterministic: a sorted vocabulary, lbfgs logistic regression (no random
state involved), and a split that depends only on the video URLs and the seed. The transformer is
seeded and runs with a fixed thread count (``coder_finetune``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from simulator.coder.annomi import Transcript, read_annomi, split_by_video, training_file
from simulator.coder.evaluation import macro_f1, score_predictions, summary
from simulator.coder.features import Block, client_fields, counselor_fields, fit_blocks
from simulator.coder.finetune import FinetuneConfig
from simulator.coder.offline import (
    MODEL_PATH,
    SUBTYPE_HEADS,
    CoderModel,
    LinearHead,
    OfflineCoder,
    TextModel,
    file_sha256,
)
from simulator.coder.transformer import BehaviourModel, behaviour_path, tokenizer_path

SEED = 13
DEV_FRACTION = 0.2


def default_counselor_blocks() -> list[Block]:
    return [
        Block("text", "word", (1, 3), min_df=2, weight=1.0),
        Block("text", "char_wb", (2, 5), min_df=2, weight=1.0),
        Block("client", "word", (1, 2), min_df=2, weight=0.5),
        Block("prev", "word", (1, 2), min_df=2, weight=0.3),
        Block("meta", "word", (1, 1), min_df=1, weight=0.5),
    ]


def default_client_blocks() -> list[Block]:
    return [
        Block("text", "word", (1, 3), min_df=2, weight=1.0),
        Block("text", "char_wb", (2, 5), min_df=2, weight=1.0),
        Block("prev", "word", (1, 2), min_df=2, weight=0.4),
        Block("meta", "word", (1, 1), min_df=1, weight=0.5),
    ]


@dataclass
class TrainConfig:
    counselor_blocks: list[Block] = field(default_factory=default_counselor_blocks)
    client_blocks: list[Block] = field(default_factory=default_client_blocks)
    c_behaviour: float = 2.0
    c_subtype: float = 4.0
    c_client: float = 2.0
    class_weight: str | None = "balanced"


@dataclass
class Examples:
    counselor_rows: list[dict[str, str]] = field(default_factory=list)
    behaviours: list[str] = field(default_factory=list)
    subtypes: list[str | None] = field(default_factory=list)
    client_rows: list[dict[str, str]] = field(default_factory=list)
    talk_types: list[str] = field(default_factory=list)


def build_examples(transcripts: Sequence[Transcript]) -> Examples:
    ex = Examples()
    for t in transcripts:
        for i, u in enumerate(t.utterances):
            if u.speaker == "counselor" and u.behaviour:
                ex.counselor_rows.append(counselor_fields(u.text, t.context(i)))
                ex.behaviours.append(u.behaviour)
                ex.subtypes.append(u.subtype)
            elif u.speaker == "client" and u.talk_type:
                ex.client_rows.append(client_fields(u.text, t.context(i)))
                ex.talk_types.append(u.talk_type)
    return ex


def _fit_head(x: Any, y: Sequence[str], c: float, class_weight: str | None) -> LinearHead:
    clf = LogisticRegression(C=c, max_iter=3000, class_weight=class_weight)
    clf.fit(x, list(y))
    return LinearHead(classes=[str(k) for k in clf.classes_], coef=clf.coef_.astype(np.float32),
                      intercept=clf.intercept_.astype(np.float32))


def fit_model(transcripts: Sequence[Transcript], config: TrainConfig | None = None,
              meta: dict[str, Any] | None = None) -> CoderModel:
    config = config or TrainConfig()
    ex = build_examples(transcripts)
    if not ex.behaviours:
        raise ValueError("no labelled counselor utterances to train on")
    blocks = [Block(b.field, b.analyzer, b.ngram, b.min_df, b.weight, b.max_features)
              for b in config.counselor_blocks]
    x = fit_blocks(blocks, ex.counselor_rows)
    counselor = TextModel(blocks=blocks)
    counselor.heads["behaviour"] = _fit_head(x, ex.behaviours, config.c_behaviour,
                                             config.class_weight)
    for behaviour, head_name in SUBTYPE_HEADS.items():
        rows = [i for i, (b, s) in enumerate(zip(ex.behaviours, ex.subtypes, strict=True))
                if b == behaviour and s]
        labels = [ex.subtypes[i] or "" for i in rows]
        if len(set(labels)) >= 2:
            counselor.heads[head_name] = _fit_head(x[rows], labels, config.c_subtype,
                                                   config.class_weight)
    client = None
    if len(set(ex.talk_types)) >= 2:
        cblocks = [Block(b.field, b.analyzer, b.ngram, b.min_df, b.weight, b.max_features)
                   for b in config.client_blocks]
        xc = fit_blocks(cblocks, ex.client_rows)
        client = TextModel(blocks=cblocks)
        client.heads["talk_type"] = _fit_head(xc, ex.talk_types, config.c_client,
                                              config.class_weight)
    return CoderModel(counselor=counselor, client=client, meta=dict(meta or {}))


def evaluate_offline(coder: OfflineCoder, transcripts: Sequence[Transcript]) -> dict[str, Any]:
    """Dev-split metrics of an offline coder: behaviour, subtypes and client talk, scored as
    ``bench coder`` scores them (``evaluation.score_predictions``)."""
    ex_items = []
    refs = []
    client_items = []
    client_refs = []
    for t in transcripts:
        for i, u in enumerate(t.utterances):
            if u.speaker == "counselor" and u.behaviour:
                ex_items.append((u.text, t.context(i)))
                refs.append(u)
            elif u.speaker == "client" and u.talk_type:
                client_items.append((u.text, t.context(i)))
                client_refs.append(u)
    preds = coder.code_counselor_batch(ex_items)
    cpreds = coder.code_client_batch(client_items)
    return score_predictions(refs, preds, client_refs, [c.talk_type for c in cpreds])


def train_coder(data_dir: str | Path, out: str | Path | None = None, *,
                config: TrainConfig | None = None, seed: int = SEED,
                dev_fraction: float = DEV_FRACTION, transformer: bool = True,
                finetune_config: FinetuneConfig | None = None,
                progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Train on the train split, score the dev split, save the model(s); return the report.

    With ``transformer`` (the default; needs the ``train`` extra) the MiniLM behaviour model is
    fine-tuned on the same train split and saved beside the ``.npz`` as ``<name>.behaviour.onnx``
    (its hash recorded in the ``.npz``); the dev figures are then those of the two models
    together, with the TF-IDF model's alone kept beside them. Without it, a behaviour model left
    beside ``out`` by an earlier training is removed, so it cannot be averaged in.
    """
    if transformer:
        from simulator.coder.finetune import require_training_extra

        require_training_extra()  # before minutes of TF-IDF fitting, not after
    path = training_file(data_dir)
    data = read_annomi(path)
    train, dev = split_by_video(data.transcripts, dev_fraction, seed)
    started = time.perf_counter()
    meta = {
        "trained_on": path.name,
        "seed": seed,
        "dev_fraction": dev_fraction,
        "dev_videos": sorted({t.video_url for t in dev}),
        "train_videos": sorted({t.video_url for t in train}),
        "split": _split_sizes(train, dev),
        "citation": "Wu et al., Anno-MI: A Dataset of Expert-Annotated Counselling Dialogues, "
                    "ICASSP 2022",
    }
    model = fit_model(train, config, meta)
    fit_s = time.perf_counter() - started
    out_path = Path(out) if out is not None else MODEL_PATH
    tfidf_dev = evaluate_offline(OfflineCoder(model), dev)
    model.meta["dev_metrics_tfidf"] = tfidf_dev
    dev_metrics = tfidf_dev
    onnx_path = behaviour_path(out_path)
    removed: list[str] = []
    if transformer:
        from simulator.coder.finetune import behaviour_pairs, export, finetune

        fc = finetune_config or FinetuneConfig(seed=seed)
        started = time.perf_counter()
        net, tokens = finetune(*behaviour_pairs(train), fc, progress)
        export(net, tokens, onnx_path, fc, {k: meta[k] for k in ("trained_on", "seed",
                                                                  "dev_videos", "citation")})
        fit_s += time.perf_counter() - started
        model.meta["behaviour_sha256"] = file_sha256(onnx_path)
        both = OfflineCoder(model, behaviour=BehaviourModel(onnx_path))
        dev_metrics = evaluate_offline(both, dev)
    else:  # a behaviour model left from an earlier training no longer belongs to this one
        for stale in (onnx_path, tokenizer_path(onnx_path)):
            if stale.exists():
                stale.unlink()
                removed.append(str(stale))
    model.meta["dev_metrics"] = dev_metrics
    model.save(out_path)
    report = {"model": str(out_path), "size_bytes": out_path.stat().st_size,
              "fit_seconds": round(fit_s, 1), "split": meta["split"], "dev": dev_metrics,
              "dev_tfidf_only": tfidf_dev}
    if transformer:
        report["behaviour_model"] = str(onnx_path)
        report["behaviour_model_bytes"] = onnx_path.stat().st_size
    if removed:
        report["removed"] = removed
    return report


def _split_sizes(train: Sequence[Transcript], dev: Sequence[Transcript]) -> dict[str, Any]:
    def sizes(ts: Sequence[Transcript]) -> dict[str, int]:
        return {"videos": len({t.video_url for t in ts}), "transcripts": len(ts),
                "counselor_utterances": sum(1 for t in ts for u in t.utterances
                                            if u.speaker == "counselor"),
                "client_utterances": sum(1 for t in ts for u in t.utterances
                                         if u.speaker == "client")}
    return {"train": sizes(train), "dev": sizes(dev)}


__all__ = ["TrainConfig", "build_examples", "evaluate_offline", "fit_model", "macro_f1",
           "summary", "train_coder"]
