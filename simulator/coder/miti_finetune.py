"""Fine-tune all-MiniLM-L6-v2 on the MITI trainee-style set: the MITI coder's model of stance.

Why: the logistic-regression model (words, cues, a frozen sentence embedding) learns the words of
the confrontations it has seen; a frozen embedding trained for topic similarity puts a sarcastic
restatement next to the restatement. Fine-tuned on this set, the encoder learns where the stance
is ("happy to", "you know", "whether you admit it or not"). Judged on a whole earlier fresh round
held out (round 6, written by an author who never saw a model;
``experiments/miti_finetune_fresh.py``): macro-F1 0.841 -> 0.905 alone and 0.929 averaged with
the LR model, MI-non-adherent recall 0.69 -> 0.88 / 0.85.

Same recipe as the AnnoMI behaviour model (``coder.finetune``): the end of the context and the
start of the utterance in one sequence, 4 epochs, int8 ONNX with its pair config and tokenizer;
the rows and their context twins (``miti_training.with_twins``) with ``model_target`` labels.
Needs the training extra (PyTorch); the app only runs the ONNX file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from simulator.coder.finetune import FinetuneConfig, export, finetune
from simulator.coder.miti import CLASSES, MITI_BEHAVIOUR_PATH, tuned_context
from simulator.coder.miti_data import TraineeUtterance
from simulator.coder.transformer import PairConfig

PAIR = PairConfig(labels=CLASSES, weight=0.5)
"""The fine-tuned model's share of the averaged probability (the LR model has the rest)."""


def pairs(rows: Sequence[TraineeUtterance]) -> list[tuple[str, str]]:
    return [(tuned_context(r.context), r.text) for r in rows]


def finetune_miti(rows: Sequence[TraineeUtterance], targets: Sequence[str],
                  out: str | Path | None = None, *, threads: int = 2,
                  progress: Callable[[str], None] | None = None,
                  meta: dict[str, Any] | None = None,
                  config: FinetuneConfig | None = None) -> tuple[Any, Any]:
    """Fine-tune on ``rows`` (with their twins already in) and ``targets`` and export to ``out``
    (default: the shipped file). ``config``: tests train a tiny one. Returns the torch model
    and its tokens."""
    config = replace(config or FinetuneConfig(threads=threads), pair=PAIR)
    model, tokens = finetune(pairs(rows), list(targets), config, progress=progress)
    target = Path(out) if out is not None else MITI_BEHAVIOUR_PATH
    export(model, tokens, target, config, dict(meta or {}) | {"trained_on": "miti-trainee"})
    return model, tokens
