"""Experiment: can a fine-tuned small transformer reach issue #4's coder target on 2 CPU cores?

Not part of the product. The shipped offline coder is TF-IDF + logistic regression
(``simulator/coder/training.py``); this script measures the alternative the issue names, a small
fine-tuned model exported to ONNX, on the same source-video-held-out dev split (seed 13), so the
choice in ``docs/coder.md`` rests on figures anyone can reproduce:

    python3 -m venv .venv-exp
    .venv-exp/bin/pip install -e '.[train]'
    .venv-exp/bin/python experiments/finetune_coder.py --out finetune.json

What it does: fine-tunes all-MiniLM-L6-v2 exactly as ``counselsim train-coder`` does
(``simulator/coder/finetune.py``; ``--layers``, ``--epochs`` and ``--client-only`` change the
recipe), scoring the dev split after every epoch; then averages its probabilities with the shipped
TF-IDF coder's (trained on the train side only) for a range of weights; then measures speed on one
thread for PyTorch fp32, ONNX Runtime fp32 and ONNX Runtime int8 (per tensor and per channel),
and each one's dev scores. The last line printed is one JSON object with every figure.

The ONNX variants here run in length-sorted batches of 32. The app runs one utterance per call
(``coder_transformer.BehaviourModel.proba``), because int8 dynamic quantisation scales activations
per call: its figures come from ``counselsim bench coder`` and differ from the int8 ones here by
a few thousandths.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from simulator.coder.annomi import default_data_dir, read_annomi, split_by_video, training_file
from simulator.coder.evaluation import summary
from simulator.coder.features import counselor_fields
from simulator.coder.finetune import (
    FinetuneConfig,
    Tokens,
    behaviour_pairs,
    export_fp32,
    finetune,
    predict,
)
from simulator.coder.labels import Utterance
from simulator.coder.offline import MODEL_PATH, CoderModel
from simulator.coder.transformer import PairConfig, context_text, encode_pair, pad, softmax

LABELS = list(PairConfig().labels)


def client_only(context: Sequence[Utterance]) -> str:
    """The variant without the counselor's previous turn: the client's last utterance alone."""
    return next((u.text for u in reversed(context) if u.speaker == "client"), "")


def score(y: list[int], proba: np.ndarray) -> dict[str, Any]:
    s = summary([LABELS[i] for i in y], [LABELS[i] for i in proba.argmax(1)], labels=LABELS)
    return {k: s[k] for k in ("accuracy", "macro_f1", "cohen_kappa", "per_class_f1")}


def tfidf_proba(items: list[tuple[str, list[Any]]]) -> np.ndarray:
    """The shipped TF-IDF coder's behaviour probabilities, columns in ``LABELS`` order."""
    tm = CoderModel.load(MODEL_PATH).counselor
    head = tm.heads["behaviour"]
    p = head.proba(tm.features([counselor_fields(text, ctx) for text, ctx in items]))
    return np.stack([p[:, head.classes.index(c)] for c in LABELS], axis=1)


def onnx_rates(model: Any, tokens: Tokens, data: list[tuple[str, str]],
               pair: PairConfig) -> dict[str, Any]:
    """Utterances per second on one thread and the dev logits: PyTorch fp32, ONNX Runtime fp32,
    and ONNX Runtime with int8 weights (dynamic quantisation, per tensor and per channel)."""
    import onnxruntime as ort
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic

    torch.set_num_threads(1)
    started = time.perf_counter()
    predict(model, tokens, data, pair)
    out: dict[str, Any] = {"torch_fp32": {"utt_per_s": round(
        len(data) / (time.perf_counter() - started), 1)}}
    rows = [encode_pair(tokens.tokenizer, c, u, pair, tokens.cls_id, tokens.sep_id)
            for c, u in data]
    order = sorted(range(len(rows)), key=lambda i: len(rows[i][0]))
    with tempfile.TemporaryDirectory() as d:
        fp32 = Path(d) / "coder.onnx"
        export_fp32(model, tokens, fp32, pair)
        variants = {"onnx_fp32": fp32}
        for name, per_channel in (("onnx_int8", False), ("onnx_int8_per_channel", True)):
            variants[name] = Path(d) / f"{name}.onnx"
            quantize_dynamic(str(fp32), str(variants[name]), weight_type=QuantType.QInt8,
                             per_channel=per_channel)
        for name, path in variants.items():
            opts = ort.SessionOptions()
            opts.intra_op_num_threads = opts.inter_op_num_threads = 1
            sess = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
            logits = np.zeros((len(data), len(LABELS)))
            started = time.perf_counter()
            for s in range(0, len(order), 32):
                idx = order[s:s + 32]
                logits[idx] = sess.run(None, pad([rows[i] for i in idx], tokens.pad_id))[0]
            rate = len(data) / (time.perf_counter() - started)
            out[name] = {"utt_per_s": round(rate, 1), "mb": round(path.stat().st_size / 1e6, 1),
                         "logits": logits}
    return out


