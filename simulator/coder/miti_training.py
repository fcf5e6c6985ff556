"""Training the MITI utterance model (``coder.miti``) on the train part of the labelled set.

Only ``split == "train"`` rows are read for fitting and for choosing the regularisation (5-fold
cross-validation on the train part); the test part is scored once, by ``bench coder``. The AnnoMI
coder's labels for each utterance are computed with the shipped offline coder (it is not
retrained). Deterministic: same data and base coder, same arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from simulator.coder.evaluation import macro_f1
from simulator.coder.features import fit_blocks
from simulator.coder.labels import MITI_BEHAVIOURS, Coder
from simulator.coder.miti import (
    CLASSES,
    MITI_MODEL_PATH,
    MitiModel,
    apply_rules,
    miti_blocks,
    miti_fields,
)
from simulator.coder.miti_data import DEFAULT_DATA, TraineeUtterance, read_trainee
from simulator.coder.offline import CoderModel, LinearHead, TextModel

C_GRID = (1.0, 3.0, 10.0, 30.0)


def _head(x: Any, y: Sequence[str], c: float) -> LinearHead:
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
    clf.fit(x, list(y))
    return LinearHead(classes=[str(k) for k in clf.classes_], coef=clf.coef_.astype(np.float32),
                      intercept=clf.intercept_.astype(np.float32))


def training_rows(rows: Sequence[TraineeUtterance], base: Coder) -> list[dict[str, str]]:
    annomi = base.code_counselor_batch([(r.text, r.context) for r in rows])
    return [miti_fields(r.text, r.context, (), a) for r, a in zip(rows, annomi, strict=True)]


def fit_miti(rows: Sequence[TraineeUtterance], fields: Sequence[dict[str, str]],
             c: float) -> MitiModel:
    blocks = miti_blocks()
    x = fit_blocks(blocks, fields)
    heads = {"behaviour": _head(x, [r.behaviour or "NC" for r in rows], c)}
    q = [i for i, r in enumerate(rows) if r.behaviour == "Q" and r.question_type]
    if q:
        heads["question_type"] = _head(x[q], [rows[i].question_type or "" for i in q], c)
    return MitiModel(CoderModel(counselor=TextModel(blocks=blocks, heads=heads), client=None))


def _predict(model: MitiModel, rows: Sequence[TraineeUtterance],
             fields: Sequence[dict[str, str]]) -> list[str]:
    codes, _, _ = model.predict(fields)
    return [apply_rules(c, r.text, r.context, ()) for c, r in zip(codes, rows, strict=True)]


def cross_validate(rows: Sequence[TraineeUtterance], fields: Sequence[dict[str, str]],
                   c: float, folds: int = 5) -> float:
    """Macro-F1 over the ten behaviours, 5-fold stratified, on the rows given (train part)."""
    y = [r.behaviour or "NC" for r in rows]
    truth: list[str] = []
    pred: list[str] = []
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=13).split(rows, y):
        m = fit_miti([rows[i] for i in tr], [fields[i] for i in tr], c)
        pred += _predict(m, [rows[i] for i in te], [fields[i] for i in te])
        truth += [y[i] for i in te]
    return macro_f1(truth, pred, labels=list(MITI_BEHAVIOURS))


def train_miti(data: str | Path | None = None, out: str | Path | None = None, *,
               base: Coder | None = None,
               progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Fit on the train part, choose C by cross-validation there, save, and report."""
    if base is None:
        from simulator.coder.offline import load_offline_coder

        base = load_offline_coder()
    path = Path(data) if data is not None else DEFAULT_DATA
    rows = [r for r in read_trainee(path) if r.split == "train" and r.speaker == "counselor"]
    fields = training_rows(rows, base)
    scores = {}
    for c in C_GRID:
        scores[c] = round(cross_validate(rows, fields, c), 4)
        if progress:
            progress(f"C={c:g}: cross-validated macro-F1 {scores[c]:.3f}")
    best = max(C_GRID, key=lambda c: (scores[c], -c))
    model = fit_miti(rows, fields, best)
    model.model.meta = {"data": path.name, "train_rows": len(rows), "C": best,
                        "cv_macro_f1": scores, "classes": list(CLASSES)}
    target = Path(out) if out is not None else MITI_MODEL_PATH
    model.model.save(target)
    return {"model": str(target), "train_rows": len(rows), "C": best, "cv_macro_f1": scores,
            "size_bytes": target.stat().st_size}


