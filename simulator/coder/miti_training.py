"""Training the MITI utterance model (``coder.miti``) on the train part of the labelled set.

Only ``split == "train"`` rows are read for fitting and for choosing the regularisation (5-fold
cross-validation on the train part); the test part is scored once, by ``bench coder``. The AnnoMI
coder's labels for each utterance are computed with the shipped offline coder (it is not
retrained). Deterministic: same data and base coder, same arrays.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from simulator.coder.evaluation import macro_f1
from simulator.coder.features import fit_blocks
from simulator.coder.labels import MITI_BEHAVIOURS, Coder, Utterance
from simulator.coder.miti import (
    CLASSES,
    MITI_MODEL_PATH,
    MitiModel,
    apply_rules,
    embedding_block,
    miti_blocks,
    miti_fields,
    permission_granted,
    utterance_labeller,
)
from simulator.coder.miti_data import DEFAULT_DATA, TraineeUtterance, read_trainee
from simulator.coder.offline import CoderModel, LinearHead, TextModel
from simulator.coder.transformer import behaviour_path, tokenizer_path

C_GRID = (3.0, 10.0, 30.0, 100.0)
MEANING: dict[str, Any] = {"fields": ["text"], "weight": 2.0}
"""The embedding the shipped model reads: the utterance's meaning, weighted 2 against the TF-IDF
blocks (cross-validated in docs/coder.md, round 6)."""
GRID: tuple[tuple[float, dict[str, Any] | None], ...] = tuple(
    (c, emb) for emb in (None, {"fields": ["text"], "weight": 1.0}, MEANING,
                         {"fields": ["text"], "weight": 3.0}) for c in C_GRID)
"""Chosen by 5-fold cross-validation on the train part (``train_miti``)."""


def _head(x: Any, y: Sequence[str], c: float) -> LinearHead:
    clf = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
    clf.fit(x, list(y))
    return LinearHead(classes=[str(k) for k in clf.classes_], coef=clf.coef_.astype(np.float32),
                      intercept=clf.intercept_.astype(np.float32))


def training_rows(rows: Sequence[TraineeUtterance], base: Coder) -> list[dict[str, str]]:
    annomi = utterance_labeller(base).code_counselor_batch([(r.text, r.context) for r in rows])
    return [miti_fields(r.text, r.context, (), a) for r, a in zip(rows, annomi, strict=True)]


def client_lines(rows: Sequence[TraineeUtterance]) -> list[str]:
    """Every distinct client utterance in the rows' contexts, in file order."""
    seen: dict[str, None] = {}
    for r in rows:
        for u in r.context:
            if u.speaker == "client" and u.text.strip():
                seen.setdefault(u.text.strip(), None)
    return list(seen)


def context_twin(row: TraineeUtterance, pool: Sequence[str]) -> TraineeUtterance:
    """The same utterance in the other context state: with no context when it has one, after a
    client line from ``pool`` when it has none (the line picked by a hash of the row id, so the
    set is the same on every run).

    Why: the set was written with the client's words before reflections and confrontations but
    mostly none before affirmations, autonomy, information and collaboration. A model trained on
    it learns "the client just spoke, so a reflection", while in a live session the client has
    always just spoken: "You've tried hard to keep things going" was coded as a complex
    reflection after any client line. Training on both states takes that cue away; the label is
    the utterance's own (``model_target`` of the original, the permission rule reading context
    afterwards)."""
    if row.context:
        return row.model_copy(update={"context": []})
    digest = int(hashlib.sha256(row.id.encode()).hexdigest()[:8], 16)
    line = pool[digest % len(pool)]
    return row.model_copy(update={"context": [Utterance(speaker="client", text=line)]})


def with_twins(rows: Sequence[TraineeUtterance], base: Coder
               ) -> tuple[list[dict[str, str]], list[TraineeUtterance], list[dict[str, str]]]:
    """Fields for ``rows``, and their context twins with fields (same order as ``rows``)."""
    pool = client_lines(rows)
    twins = [context_twin(r, pool) for r in rows]
    both = training_rows([*rows, *twins], base)
    return both[:len(rows)], twins, both[len(rows):]


