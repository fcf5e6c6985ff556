"""Agreement metrics between a coder and reference labels (human coders).

Macro-F1 weighs every class equally, so a coder cannot score well by ignoring the rare ones
(therapist input, sustain talk); Cohen's kappa corrects accuracy for chance agreement and is the
figure MI coding studies report between human coders. Classes are the union of labels seen in
either list unless given, so a class the coder never predicts still counts (with F1 0).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sklearn.metrics import cohen_kappa_score, f1_score

from simulator.coder.annomi import LabelledUtterance
from simulator.coder.labels import CounselorLabels
from simulator.coder.miti_data import TraineeUtterance
from simulator.coder.risk import RISK_TOPICS


def _labels(y_true: Sequence[str], y_pred: Sequence[str],
            labels: Sequence[str] | None) -> list[str]:
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} reference labels but {len(y_pred)} predictions")
    return list(labels) if labels is not None else sorted(set(y_true) | set(y_pred))


def accuracy(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    _labels(y_true, y_pred, None)
    if not y_true:
        return 0.0
    return sum(t == p for t, p in zip(y_true, y_pred, strict=True)) / len(y_true)


def per_class_f1(y_true: Sequence[str], y_pred: Sequence[str],
                 labels: Sequence[str] | None = None) -> dict[str, float]:
    labs = _labels(y_true, y_pred, labels)
    if not y_true:
        return {lab: 0.0 for lab in labs}
    scores = f1_score(list(y_true), list(y_pred), labels=labs, average=None, zero_division=0)
    return {lab: float(s) for lab, s in zip(labs, scores, strict=True)}


def macro_f1(y_true: Sequence[str], y_pred: Sequence[str],
             labels: Sequence[str] | None = None) -> float:
    scores = per_class_f1(y_true, y_pred, labels)
    return sum(scores.values()) / len(scores) if scores else 0.0


def cohen_kappa(y_true: Sequence[str], y_pred: Sequence[str]) -> float:
    _labels(y_true, y_pred, None)
    if not y_true:
        return 0.0
    if len(set(y_true) | set(y_pred)) == 1:
        return 1.0  # perfect agreement on a single class; sklearn would return nan
    return float(cohen_kappa_score(list(y_true), list(y_pred)))


def summary(y_true: Sequence[str], y_pred: Sequence[str],
            labels: Sequence[str] | None = None) -> dict[str, object]:
    """n, accuracy, macro_f1, cohen_kappa and per_class_f1 in one dict (rounded to 4 places)."""
    pcf = per_class_f1(y_true, y_pred, labels)
    return {
        "n": len(y_true),
        "accuracy": round(accuracy(y_true, y_pred), 4),
        "macro_f1": round(sum(pcf.values()) / len(pcf), 4) if pcf else 0.0,
        "cohen_kappa": round(cohen_kappa(y_true, y_pred), 4),
        "per_class_f1": {k: round(v, 4) for k, v in pcf.items()},
    }


BEHAVIOURS = ["question", "reflection", "therapist_input", "other"]
SUBTYPES = {
    "question": ["open", "closed"],
    "reflection": ["simple", "complex"],
    "therapist_input": ["information", "advice", "negotiation", "options"],
}
TALK_TYPES = ["change", "neutral", "sustain"]


def _subtype_scores(refs: Sequence[LabelledUtterance], preds: Sequence[CounselorLabels],
                    behaviour: str) -> dict[str, Any] | None:
    pairs = [(r, p) for r, p in zip(refs, preds, strict=True)
             if r.behaviour != behaviour or r.subtype]
    if not any(r.behaviour == behaviour for r, _ in pairs):
        return None
    y_true = [(r.subtype or "none") if r.behaviour == behaviour else "none" for r, _ in pairs]
    y_pred = [(p.subtype or "none") if p.behaviour == behaviour else "none" for _, p in pairs]
    classes = SUBTYPES[behaviour]
    agree = [(r.subtype, p.subtype) for r, p in pairs
             if r.behaviour == behaviour and p.behaviour == behaviour]
    return {
        "macro_f1": round(macro_f1(y_true, y_pred, labels=classes), 4),
        "n_reference": sum(1 for r, _ in pairs if r.behaviour == behaviour),
        "accuracy_given_behaviour": round(sum(a == b for a, b in agree) / len(agree), 4)
        if agree else None,
        "macro_f1_given_behaviour": round(
            macro_f1([a or "" for a, _ in agree], [b or "none" for _, b in agree],
                     labels=classes), 4) if agree else None,
    }


def score_predictions(refs: Sequence[LabelledUtterance], preds: Sequence[CounselorLabels],
                      client_refs: Sequence[LabelledUtterance] = (),
                      client_preds: Sequence[str] = ()) -> dict[str, Any]:
    """All bench metrics from reference utterances and a coder's labels for them."""
    out = summary([r.behaviour or "" for r in refs], [p.behaviour for p in preds],
                  labels=BEHAVIOURS)
    for behaviour in SUBTYPES:
        scores = _subtype_scores(refs, preds, behaviour)
        if scores is not None:
            out[f"{behaviour}_subtype_macro_f1"] = scores["macro_f1"]
            out[f"{behaviour}_subtype"] = scores
    if client_refs:
        talk = summary([r.talk_type or "" for r in client_refs], list(client_preds),
                       labels=TALK_TYPES)
        out["client_talk_macro_f1"] = talk["macro_f1"]
        out["client_talk"] = talk
    return out


def score_risk(rows: Sequence[TraineeUtterance], found: Sequence[Sequence[str]]
               ) -> dict[str, Any]:
    """Risk topics found against the rows' labels: recall over items, the share of risk rows
    with any topic found, false alarms on non-risk counselor questions, and per topic (``bench
    coder`` prints it; ``train-coder --risk`` cross-validates with it)."""
    per_topic: dict[str, dict[str, int]] = {t: {"n": 0, "found": 0, "false": 0}
                                           for t in RISK_TOPICS}
    for r, f in zip(rows, found, strict=True):
        for t in RISK_TOPICS:
            if t in r.risk:
                per_topic[t]["n"] += 1
                per_topic[t]["found"] += t in f
            elif t in f:
                per_topic[t]["false"] += 1
    n = sum(v["n"] for v in per_topic.values())
    hit = sum(v["found"] for v in per_topic.values())
    any_rows = [(r, f) for r, f in zip(rows, found, strict=True) if r.risk]
    plain_q = [f for r, f in zip(rows, found, strict=True)
               if r.speaker == "counselor" and r.behaviour == "Q" and not r.risk]
    return {
        "risk_recall": round(hit / n, 4) if n else None,
        "risk_items": n,
        "risk_utterance_recall": round(sum(1 for _, f in any_rows if f) / len(any_rows), 4)
        if any_rows else None,
        "risk_false_alarm_rate": round(sum(1 for f in plain_q if f) / len(plain_q), 4)
        if plain_q else None,
        "non_risk_questions": len(plain_q),
        "risk_per_topic": {t: {"recall": round(v["found"] / v["n"], 4) if v["n"] else None,
                               "n": v["n"], "false_alarms": v["false"]}
                           for t, v in per_topic.items()},
    }
