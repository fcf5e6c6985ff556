"""The rubric content model: what the grader codes, how codes become scores, and what counts as good.

Code never hard-codes a rubric item, a threshold or feedback wording: MITI 4.2.1, Hill's helping
skills and the CBT core skills are all just rubric YAML. A rubric has turn-level items (one value
per trainee turn: a behaviour code, a yes/no, or a number with anchors), session-level items
(global scales scored once, with an anchor per point), groups of codes (MI-adherent ...), and
summary metrics written as formulas over code counts with fair/good thresholds.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from simulator.formula import formula_names
from simulator.persona import ID_PATTERN, Strict

_CODE = r"^[A-Za-z][A-Za-z0-9_]{0,31}$"


class Examples(Strict):
    positive: list[str] = []
    negative: list[str] = []


class OfflineHints(Strict):
    """How the offline coder (trained on AnnoMI) maps onto this code.

    ``annomi`` lists AnnoMI labels as ``behaviour`` or ``behaviour:subtype`` (e.g. ``question:open``,
    ``therapist_input:advice``). ``cues`` are case-insensitive regular expressions for what AnnoMI
    does not label (affirmations, emphasising autonomy, confrontation); a cue match wins over the
    AnnoMI label.
    """

    annomi: list[str] = []
    cues: list[str] = []


class Code(Strict):
    id: str = Field(pattern=_CODE)
    name: str
    definition: str
    examples: Examples = Examples()
    offline: OfflineHints = OfflineHints()
    coaching: str = Field("", description="One line of feedback a trainee sees when this code is given.")


class Anchor(Strict):
    score: int
    description: str


class TurnItem(Strict):
    """Coded once per trainee turn."""

    id: str = Field(pattern=ID_PATTERN)
    title: str
    kind: Literal["categorical", "binary", "scalar"]
    definition: str
    codes: list[Code] = Field([], description="For categorical items: the codes to choose from.")
    default_code: str | None = Field(None, description="Code given when nothing else fits offline.")
    min: int | None = None
    max: int | None = None
    anchors: list[Anchor] = []
    examples: Examples = Examples()
    offline: OfflineHints = OfflineHints()

    @model_validator(mode="after")
    def _shape(self) -> TurnItem:
        if self.kind == "categorical":
            if len(self.codes) < 2:
                raise ValueError("a categorical item needs at least two codes")
            ids = [c.id for c in self.codes]
            if len(set(ids)) != len(ids):
                raise ValueError("code ids must be unique within an item")
            if self.default_code is not None and self.default_code not in ids:
                raise ValueError(f"default_code {self.default_code!r} is not one of {ids}")
        elif self.kind == "scalar":
            _check_scale(self.min, self.max, self.anchors)
        elif self.codes:
            raise ValueError("only categorical items have codes")
        return self


class SessionItem(Strict):
    """Scored once per session (a global), with a description for each point of the scale."""

    id: str = Field(pattern=_CODE)
    title: str
    definition: str
    min: int
    max: int
    anchors: list[Anchor] = Field(min_length=2)
    estimate: str | None = Field(
        None,
        description="Formula estimating the score from code counts when no LLM grader is used; "
        "reports label it as an estimate.",
    )

    @model_validator(mode="after")
    def _scale(self) -> SessionItem:
        _check_scale(self.min, self.max, self.anchors)
        return self


class Group(Strict):
    id: str = Field(pattern=_CODE)
    name: str
    codes: list[str] = Field(min_length=1)


class Thresholds(Strict):
    fair: float
    good: float


class Metric(Strict):
    id: str = Field(pattern=_CODE)
    name: str
    formula: str = Field(description="Arithmetic over code ids, group ids and session item ids.")
    format: Literal["ratio", "percent", "number"] = "number"
    thresholds: Thresholds | None = None
    higher_is_better: bool = True
    explanation: str = ""


class Rubric(Strict):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    version: int = Field(ge=1)
    title: str
    citation: str
    description: str = ""
    turn_items: list[TurnItem] = Field(min_length=1)
    session_items: list[SessionItem] = []
    groups: list[Group] = []
    metrics: list[Metric] = []

    @model_validator(mode="after")
    def _references(self) -> Rubric:
        codes = self.code_ids()
        names = codes | {g.id for g in self.groups} | {s.id for s in self.session_items}
        names |= {m.id for m in self.metrics} | {"total"}
        for g in self.groups:
            unknown = sorted(set(g.codes) - codes)
            if unknown:
                raise ValueError(f"group {g.id!r} names unknown codes {unknown}")
        for m in self.metrics:
            unknown = sorted(formula_names(m.formula) - names)
            if unknown:
                raise ValueError(f"metric {m.id!r} formula uses unknown names {unknown}")
        for s in self.session_items:
            if s.estimate:
                unknown = sorted(formula_names(s.estimate) - names)
                if unknown:
                    raise ValueError(f"session item {s.id!r} estimate uses unknown names {unknown}")
        return self

    def code_ids(self) -> set[str]:
        return {c.id for item in self.turn_items for c in item.codes}

    def code(self, code_id: str) -> Code:
        for item in self.turn_items:
            for c in item.codes:
                if c.id == code_id:
                    return c
        raise KeyError(code_id)


def _check_scale(lo: int | None, hi: int | None, anchors: list[Anchor]) -> None:
    if lo is None or hi is None or lo >= hi:
        raise ValueError("a scale needs min < max")
    for a in anchors:
        if not lo <= a.score <= hi:
            raise ValueError(f"anchor score {a.score} is outside {lo}..{hi}")
