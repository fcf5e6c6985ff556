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
from simulator.coder.evaluation import (
    score_predictions,
)
from simulator.coder.labels import ClientLabels, Coder, CounselorLabels, Utterance

BATCH = 256


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


def run_offline_dev_bench(data: str | Path,
                          progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The shipped offline coder on the dev transcripts recorded in its model file: what
    ``counselsim bench coder --data FILE --dev-split`` prints, for ``bench all``."""
    from simulator.coder.offline import load_offline_coder

    coder = load_offline_coder()
    meta = coder.model.meta
    result = run_bench(data, coder, dev_split=True, dev_videos=meta.get("dev_videos", []),
                       train_videos=meta.get("train_videos", []), progress=progress)
    result.setdefault("includes_training_data", False)
    return result
