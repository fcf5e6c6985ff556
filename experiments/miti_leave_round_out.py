"""How much weight should the MITI model's MI-non-adherent codes get, judged on words written by
another hand?

Each earlier fresh test part (rounds 4, 5 and 6, now in train) was written by an author who had
not seen the model it was scored on. Holding one whole round out, fitting the shipped recipe on
the rest of the train part, and coding the round gives a fresh-author figure without touching the
current test part. Cross-validation cannot give it: a fold's confrontations have near neighbours
by the same author in the other folds, so there the model is confident; on a new author's words
its Confront and Persuade probabilities come out too low (round 6: Confront precision 0.89,
recall 0.53). This script multiplies the two codes' probabilities by a grid of weights and prints
macro-F1 and MI-non-adherent recall per held-out round and on average.

    .venv/bin/python experiments/miti_leave_round_out.py
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys

import numpy as np

from simulator.coder.evaluation import macro_f1
from simulator.coder.labels import MITI_BEHAVIOURS
from simulator.coder.miti import CLASSES, apply_rules
from simulator.coder.miti_data import DEFAULT_DATA, read_trainee
from simulator.coder.miti_training import MEANING, fit_miti, with_twins
from simulator.coder.offline import load_offline_coder

ROUNDS = {"round 4": "b8e98a4", "round 5": "57ae172", "round 6": "1849a55"}
"""The commit where each round's test part had just been scored (still ``"split": "test"``)."""
WEIGHTS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0)


def round_ids(commit: str) -> set[str]:
    text = subprocess.run(["git", "show", f"{commit}:data/miti-trainee/utterances.jsonl"],
                          capture_output=True, text=True, check=True).stdout
    return {d["id"] for d in map(json.loads, text.splitlines()) if d["split"] == "test"}


def main() -> None:
    rows = [r for r in read_trainee(DEFAULT_DATA) if r.split == "train" and
            r.speaker == "counselor"]
    base = load_offline_coder()
    results: dict[tuple[float, float], dict[str, tuple[float, float]]] = {}
    for name, commit in ROUNDS.items():
        hold = round_ids(commit)
        train = [r for r in rows if r.id not in hold]
        dev = [r for r in rows if r.id in hold]
        fields, twin_rows, twin_fields = with_twins(train, base)
        model = fit_miti(train, fields, 3.0, MEANING, (twin_rows, twin_fields))
        dev_fields, _, _ = with_twins(dev, base)
        _, p, _ = model.predict_unweighted(dev_fields)
        p = p[:, [model.classes.index(c) for c in CLASSES]]
        truth = [r.behaviour or "NC" for r in dev]
        for wc, wp in itertools.product(WEIGHTS, WEIGHTS):
            q = p.copy()
            q[:, CLASSES.index("CONFRONT")] *= wc
            q[:, CLASSES.index("PERSUADE")] *= wp
            pred = [apply_rules(CLASSES[int(k)], r.text, r.context, ())
                    for k, r in zip(q.argmax(axis=1), dev, strict=True)]
            mina = [p_ in {"CONFRONT", "PERSUADE"} for t, p_ in zip(truth, pred, strict=True)
                    if t in {"CONFRONT", "PERSUADE"}]
            results.setdefault((wc, wp), {})[name] = (
                round(macro_f1(truth, pred, labels=list(MITI_BEHAVIOURS)), 4),
                round(sum(mina) / len(mina), 4))
        print(f"{name}: {len(dev)} held out, fitted on {len(train)}", file=sys.stderr)
    for (wc, wp), per in results.items():
        print(json.dumps({"confront_weight": wc, "persuade_weight": wp,
                          "mean_macro_f1": round(float(np.mean([v[0] for v in per.values()])), 4),
                          "mean_non_adherent_recall": round(float(np.mean(
                              [v[1] for v in per.values()])), 4),
                          "per_round": per}))


if __name__ == "__main__":
    main()
