"""``counselsim bench coder --data FILE.jsonl``: a MITI 4.2.1 utterance coder against the
trainee-style labelled set (format: ``coder.miti_data``), on its test part by default.

Figures, all from one pass over the chosen split:

- per code precision, recall and F1 for the ten MITI behaviours, and their macro-F1 (NC is
  reported but not in the macro average: it is not a MITI behaviour);
- MI-non-adherent recall: Confront and Persuade utterances coded as either of the two (the
  group the report counts), and per-code recall beside it;
- question type (open or closed) accuracy where reference and coder both say Question;
- risk: recall over every (utterance, topic) the file labels, per topic, and the false-alarm
  rate on Question utterances with no risk label (a question flagged as risk that is not);
- speed: utterances per second on one core (bulk), and for a coder that codes live turns
  (``code_counselor``), the latency of a whole turn of two utterances (two rows of the file
  joined), p50 and p95 in ms, one turn at a time as a session codes them.

Each row is coded as one utterance, in its context, as the file gives it (the file's unit is
the utterance; segmentation is tested separately).

``live_context`` scores the same rows as a live session meets them: in a session the client has
always just spoken, but many rows of the file (affirmations, autonomy, information) have no
context. There, each such row is coded again after a client line taken from the split's own
contexts (``miti_training.context_twin``); rows with a context are unchanged. A coder that
reads "the client just spoke" as "a reflection" scores well as written and badly here.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from simulator.coder.evaluation import score_risk, summary
from simulator.coder.labels import MITI_BEHAVIOURS, Utterance, UtteranceCode
from simulator.coder.miti import MitiCoder, utterance_labeller
from simulator.coder.miti_data import TraineeUtterance, read_trainee
from simulator.coder.risk_meaning import find_risk

NON_ADHERENT = ("CONFRONT", "PERSUADE")


class UtteranceCoder(Protocol):
    name: str

    def code_segments(self, items: Sequence[tuple[str, Sequence[Any], Sequence[str]]]
                      ) -> list[UtteranceCode]: ...


def _prf(tp: int, fp: int, fn: int) -> dict[str, float | int]:
    p = tp / (tp + fp) if tp + fp else 0.0
    r = tp / (tp + fn) if tp + fn else 0.0
    f = 2 * p * r / (p + r) if p + r else 0.0
    return {"precision": round(p, 4), "recall": round(r, 4), "f1": round(f, 4), "n": tp + fn}


def score_behaviours(truth: Sequence[str], pred: Sequence[str]) -> dict[str, Any]:
    per_code = {}
    for code in (*MITI_BEHAVIOURS, "NC"):
        tp = sum(t == code and p == code for t, p in zip(truth, pred, strict=True))
        fp = sum(t != code and p == code for t, p in zip(truth, pred, strict=True))
        fn = sum(t == code and p != code for t, p in zip(truth, pred, strict=True))
        per_code[code] = _prf(tp, fp, fn)
    macro = sum(float(per_code[c]["f1"]) for c in MITI_BEHAVIOURS) / len(MITI_BEHAVIOURS)
    mina = [(t, p) for t, p in zip(truth, pred, strict=True) if t in NON_ADHERENT]
    flagged = sum(1 for t, p in zip(truth, pred, strict=True) if p in NON_ADHERENT)
    caught = sum(1 for _, p in mina if p in NON_ADHERENT)
    agreement = summary(list(truth), list(pred), labels=[*MITI_BEHAVIOURS, "NC"])
    return {
        "macro_f1": round(macro, 4),
        "accuracy": agreement["accuracy"],
        "cohen_kappa": agreement["cohen_kappa"],
        "mi_non_adherent_recall": round(caught / len(mina), 4) if mina else None,
        "mi_non_adherent_precision": round(caught / flagged, 4) if flagged else None,
        "mi_non_adherent_n": len(mina),
        "per_code": per_code,
    }


def _single_thread() -> Any:
    from threadpoolctl import threadpool_limits

    return threadpool_limits(limits=1)


def turn_latency(coder: Any, rows: Sequence[TraineeUtterance], turns: int = 100
                 ) -> dict[str, Any]:
    """p50/p95 ms to code a live two-utterance turn (segmentation included), one core: what a
    live turn codes before the client's reply, the utterance codes and the turn's label from
    the TF-IDF half (``Practice._hear``; the whole label follows once the reply is under way)."""
    live = getattr(coder, "code_counselor", None)
    if isinstance(coder, MitiCoder):
        quick = utterance_labeller(coder.base)

        def live(text: str, context: Sequence[Utterance]) -> Any:
            return coder.annotate([(text, context)], [quick.code_counselor(text, context)])[0]
    if not callable(live) or len(rows) < 2:
        return {}
    pairs = [(f"{a.text} {b.text}", a.context) for a, b in zip(rows, rows[1:], strict=False)]
    pairs = pairs[:turns]
    times = []
    with _single_thread():
        live(*pairs[0])  # warm-up: loads and first-call costs are not a turn's
        forget = getattr(coder, "forget", None)
        for text, context in pairs:
            if callable(forget):
                forget()  # cached embeddings of these texts (from the bulk run) do not count
            started = time.perf_counter()
            live(text, context)
            times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return {"turn_ms_p50": round(times[len(times) // 2], 1),
            "turn_ms_p95": round(times[min(len(times) - 1, int(len(times) * 0.95))], 1),
            "turns_timed": len(times)}


def run_miti_bench(data: str | Path, coder: UtteranceCoder, *, split: str = "test",
                   progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Code the chosen split of a trainee-style file and score it (see the module docstring)."""
    rows = read_trainee(data)
    if split != "all":
        rows = [r for r in rows if r.split == split]
    if not rows:
        raise ValueError(f"{data}: no rows in the {split!r} split")
    counselor = [r for r in rows if r.speaker == "counselor"]
    with _single_thread():
        started = time.perf_counter()
        coded = coder.code_segments([(r.text, r.context, ()) for r in counselor])
        elapsed = time.perf_counter() - started
    if progress:
        progress(f"coded {len(coded)} counselor utterances in {elapsed:.2f} s")
    by_id = {r.id: c for r, c in zip(counselor, coded, strict=True)}
    found = [by_id[r.id].risk if r.id in by_id
             else find_risk(r.text, [u.text for u in r.context], client_line=r.speaker == "client")
             for r in rows]
    truth = [r.behaviour or "NC" for r in counselor]
    pred = [c.behaviour for c in coded]
    qpairs = [(r.question_type, c.question_type) for r, c in zip(counselor, coded, strict=True)
              if r.behaviour == "Q" and c.behaviour == "Q" and r.question_type]
    result: dict[str, Any] = {
        "coder": coder.name,
        "coder_model": getattr(coder, "description", coder.name),
        "data": str(data),
        "format": "miti-trainee",
        "split": split,
        "utterances": len(counselor),
        "client_utterances": len(rows) - len(counselor),
    }
    result.update(score_behaviours(truth, pred))
    result["question_type_accuracy"] = (round(sum(a == b for a, b in qpairs) / len(qpairs), 4)
                                        if qpairs else None)
    result.update(score_risk(rows, found))
    result["low_confidence_share"] = round(
        sum(1 for c in coded if c.confidence < 0.5) / len(coded), 4) if coded else None
    result["utterances_per_s"] = round(len(coded) / elapsed, 1) if elapsed > 0 else None
    result.update(turn_latency(coder, counselor))
    result["live_context"] = live_context(coder, counselor, pred)
    result["errors"] = [{"id": r.id, "text": r.text, "reference": r.behaviour,
                         "coded": c.behaviour, "confidence": c.confidence}
                        for r, c in zip(counselor, coded, strict=True)
                        if (r.behaviour or "NC") != c.behaviour]
    return result