WEIGHTS = (0.0, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0)


def ensembles(y: list[int], proba: np.ndarray, tfidf: np.ndarray) -> dict[str, Any]:
    """Dev scores of ``w * transformer + (1 - w) * TF-IDF`` for each weight ``w``. The weight is
    read off the dev split, so the best of these is slightly optimistic; all are reported."""
    return {f"{w:.1f}": score(y, w * proba + (1 - w) * tfidf) for w in WEIGHTS}


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    ap.add_argument("--data", default=None, help="AnnoMI -full training CSV")
    ap.add_argument("--layers", type=int, default=6, help="keep the first N encoder layers")
    ap.add_argument("--epochs", type=int, default=4)
    ap.add_argument("--limit", type=int, default=None, help="train on N utterances (smoke test)")
    ap.add_argument("--client-only", action="store_true",
                    help="context = the client's last utterance, without the counselor's turn")
    ap.add_argument("--seed", type=int, default=13,
                    help="training seed (the dev split is always the coder's: seed 13)")
    ap.add_argument("--out", default=None, help="also write the JSON here")
    args = ap.parse_args()

    config = FinetuneConfig(layers=args.layers, epochs=args.epochs, seed=args.seed,
                            limit=args.limit)
    data = read_annomi(args.data or training_file(default_data_dir()))
    train_t, dev_t = split_by_video(data.transcripts)
    context = client_only if args.client_only else context_text
    train, y_train = behaviour_pairs(train_t, context)
    dev, y_dev_text = behaviour_pairs(dev_t, context)
    y_dev = [LABELS.index(b) for b in y_dev_text]
    dev_items = [(u.text, t.context(i)) for t in dev_t for i, u in enumerate(t.utterances)
                 if u.speaker == "counselor" and u.behaviour]
    print(f"train {len(train)} / dev {len(dev)} therapist utterances "
          f"({len({t.video_url for t in dev_t})} dev videos)", flush=True)

    epochs: list[dict[str, Any]] = []

    def scored(epoch: int, model: Any, tokens: Tokens) -> None:
        result = {"epoch": epoch, **score(y_dev, predict(model, tokens, dev, config.pair))}
        epochs.append(result)
        print(json.dumps(result), flush=True)

    model, tokens = finetune(train, y_train, config, lambda m: print(m, flush=True), scored)
    proba = predict(model, tokens, dev, config.pair)
    tfidf = tfidf_proba(dev_items)
    variants: dict[str, Any] = {"torch_fp32": {"dev": score(y_dev, proba),
                                               "ensemble_with_tfidf": ensembles(y_dev, proba,
                                                                                tfidf)}}
    for name, r in onnx_rates(model, tokens, dev, config.pair).items():
        v = variants.setdefault(name, {})
        v["utt_per_s"] = r["utt_per_s"]
        if "logits" in r:
            p = softmax(r["logits"])
            v.update(mb=r["mb"], dev=score(y_dev, p),
                     ensemble_with_tfidf=ensembles(y_dev, p, tfidf))
    for name, v in variants.items():
        best = max(v["ensemble_with_tfidf"].items(), key=lambda kv: kv[1]["macro_f1"])
        print(f"{name}: {v['utt_per_s']} utt/s; alone macro-F1 {v['dev']['macro_f1']} kappa "
              f"{v['dev']['cohen_kappa']}; best ensemble w={best[0]} macro-F1 "
              f"{best[1]['macro_f1']} kappa {best[1]['cohen_kappa']}", flush=True)
    out = {"config": vars(args), "n_train": len(train), "n_dev": len(dev), "epochs": epochs,
           "variants": variants}
    if args.out:
        Path(args.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
