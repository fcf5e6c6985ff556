"""Option (ii) for the MITI coder's model of meaning: fine-tune all-MiniLM-L6-v2 on the train part
(11 classes, the utterance with the end of its context) and compare, by the same 5-fold
cross-validation as ``miti_meaning.py`` (train part only), with the shipped recipe (logistic
regression over words, cues and frozen sentence embeddings), alone and averaged.

    .venv/bin/python experiments/miti_finetune_cv.py > miti_finetune_cv.json   (needs torch)
"""

from __future__ import annotations

import json
import time

import numpy as np
from sklearn.model_selection import StratifiedKFold

from simulator.coder.evaluation import macro_f1
from simulator.coder.finetune import FinetuneConfig, finetune, predict
from simulator.coder.labels import MITI_BEHAVIOURS
from simulator.coder.miti import CLASSES, apply_rules
from simulator.coder.miti_data import DEFAULT_DATA, read_trainee
from simulator.coder.miti_training import MEANING, fit_miti, model_target, training_rows
from simulator.coder.offline import load_offline_coder
from simulator.coder.transformer import PairConfig, context_text


def main() -> None:
    rows = [r for r in read_trainee(DEFAULT_DATA) if r.split == "train" and
            r.speaker == "counselor"]
    fields = training_rows(rows, load_offline_coder())
    y = [r.behaviour or "NC" for r in rows]
    pair = PairConfig(labels=CLASSES, weight=0.5)
    pairs = [(context_text(r.context), r.text) for r in rows]
    truth: list[str] = []
    preds: dict[str, list[str]] = {"lr": [], "ft": [], "avg": []}

    def rule(codes: np.ndarray, idx: list[int], classes: list[str]) -> list[str]:
        return [apply_rules(classes[int(k)], rows[i].text, rows[i].context, ())
                for k, i in zip(codes, idx, strict=True)]

    for fold, (tr, te) in enumerate(StratifiedKFold(5, shuffle=True, random_state=13)
                                    .split(rows, y)):
        t = time.perf_counter()
        tr, te = list(tr), list(te)
        lr = fit_miti([rows[i] for i in tr], [fields[i] for i in tr], 30.0, MEANING)
        _, p_lr, _ = lr.predict([fields[i] for i in te])
        order = [lr.classes.index(c) for c in CLASSES]
        p_lr = p_lr[:, order]
        model, tokens = finetune([pairs[i] for i in tr], [model_target(rows[i]) for i in tr],
                                 FinetuneConfig(pair=pair, threads=2))
        p_ft = predict(model, tokens, [pairs[i] for i in te], pair)
        truth += [y[i] for i in te]
        for name, p in (("lr", p_lr), ("ft", p_ft), ("avg", (p_lr + p_ft) / 2)):
            preds[name] += rule(p.argmax(axis=1), te, list(CLASSES))
        print(json.dumps({"fold": fold, "seconds": round(time.perf_counter() - t, 1)}),
              flush=True)
    for name, p in preds.items():
        conf = [q == "CONFRONT" for t, q in zip(truth, p, strict=True) if t == "CONFRONT"]
        mina = [q in {"CONFRONT", "PERSUADE"} for t, q in zip(truth, p, strict=True)
                if t in {"CONFRONT", "PERSUADE"}]
        print(json.dumps({"variant": name, "cv_macro_f1": round(macro_f1(
            truth, p, labels=list(MITI_BEHAVIOURS)), 4),
            "confront_recall": round(sum(conf) / len(conf), 4),
            "non_adherent_recall": round(sum(mina) / len(mina), 4)}), flush=True)


if __name__ == "__main__":
    main()
