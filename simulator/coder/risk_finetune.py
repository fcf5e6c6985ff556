"""Fine-tune all-MiniLM-L6-v2 to read a question together with the client's last words and name
the risk topic it asks about (``counselsim train-coder --risk``, with the training extra).

Why: the phrasing rules and the embedding head (``coder.risk_meaning``) read the question alone.
On a test part written by another hand most of their misses were follow-ups that are risk only
through what the client just said ("How many have you got now?" after "I've been saving up my
tablets") and protective-factor questions whose risk is the conversation's ("What's kept you
going?"). A model that reads both can learn what the rules cannot list.

One sequence per row, as the MITI fine-tune (``coder.finetune``): the end of the client's last
words, then the start of the utterance (``risk_meaning.reader_pair``, which the app reads with
too). The labels are "none" and the eight risk topics, one sigmoid each: a client line that
tells of a plan, a date and the tablets has all three (a softmax, until stop 27, gave one of
them most of the probability). Judged on a whole earlier fresh round held out
(``experiments/risk_finetune_fresh.py``). The app runs the int8 ONNX file only.

Besides the trainee-style rows it reads ordinary speech as "none" (``everyday_negatives``): the
set's client lines are nearly all disclosures or dark look-alikes, so the stop-26 reader took
everyday client talk for risk (35 of the personas' 442 lines, "My husband died. In March." as a
past attempt) and some opening questions too ("What brings you in today?" as protective factors).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from simulator.coder.annomi import default_data_dir, read_annomi, training_file
from simulator.coder.finetune import FinetuneConfig, export, finetune
from simulator.coder.miti_cues import last_client
from simulator.coder.miti_data import TraineeUtterance
from simulator.coder.risk import RISK_TOPICS, about_risk
from simulator.coder.risk_meaning import RISK_READER_PATH, reader_pair
from simulator.coder.transformer import PairConfig

PAIR = PairConfig(labels=("none", *RISK_TOPICS), weight=1.0, multi_label=True)


def pair_of(row: TraineeUtterance) -> tuple[str, str]:
    """(the client's last words, the utterance); a client line is read alone."""
    return reader_pair(last_client(row.context) if row.speaker == "counselor" else None,
                       row.text)


def targets(rows: Sequence[TraineeUtterance]
            ) -> tuple[list[tuple[str, str]], list[tuple[str, ...]]]:
    """A pair per row and its labels: its risk topics, or "none"."""
    return [pair_of(r) for r in rows], [tuple(r.risk) or ("none",) for r in rows]


EVERYDAY_CLIENT = 800
EVERYDAY_QUESTIONS = 400
_DARK = re.compile(
    r"suicid|kill|\bdie\b|dying|dead|death|overdos|harm|\bcut|hurt|\bend (?:it|my|your|things)|"
    r"pill|tablet|hang|jump|bridge|rope|gun|weapon|\bsafe|plan|alive|living|live for|worth|"
    r"hopeless|point|keep(?:s|ing)? (?:you|me) going|give up|gone|attempt|hospital|a&e|scar",
    re.IGNORECASE)
"""Words near enough to risk that a line with them is left out of the everyday negatives: a
line about "the point of it all" or "pills" may be risk in its context, and a wrong "none" teaches
the reader to miss it."""


def everyday_negatives(data_dir: str | Path | None = None, *, clients: int = EVERYDAY_CLIENT,
                       questions: int = EVERYDAY_QUESTIONS, seed: int = 13
                       ) -> list[tuple[str, str]]:
    """Reader pairs of ordinary speech, all "none": client lines (read alone, as the app reads a
    client's line) and counselor questions after the client's words, drawn from AnnoMI's
    training portion (real MI sessions on drinking, smoking, diet...), leaving out any
    transcript about self-harm and any line with a word near risk (``_DARK``). Empty when the
    AnnoMI files are not there."""
    try:
        transcripts = read_annomi(training_file(data_dir or default_data_dir())).transcripts
    except (OSError, ValueError):  # no AnnoMI files (AnnoMIError), or unreadable ones
        return []
    lines: list[tuple[str, str]] = []
    asked: list[tuple[str, str]] = []
    for t in transcripts:
        if re.search(r"harm|suicid|depress", t.topic, re.IGNORECASE):
            continue
        client = ""
        for u in t.utterances:
            clean = not (_DARK.search(u.text) or about_risk(u.text))
            if u.speaker == "client":
                if clean and len(u.text.split()) >= 4:
                    lines.append(reader_pair(None, u.text))
                client = u.text if clean else ""
            elif clean and client and "?" in u.text:
                asked.append(reader_pair(client, u.text))
    rng = random.Random(seed)
    return (rng.sample(lines, min(clients, len(lines)))
            + rng.sample(asked, min(questions, len(asked))))


def training_pairs(rows: Sequence[TraineeUtterance]
                   ) -> tuple[list[tuple[str, str]], list[tuple[str, ...]]]:
    """``targets`` of the labelled rows, then the everyday negatives."""
    x, y = targets(rows)
    everyday = everyday_negatives()
    return x + everyday, y + [("none",)] * len(everyday)


def finetune_risk(rows: Sequence[TraineeUtterance], out: str | Path | None = None, *,
                  threads: int = 2, progress: Callable[[str], None] | None = None,
                  meta: dict[str, Any] | None = None,
                  config: FinetuneConfig | None = None) -> tuple[Any, Any]:
    """Fine-tune on ``rows`` and export to ``out`` (default: the shipped file)."""
    config = replace(config or FinetuneConfig(threads=threads), pair=PAIR)
    x, y = training_pairs(rows)
    everyday = len(x) - len(rows)
    if progress:
        progress(f"risk reader: {len(rows)} labelled rows, {everyday} everyday negatives")
    model, tokens = finetune(x, y, config, progress=progress)
    target = Path(out) if out is not None else RISK_READER_PATH
    export(model, tokens, target, config, dict(meta or {}) | {
        "trained_on": "miti-trainee risk", "everyday_negatives": everyday})
    return model, tokens