def model_target(row: TraineeUtterance) -> str:
    """The code the model learns for a row: its label, except that advice labelled Persuade with
    permission only because of the context (the client asked or granted permission) is learnt as
    Persuade. The model cannot see the context (``miti_fields``), so it learns what the utterance
    says; ``apply_rules`` then adds the permission from the context."""
    code = row.behaviour or "NC"
    if code == "PERSUADE_WITH" and permission_granted(row.context, ()):
        return "PERSUADE"
    return code


def fit_miti(rows: Sequence[TraineeUtterance], fields: Sequence[dict[str, str]],
             c: float, embedding: dict[str, Any] | None = None,
             twins: tuple[Sequence[TraineeUtterance], Sequence[dict[str, str]]] | None = None
             ) -> MitiModel:
    """Fit the heads on TF-IDF blocks of ``fields`` and, when ``embedding`` is given
    (``{"fields": [...], "weight": w}``), the sentence encoder's embeddings of those fields.
    ``twins`` (``context_twin`` of each row, with their fields) are learnt with the label of
    the row they copy."""
    if twins is not None:
        targets = [model_target(r) for r in rows] * 2
        qtypes = [r.question_type if r.behaviour == "Q" else None for r in rows] * 2
        rows, fields = [*rows, *twins[0]], [*fields, *twins[1]]
    else:
        targets = [model_target(r) for r in rows]
        qtypes = [r.question_type if r.behaviour == "Q" else None for r in rows]
    blocks = miti_blocks()
    x = fit_blocks(blocks, fields)
    meta: dict[str, Any] = {}
    if embedding is not None:
        from simulator.coder.offline import file_sha256
        from simulator.coder.sentence import MODEL_FILE

        meta["embedding"] = {**embedding, "encoder": MODEL_FILE.name,
                             "encoder_sha256": _sha(MODEL_FILE, file_sha256)}
        x = sparse.hstack([x, embedding_block(fields, embedding)], format="csr")
    heads = {"behaviour": _head(x, targets, c)}
    q = [i for i, qt in enumerate(qtypes) if qt]
    if len({qtypes[i] for i in q}) > 1:  # a small file may hold open questions only
        heads["question_type"] = _head(x[q], [qtypes[i] or "" for i in q], c)
    return MitiModel(CoderModel(counselor=TextModel(blocks=blocks, heads=heads), client=None,
                                meta=meta))


_SHA: dict[str, str] = {}


def _sha(path: Path, digest: Callable[[Path], str]) -> str:
    """The encoder's hash, once per process (cross-validation fits many models)."""
    if str(path) not in _SHA:
        _SHA[str(path)] = digest(path)
    return _SHA[str(path)]


def _predict(model: MitiModel, rows: Sequence[TraineeUtterance],
             fields: Sequence[dict[str, str]]) -> list[str]:
    codes, _, _ = model.predict(fields)
    return [apply_rules(c, r.text, r.context, ()) for c, r in zip(codes, rows, strict=True)]


def cross_validate(rows: Sequence[TraineeUtterance], fields: Sequence[dict[str, str]],
                   c: float, folds: int = 5, embedding: dict[str, Any] | None = None,
                   detail: dict[str, float] | None = None,
                   twins: tuple[Sequence[TraineeUtterance], Sequence[dict[str, str]]] | None
                   = None) -> float:
    """Macro-F1 over the ten behaviours, 5-fold stratified, on the rows given (train part).
    ``detail``, when given, receives the cross-validated Confront and MI-non-adherent recall.
    With ``twins``, a fold trains on its rows and their twins and is scored on the held-out
    rows and their twins: a row and its twin are never on both sides."""
    y = [r.behaviour or "NC" for r in rows]
    truth: list[str] = []
    pred: list[str] = []
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=13).split(rows, y):
        fold_twins = None if twins is None else ([twins[0][i] for i in tr],
                                                 [twins[1][i] for i in tr])
        m = fit_miti([rows[i] for i in tr], [fields[i] for i in tr], c, embedding, fold_twins)
        pred += _predict(m, [rows[i] for i in te], [fields[i] for i in te])
        truth += [y[i] for i in te]
        if twins is not None:
            pred += _predict(m, [twins[0][i] for i in te], [twins[1][i] for i in te])
            truth += [y[i] for i in te]
    if detail is not None:
        for name, codes in (("confront_recall", {"CONFRONT"}),
                            ("non_adherent_recall", {"CONFRONT", "PERSUADE"})):
            hits = [p in codes for t, p in zip(truth, pred, strict=True) if t in codes]
            detail[name] = round(sum(hits) / len(hits), 4) if hits else 0.0
    return macro_f1(truth, pred, labels=list(MITI_BEHAVIOURS))


