"""The seam between a coder (what did the trainee just do?) and everything that uses its answer.

A coder reads one utterance in its transcript context and returns AnnoMI-style labels (main
behaviour and subtype for a counselor turn, talk type for a client turn).
``simulator.coder.rubric_codes``
maps those labels onto any rubric's codes; the client engine reads the codes of the engine rubric
(MITI 4.2.1 by default). The offline coder (trained on AnnoMI) and an LLM coder both implement
``Coder``, so the engine, the grader and ``bench coder`` never care which one they hold.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal, Protocol

from pydantic import BaseModel

from simulator.content.rubric import MITI_CODES
from simulator.vocab import Speaker

Behaviour = Literal["question", "reflection", "therapist_input", "other"]
Subtype = Literal["open", "closed", "simple", "complex", "information", "advice", "negotiation",
                  "options"]
TalkType = Literal["change", "neutral", "sustain"]


class Utterance(BaseModel):
    speaker: Speaker
    text: str


MitiBehaviour = Literal["GI", "PERSUADE", "PERSUADE_WITH", "Q", "SR", "CR", "AF", "SEEK",
                       "EMPHASIZE", "CONFRONT", "NC"]
"""The ten MITI 4.2.1 behaviour codes (ids as in ``rubrics/miti-4.2.1.yaml``), and NC for filler."""

MITI_BEHAVIOURS: tuple[str, ...] = MITI_CODES


class UtteranceCode(BaseModel):
    """One utterance of a counselor turn (a complete thought, ``coder.segment``) and its MITI 4.2.1
    code. MITI codes utterances, not turns: a turn that reflects and then asks counts once as a
    reflection and once as a question."""

    text: str
    start: int
    """Character offset of the utterance in the turn text (``turn[start:end] == text``)."""
    end: int
    behaviour: str
    """A MITI 4.2.1 behaviour code id (``GI``, ``PERSUADE``, ``PERSUADE_WITH``, ``Q``, ``SR``,
    ``CR``, ``AF``, ``SEEK``, ``EMPHASIZE``, ``CONFRONT``) or ``NC`` (filler)."""
    question_type: str | None = None
    """``OQ`` or ``CQ`` when the utterance asks a question (whatever its behaviour code, so a
    Seek phrased as a question still has one), else None."""
    confidence: float = 1.0
    risk: list[str] = []
    """Risk topic ids (``coder.risk.RISK_TOPICS``) this utterance asks about or mentions."""


class CounselorLabels(BaseModel):
    """What a coder says about one counselor utterance (AnnoMI labels for the whole turn), and,
    when the coder segments, the MITI code of each utterance in it."""

    behaviour: Behaviour
    subtype: Subtype | None = None
    confidence: float = 1.0
    coder: str = ""
    utterances: list[UtteranceCode] = []
    """Utterance-level MITI codes; empty for coders that do not segment and for rows stored
    before utterance coding existed."""


class ClientLabels(BaseModel):
    talk_type: TalkType
    confidence: float = 1.0
    coder: str = ""


class CodedTurn(BaseModel):
    """A counselor turn coded against a rubric: labels plus a code per categorical item."""

    labels: CounselorLabels
    codes: dict[str, str]
    """turn item id -> code id, e.g. ``{"behaviour": "CR", "question_type": ...}``."""
    rubric_id: str

    def code_list(self) -> list[str]:
        return list(self.codes.values())

    def code_weights(self) -> dict[str, float]:
        """How sure the coder is of each turn code, 0..1, for whoever weighs codes (the client
        engine: a low-confidence Confront should move the client less than a certain one).
        A code backed by utterances gets the highest confidence among them (the question type
        from the Question utterances); without utterance codes, the turn label's confidence."""
        out: dict[str, float] = {}
        utterances = self.labels.utterances
        for code in self.codes.values():
            backing = [u.confidence for u in utterances
                       if u.behaviour == code or (u.behaviour == "Q" and u.question_type == code)]
            if backing:
                out[code] = max(backing)
            elif utterances and code == "NQ":
                out[code] = 1.0  # no utterance asks a question
            else:
                out[code] = self.labels.confidence
        return out


class Coder(Protocol):
    """Codes utterances in context: ``context`` is the transcript before it, oldest first."""

    name: str

    def code_counselor(self, text: str, context: Sequence[Utterance]) -> CounselorLabels: ...

    def code_client(self, text: str, context: Sequence[Utterance]) -> ClientLabels: ...

    def code_counselor_batch(
        self, items: Sequence[tuple[str, Sequence[Utterance]]]
    ) -> list[CounselorLabels]: ...
