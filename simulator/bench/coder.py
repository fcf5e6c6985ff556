"""``counselsim bench coder``: how well a coder agrees with AnnoMI's human coders, and how fast.

Every therapist utterance of the file is coded in its transcript context (batched), and compared
with the reference label (the majority over annotators in a -full file). Subtype figures are
end-to-end: over all therapist utterances, each is mapped to its subtype when its behaviour is the
one in question (else "none"), and the macro-F1 is taken over the subtype classes only, so a
reflection coded as a question counts against the reflection subtypes. The conditional figure
(subtype accuracy where coder and reference agree on the behaviour) is reported beside it.

Speed is measured on the therapist utterances alone with BLAS/OpenMP threads limited to one, so
``utterances_per_s`` is a single-core figure.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from simulator.coder.annomi import LabelledUtterance, Transcript, read_annomi
from simulator.coder.evaluation import macro_f1, summary
from simulator.coder.labels import ClientLabels, Coder, CounselorLabels, Utterance

BEHAVIOURS = ["question", "reflection", "therapist_input", "other"]
SUBTYPES = {
    "question": ["open", "closed"],
    "reflection": ["simple", "complex"],
    "therapist_input": ["information", "advice", "negotiation", "options"],
}
TALK_TYPES = ["change", "neutral", "sustain"]
BATCH = 256


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


def _counselor_items(transcripts: Sequence[Transcript]) -> tuple[
        list[tuple[str, list[Utterance]]], list[LabelledUtterance]]:
    items, refs = [], []
    for t in transcripts:
        for i, u in enumerate(t.utterances):
            if u.speaker == "counselor" and u.behaviour:
                items.append((u.text, t.context(i)))
                refs.append(u)
    return items, refs


def _client_items(transcripts: Sequence[Transcript]) -> tuple[
        list[tuple[str, list[Utterance]]], list[LabelledUtterance]]:
    items, refs = [], []
    for t in transcripts:
        for i, u in enumerate(t.utterances):
            if u.speaker == "client" and u.talk_type:
                items.append((u.text, t.context(i)))
                refs.append(u)
    return items, refs


def _code_clients(coder: Coder,
                  items: Sequence[tuple[str, Sequence[Utterance]]]) -> list[ClientLabels]:
    batch = getattr(coder, "code_client_batch", None)
    if callable(batch):
        return list(batch(items))
    return [coder.code_client(text, ctx) for text, ctx in items]


def _single_thread() -> Any:
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def run_bench(data: str | Path, coder: Coder, *, dev_split: bool = False,
              dev_videos: Sequence[str] = (), train_videos: Sequence[str] = (),
              progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Code every therapist (and client) utterance of an AnnoMI-format CSV and score the coder."""
    f = read_annomi(data)
    transcripts = f.transcripts
    if dev_split:
        if not dev_videos:
            raise ValueError("--dev-split needs the offline model's recorded dev videos")
        wanted = set(dev_videos)
        transcripts = [t for t in transcripts if t.video_url in wanted]
        if not transcripts:
            raise ValueError(f"{data}: none of the dev-split videos are in this file")
    items, refs = _counselor_items(transcripts)
    if not items:
        raise ValueError(f"{data}: no labelled therapist utterances")
    preds: list[CounselorLabels] = []
    with _single_thread():
        started = time.perf_counter()
        for i in range(0, len(items), BATCH):
            preds.extend(coder.code_counselor_batch(items[i:i + BATCH]))
            if progress:
                progress(f"coded {len(preds)}/{len(items)} therapist utterances")
        elapsed = time.perf_counter() - started
    citems, crefs = _client_items(transcripts)
    cpreds = [c.talk_type for c in _code_clients(coder, citems)] if citems else []
    result: dict[str, Any] = {
        "coder": coder.name,
        "coder_model": getattr(coder, "description", coder.name),
        "data": str(data),
        "format": f.format,
        "dev_split": dev_split,
        "transcripts": len(transcripts),
    }
    result.update(score_predictions(refs, preds, crefs, cpreds))
    result["utterances_per_s"] = round(len(items) / elapsed, 1) if elapsed > 0 else None
    result["seconds"] = round(elapsed, 3)
    if train_videos:
        train = set(train_videos)
        result["includes_training_data"] = any(t.video_url in train for t in transcripts)
    return result
