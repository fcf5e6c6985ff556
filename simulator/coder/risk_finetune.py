"""Fine-tune all-MiniLM-L6-v2 to read a question together with the client's last words and name
the risk topic it asks about (``counselsim train-coder --risk``, with the training extra).

Why: the phrasing rules and the embedding head (``coder.risk_meaning``) read the question alone.
On a test part written by another hand most of their misses were follow-ups that are risk only
through what the client just said ("How many have you got now?" after "I've been saving up my
tablets") and protective-factor questions whose risk is the conversation's ("What's kept you
going?"). A model that reads both can learn what the rules cannot list.

One sequence per row, as the MITI fine-tune (``coder.finetune``): the end of the client's last
words, then the start of the utterance; the labels are "none" and the eight risk topics, a row
with two topics trained once per topic. Judged on a whole earlier fresh round held out
(``experiments/risk_finetune_fresh.py``). The app runs the int8 ONNX file only.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from simulator.coder.finetune import FinetuneConfig, export, finetune
from simulator.coder.miti import tuned_context
from simulator.coder.miti_data import TraineeUtterance
from simulator.coder.risk import RISK_TOPICS
from simulator.coder.risk_meaning import RISK_READER_PATH
from simulator.coder.transformer import PairConfig

PAIR = PairConfig(labels=("none", *RISK_TOPICS), weight=1.0)


def pair_of(row: TraineeUtterance) -> tuple[str, str]:
    """(the client's last words, the utterance); a client line is read alone."""
    return (tuned_context(row.context) if row.speaker == "counselor" else "", row.text)


def targets(rows: Sequence[TraineeUtterance]) -> tuple[list[tuple[str, str]], list[str]]:
    """Pairs and labels: "none" for a row without risk, one pair per topic otherwise."""
    x, y = [], []
    for r in rows:
        for topic in r.risk or ["none"]:
            x.append(pair_of(r))
            y.append(topic)
    return x, y


def finetune_risk(rows: Sequence[TraineeUtterance], out: str | Path | None = None, *,
                  threads: int = 2, progress: Callable[[str], None] | None = None,
                  meta: dict[str, Any] | None = None,
                  config: FinetuneConfig | None = None) -> tuple[Any, Any]:
    """Fine-tune on ``rows`` and export to ``out`` (default: the shipped file)."""
    config = replace(config or FinetuneConfig(threads=threads), pair=PAIR)
    x, y = targets(rows)
    model, tokens = finetune(x, y, config, progress=progress)
    target = Path(out) if out is not None else RISK_READER_PATH
    export(model, tokens, target, config, dict(meta or {}) | {"trained_on": "miti-trainee risk"})
    return model, tokens