def live_context(coder: UtteranceCoder, rows: Sequence[TraineeUtterance],
                 as_written: Sequence[str]) -> dict[str, Any]:
    """The behaviour figures with a client line before every row (see the module docstring)."""
    from simulator.coder.miti_training import client_lines, context_twin

    pool = client_lines(rows)
    bare = [i for i, r in enumerate(rows) if not r.context]
    if not pool or not bare:
        return {}
    twins = [context_twin(rows[i], pool) for i in bare]
    with _single_thread():
        coded = coder.code_segments([(r.text, r.context, ()) for r in twins])
    pred = list(as_written)
    for i, c in zip(bare, coded, strict=True):
        pred[i] = c.behaviour
    scored = score_behaviours([r.behaviour or "NC" for r in rows], pred)
    changed = [{"id": rows[i].id, "text": rows[i].text, "reference": rows[i].behaviour,
                "as_written": as_written[i], "after_a_client_line": c.behaviour}
               for i, c in zip(bare, coded, strict=True) if c.behaviour != as_written[i]]
    return {"rows_given_a_client_line": len(bare), "macro_f1": scored["macro_f1"],
            "mi_non_adherent_recall": scored["mi_non_adherent_recall"],
            "per_code_f1": {k: v["f1"] for k, v in scored["per_code"].items()},
            "changed_by_the_client_line": changed}
