"""Does a learned risk-topic head over meaning (sentence embeddings of the utterance and of the
client's last words) find risk items the phrasing rules miss, without false alarms?

5-fold cross-validation on the train part of data/miti-trainee/utterances.jsonl only (the test
part stays unread). Prints risk recall and false alarms on non-risk questions for the rules alone
and for rules + head at a few thresholds, with and without the suicide gate.

    python experiments/risk_head_cv.py [CLIENT_WEIGHT [C]]

This explored the thresholds, C and the client's words (which added nothing: the head reads the
utterance alone); ``counselsim train-coder --risk`` runs the shipped recipe's cross-validation.
"""

from __future__ import annotations

import sys

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from simulator.coder.miti_data import DEFAULT_DATA, read_trainee
from simulator.coder.risk import RISK_TOPICS, about_risk, detect_risk
from simulator.coder.sentence import sentence_encoder


def main() -> None:
    rows = [r for r in read_trainee(DEFAULT_DATA) if r.split == "train"]
    enc = sentence_encoder()
    texts = [r.text for r in rows]
    client = [next((u.text for u in reversed(r.context) if u.speaker == "client"), "")
              for r in rows]
    u = enc.embed_alone(texts)
    c = np.stack([enc.embed_alone([t])[0] if t else np.zeros(384, np.float32) for t in client])
    gate = np.array([about_risk(r.text) or any(about_risk(x.text) for x in r.context[-6:])
                     for r in rows])
    weight = float(sys.argv[1]) if len(sys.argv) > 1 else 1.0
    x = np.hstack([u, c * weight, gate[:, None] * 1.0])
    topics = list(RISK_TOPICS)
    y = np.array([[t in r.risk for t in topics] for r in rows])
    rules = [detect_risk(r.text, [x.text for x in r.context]) for r in rows]
    probs = np.zeros_like(y, dtype=float)
    reg = float(sys.argv[2]) if len(sys.argv) > 2 else 10.0
    for tr, te in KFold(5, shuffle=True, random_state=13).split(x):
        for j in range(len(topics)):
            m = LogisticRegression(C=reg, max_iter=2000, class_weight="balanced")
            m.fit(x[tr], y[tr, j])
            probs[te, j] = m.predict_proba(x[te])[:, 1]
    plain_q = [i for i, r in enumerate(rows)
               if r.speaker == "counselor" and r.behaviour == "Q" and not r.risk]
    nonrisk = [i for i, r in enumerate(rows) if not r.risk]
    n_items = int(y.sum())

    def report(name: str, found: list[set[str]]) -> None:
        hit = sum(1 for i in range(len(rows)) for j, t in enumerate(topics)
                  if y[i, j] and t in found[i])
        wrong = sum(1 for i in range(len(rows)) for j, t in enumerate(topics)
                    if not y[i, j] and t in found[i])
        fa_q = sum(1 for i in plain_q if found[i]) / len(plain_q)
        fa_all = sum(1 for i in nonrisk if found[i]) / len(nonrisk)
        print(f"{name:34s} recall {hit / n_items:.3f}  wrong-topic {wrong:3d}  "
              f"false alarms: questions {fa_q:.3f} (n={len(plain_q)}) all non-risk {fa_all:.3f}")

    report("rules", [set(f) for f in rules])
    for thr in (0.5, 0.7, 0.8, 0.9):
        for gated in (True, False):
            found = [set(f) | ({t for j, t in enumerate(topics) if probs[i, j] >= thr}
                               if (gate[i] or not gated) else set())
                     for i, f in enumerate(rules)]
            report(f"rules + head >= {thr} {'gated' if gated else 'ungated'}", found)


if __name__ == "__main__":
    main()
