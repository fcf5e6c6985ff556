"""Would a fine-tuned MiniLM help the MITI coder on words written by another hand?

Cross-validation on the train part flatters any model (a fold's confrontations have near
neighbours written by the same author in the other folds), so this holds out one whole earlier
fresh round instead: the round-6 test part (written by an author who never saw the model, now in
train; ``--holdout`` lists its ids from git). Both models are fitted on the other train rows with
their context twins; the holdout is coded by the LR model (the shipped recipe), the fine-tuned
model, and their average, rules applied to each. The round-7 test part is not read.

    .venv/bin/python experiments/miti_finetune_fresh.py [FOLDER]   (needs the train extra: torch)
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from simulator.coder.evaluation import macro_f1
from simulator.coder.finetune import FinetuneConfig, finetune, predict
from simulator.coder.labels import MITI_BEHAVIOURS
from simulator.coder.miti import CLASSES, apply_rules
from simulator.coder.miti_data import DEFAULT_DATA, TraineeUtterance, read_trainee
from simulator.coder.miti_training import MEANING, fit_miti, model_target, with_twins
from simulator.coder.offline import load_offline_coder
from simulator.coder.transformer import PairConfig, context_text

ROUND6_COMMIT = "8a5a79c~2"
"""The last commit where the round-6 test part was still marked ``"split": "test"``."""


def round6_ids() -> set[str]:
    text = subprocess.run(["git", "show", f"{ROUND6_COMMIT}:data/miti-trainee/utterances.jsonl"],
                          capture_output=True, text=True, check=True).stdout
    return {d["id"] for d in map(json.loads, text.splitlines()) if d["split"] == "test"}


def scores(truth: list[str], pred: list[str]) -> dict[str, float]:
    conf = [p == "CONFRONT" for t, p in zip(truth, pred, strict=True) if t == "CONFRONT"]
    mina = [p in {"CONFRONT", "PERSUADE"} for t, p in zip(truth, pred, strict=True)
            if t in {"CONFRONT", "PERSUADE"}]
    return {"macro_f1": round(macro_f1(truth, pred, labels=list(MITI_BEHAVIOURS)), 4),
            "confront_recall": round(sum(conf) / len(conf), 4),
            "non_adherent_recall": round(sum(mina) / len(mina), 4)}


def main() -> None:
    hold = round6_ids()
    rows = [r for r in read_trainee(DEFAULT_DATA) if r.split == "train" and
            r.speaker == "counselor"]
    train = [r for r in rows if r.id not in hold]
    dev = [r for r in rows if r.id in hold]
    base = load_offline_coder()
    fields, twin_rows, twin_fields = with_twins(train, base)
    t = time.perf_counter()
    lr = fit_miti(train, fields, 3.0, MEANING, (twin_rows, twin_fields))
    dev_fields, _, _ = with_twins(dev, base)
    _, p_lr, _ = lr.predict_unweighted(dev_fields)
    p_lr = p_lr[:, [lr.classes.index(c) for c in CLASSES]]
    print(json.dumps({"lr_seconds": round(time.perf_counter() - t, 1)}), flush=True)
    pair = PairConfig(labels=CLASSES, weight=0.5)
    both: list[TraineeUtterance] = [*train, *twin_rows]
    t = time.perf_counter()
    model, tokens = finetune([(context_text(r.context), r.text) for r in both],
                             [model_target(r) for r in both], FinetuneConfig(pair=pair, threads=1))
    p_ft = predict(model, tokens, [(context_text(r.context), r.text) for r in dev], pair)
    print(json.dumps({"ft_seconds": round(time.perf_counter() - t, 1)}), flush=True)
    truth = [r.behaviour or "NC" for r in dev]
    if len(sys.argv) > 1:  # a folder: keep both models' probabilities to try combinations
        np.save(Path(sys.argv[1]) / "p_lr.npy", p_lr)
        np.save(Path(sys.argv[1]) / "p_ft.npy", p_ft)
    for name, p in (("lr", p_lr), ("ft", p_ft), ("avg", (p_lr + p_ft) / 2),
                    ("avg_ft_0.33", p_lr * 0.67 + p_ft * 0.33)):
        pred = [apply_rules(CLASSES[int(k)], r.text, r.context, ())
                for k, r in zip(np.argmax(p, axis=1), dev, strict=True)]
        print(json.dumps({"variant": name, "holdout": "round 6", "n": len(dev),
                          **scores(truth, pred)}), flush=True)


if __name__ == "__main__":
    main()
