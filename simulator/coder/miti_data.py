"""The trainee-style MITI labelled set: one JSON object per line (format in docs/coder.md).

Each line is one utterance as a trainee might type it, coded against the MITI 4.2.1 manual, with
the conversation just before it when the code depends on it (what the client said decides
simple against complex reflection, and whether advice follows permission)::

    {"id": "u0001", "split": "train", "speaker": "counselor",
     "context": [{"speaker": "client", "text": "I drink maybe four beers a night."}],
     "text": "You have about four beers most nights.", "behaviour": "SR",
     "question_type": null, "risk": []}

``behaviour`` is a MITI 4.2.1 code id or NC (null for client lines, which are there for risk
disclosures only); ``question_type`` is OQ or CQ for Question utterances; ``risk`` lists risk topic
ids (``coder.risk.RISK_TOPICS``). ``split`` is fixed in the file (train or test) so a model is
never tuned on the test part.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ValidationError, field_validator, model_validator

from simulator.coder.labels import MITI_BEHAVIOURS, Utterance
from simulator.coder.risk import RISK_TOPICS

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "data" / "miti-trainee" / "utterances.jsonl"


class TraineeUtterance(BaseModel):
    id: str
    split: Literal["train", "test"]
    speaker: Literal["counselor", "client"] = "counselor"
    context: list[Utterance] = []
    text: str
    behaviour: str | None = None
    question_type: Literal["OQ", "CQ"] | None = None
    risk: list[str] = []

    @field_validator("behaviour")
    @classmethod
    def _known_code(cls, v: str | None) -> str | None:
        if v is not None and v not in (*MITI_BEHAVIOURS, "NC"):
            raise ValueError(f"unknown MITI code {v!r} (expected one of "
                             f"{', '.join((*MITI_BEHAVIOURS, 'NC'))})")
        return v

    @field_validator("risk")
    @classmethod
    def _known_risk(cls, v: list[str]) -> list[str]:
        bad = [r for r in v if r not in RISK_TOPICS]
        if bad:
            raise ValueError(f"unknown risk topic(s) {bad} (expected {', '.join(RISK_TOPICS)})")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> TraineeUtterance:
        if self.speaker == "counselor" and self.behaviour is None:
            raise ValueError("a counselor utterance needs a behaviour code")
        if self.question_type is not None and self.behaviour != "Q":
            raise ValueError("question_type is only given to Q utterances")
        return self


def read_trainee(path: str | Path) -> list[TraineeUtterance]:
    """Read and check a labelled file; a bad line is reported with its file and line number."""
    p = Path(path)
    if not p.exists():
        raise FileNotFoundError(f"{p}: no such labelled file")
    out: list[TraineeUtterance] = []
    seen: set[str] = set()
    for n, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = TraineeUtterance.model_validate(json.loads(line))
        except json.JSONDecodeError as exc:
            raise ValueError(f"{p}:{n}: not a JSON object: {exc.msg}") from exc
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(x) for x in e['loc']) or 'line'}: "
                f"{e['msg'].removeprefix('Value error, ')}" for e in exc.errors())
            raise ValueError(f"{p}:{n}: {problems}") from exc
        if row.id in seen:
            raise ValueError(f"{p}:{n}: duplicate id {row.id!r}")
        seen.add(row.id)
        out.append(row)
    if not out:
        raise ValueError(f"{p}: no labelled utterances")
    return out


def is_trainee_file(path: str | Path) -> bool:
    """A ``.jsonl`` file is the trainee-style format; AnnoMI files are CSV."""
    return Path(path).suffix.lower() in {".jsonl", ".json"}