def _name(c: float, embedding: dict[str, Any] | None) -> str:
    if embedding is None:
        return f"C={c:g}, words and cues"
    return f"C={c:g}, + meaning of {'+'.join(embedding['fields'])} x{embedding['weight']:g}"


def train_miti(data: str | Path | None = None, out: str | Path | None = None, *,
               base: Coder | None = None, grid: Sequence[tuple[float, dict[str, Any] | None]]
               | None = None, progress: Callable[[str], None] | None = None,
               transformer: bool = True, finetune_config: Any = None) -> dict[str, Any]:
    """Fit on the train part, choose C and the embedding by cross-validation there, fine-tune
    the MiniLM beside it (``transformer``; needs the training extra), save, and report. The
    cross-validation is of the LR model: fine-tuning five more times would take an hour here;
    the fine-tuned model was judged on a held-out earlier round instead (``coder.miti_finetune``).
    """
    if transformer:
        from simulator.coder.finetune import require_training_extra

        require_training_extra()
    if base is None:
        from simulator.coder.offline import load_offline_coder

        base = load_offline_coder()
    path = Path(data) if data is not None else DEFAULT_DATA
    rows = [r for r in read_trainee(path) if r.split == "train" and r.speaker == "counselor"]
    fields, twin_rows, twin_fields = with_twins(rows, base)
    twins = (twin_rows, twin_fields)
    grid = list(grid if grid is not None else GRID)
    scores: dict[str, float] = {}
    details: dict[str, dict[str, float]] = {}
    for c, emb in grid:
        detail: dict[str, float] = {}
        key = _name(c, emb)
        scores[key] = round(cross_validate(rows, fields, c, embedding=emb, detail=detail,
                                           twins=twins), 4)
        details[key] = detail
        if progress:
            progress(f"{key}: cross-validated macro-F1 {scores[key]:.3f}, Confront recall "
                     f"{detail['confront_recall']:.3f}, MI-non-adherent recall "
                     f"{detail['non_adherent_recall']:.3f}")
    best_c, best_emb = max(grid, key=lambda g: (scores[_name(*g)], -g[0]))
    model = fit_miti(rows, fields, best_c, best_emb, twins)
    model.model.meta |= {"data": path.name, "train_rows": len(rows), "C": best_c,
                         "context_twins": True,
                         "cv_macro_f1": scores, "cv_recall": details, "classes": list(CLASSES)}
    target = Path(out) if out is not None else MITI_MODEL_PATH
    onnx = behaviour_path(target)
    if transformer:
        from simulator.coder.miti_finetune import finetune_miti
        from simulator.coder.offline import file_sha256

        both = [*rows, *twin_rows]
        finetune_miti(both, [model_target(r) for r in both], onnx, progress=progress,
                      meta={"train_rows": len(rows)}, config=finetune_config)
        model.model.meta["behaviour_sha256"] = file_sha256(onnx)
    elif onnx.exists():
        onnx.unlink()  # a fine-tuned model from another training must not be averaged in
        tokenizer_path(onnx).unlink(missing_ok=True)
    model.model.save(target)
    return {"model": str(target), "train_rows": len(rows), "chosen": _name(best_c, best_emb),
            "fine_tuned": str(onnx) if transformer else None,
            "C": best_c, "cv_macro_f1": scores, "cv_recall": details,
            "size_bytes": target.stat().st_size}
