"""Fit the risk-topic head (``coder.risk_meaning``) on the train part of the trainee-style set.

Every train row counts, counselor questions and client disclosures alike: a row's risk topics are
its positives, every other row (ordinary questions, look-alikes such as "Do you have a plan for
the exam?") a negative. Class weights are balanced because a topic has tens of positives against
about 1,900 negatives. ``cross_validate_risk`` scores rules alone against rules + head by 5-fold
cross-validation, so a change is judged without reading the test part.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold

from simulator.coder.evaluation import score_risk
from simulator.coder.finetune import FinetuneConfig, require_training_extra
from simulator.coder.miti_data import DEFAULT_DATA, TraineeUtterance, read_trainee
from simulator.coder.risk import RISK_TOPICS, conversation_about_risk, detect_risk
from simulator.coder.risk_meaning import RISK_HEAD_PATH, RISK_READER_PATH, RiskHead, find_risk

C = 10.0
THRESHOLD = 0.8
GATE_THRESHOLD = 0.8


def _embed(texts: Sequence[str]) -> np.ndarray:
    from simulator.coder.sentence import sentence_encoder

    return sentence_encoder().embed_alone(list(texts))


def _gate(row: TraineeUtterance) -> bool:
    return conversation_about_risk(row.text, [u.text for u in row.context])


def fit_risk_head(rows: Sequence[TraineeUtterance], c: float = C,
                  threshold: float = THRESHOLD, gate_threshold: float = GATE_THRESHOLD
                  ) -> RiskHead:
    emb = _embed([r.text for r in rows])
    x = np.hstack([emb, np.array([[1.0 if _gate(r) else 0.0] for r in rows])])
    coef, intercept = [], []
    for topic in RISK_TOPICS:
        y = np.array([topic in r.risk for r in rows])
        if y.all() or not y.any():  # a small file without this topic: the head never adds it
            coef.append(np.zeros(x.shape[1]))
            intercept.append(-50.0 if not y.any() else 50.0)
            continue
        m = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(x, y)
        coef.append(m.coef_[0])
        intercept.append(m.intercept_[0])
    any_risk = np.array([bool(r.risk) for r in rows])
    if any_risk.all() or not any_risk.any():
        raise ValueError("the risk head needs rows with and rows without risk topics")
    about = LogisticRegression(C=c, max_iter=3000, class_weight="balanced").fit(emb, any_risk)
    return RiskHead(topics=list(RISK_TOPICS), coef=np.array(coef), intercept=np.array(intercept),
                    about_coef=about.coef_[0], about_intercept=float(about.intercept_[0]),
                    threshold=threshold, gate_threshold=gate_threshold)


def score(rows: Sequence[TraineeUtterance], found: Sequence[Sequence[str]]) -> dict[str, float]:
    """Recall over risk items, topics found that the row does not have, and false alarms on
    non-risk questions (``evaluation.score_risk``, the bench's figures)."""
    s = score_risk(rows, found)
    return {"recall": s["risk_recall"] or 0.0,
            "wrong_topics": sum(t["false_alarms"] for t in s["risk_per_topic"].values()),
            "false_alarms": s["risk_false_alarm_rate"] or 0.0}


def cross_validate_risk(rows: Sequence[TraineeUtterance], c: float = C, folds: int = 5
                        ) -> dict[str, dict[str, float]]:
    """Rules alone against rules + head, each row scored by a head that never saw it."""
    rules = [detect_risk(r.text, [u.text for u in r.context]) for r in rows]
    with_head: list[list[str]] = [[] for _ in rows]
    idx = np.arange(len(rows))
    for train, test in KFold(folds, shuffle=True, random_state=13).split(idx):
        head = fit_risk_head([rows[i] for i in train], c)
        for i in test:
            ctx = rows[i].context
            client_last = ctx[-1].text if ctx and ctx[-1].speaker == "client" else None
            with_head[i] = find_risk(rows[i].text, [u.text for u in ctx], head,
                                     client_last=client_last,
                                     client_line=rows[i].speaker == "client")
    return {"rules": score(rows, rules), "rules + head": score(rows, with_head)}


def train_risk_head(data: str | Path | None = None, out: str | Path | None = None, *,
                    progress: Callable[[str], None] | None = None,
                    transformer: bool = False,
                    reader_config: FinetuneConfig | None = None) -> dict[str, Any]:
    """Cross-validate the head on the train part, fit it on all of it, save, and report; with
    ``transformer``, also fine-tune the reader (``coder.risk_finetune``; the training extra)
    and save it as ``model/risk-reader.onnx`` (``<out>.reader.onnx`` beside a given ``out``)."""
    path = Path(data) if data is not None else DEFAULT_DATA
    rows = [r for r in read_trainee(path) if r.split == "train"]
    if transformer:
        require_training_extra()  # before minutes of cross-validation, not after
    cv = cross_validate_risk(rows)
    if progress:
        progress(f"5-fold CV on the train part: {cv}")
    head = fit_risk_head(rows)
    target = Path(out) if out is not None else RISK_HEAD_PATH
    head.save(target)
    report: dict[str, Any] = {
        "model": str(target), "train_rows": len(rows), "C": C, "threshold": THRESHOLD,
        "gate_threshold": GATE_THRESHOLD, "cv": cv, "size_bytes": target.stat().st_size}
    if transformer:
        from simulator.coder.risk_finetune import finetune_risk

        reader = target.with_suffix(".reader.onnx") if out is not None else RISK_READER_PATH
        started = time.perf_counter()
        finetune_risk(rows, reader, progress=progress, config=reader_config,
                      meta={"train_rows": len(rows)})
        report |= {"reader": str(reader), "reader_bytes": reader.stat().st_size,
                   "reader_fit_seconds": round(time.perf_counter() - started)}
    return report
