"""The rubric content model: what the grader codes, how codes become scores, what counts as good.

Code never hard-codes a rubric item, a threshold or feedback wording: MITI 4.2.1, Hill's helping
skills and the CBT core skills are all just rubric YAML. A rubric has turn-level items (one value
per trainee turn: a behaviour code, a yes/no, or a number with anchors), session-level items
(global scales scored once, with an anchor per point), groups of codes (MI-adherent ...), and
summary metrics written as formulas over code counts with fair/good thresholds.

Names a formula may use: code ids (count of turns given that code), group ids (sum of their
codes' counts), session item ids (the item's score), metric ids, and ``total`` (the number of
trainee turns coded). These share one namespace, so an id may be used only once in a rubric.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator

from simulator.content.formula import FormulaError, formula_names
from simulator.content.loader import Problem
from simulator.content.persona import ID_PATTERN, Document, Strict

_CODE = r"^[A-Za-z][A-Za-z0-9_]{0,31}$"
RESERVED_NAMES = frozenset({"total"})

ANNOMI_LABELS = frozenset({
    "question", "question:open", "question:closed",
    "reflection", "reflection:simple", "reflection:complex",
    "therapist_input", "therapist_input:information", "therapist_input:advice",
    "therapist_input:negotiation", "therapist_input:options",
    "other",
})
"""AnnoMI therapist labels (main behaviour, optionally ``:subtype``) an offline hint may name."""

MITI_CODES: tuple[str, ...] = ("GI", "PERSUADE", "PERSUADE_WITH", "Q", "SR", "CR", "AF", "SEEK",
                               "EMPHASIZE", "CONFRONT")
"""The ten MITI 4.2.1 behaviour codes the utterance coder gives (ids as in
``rubrics/miti-4.2.1.yaml``); another rubric's code may take some of them
(``OfflineHints.miti``)."""


def _regex(pattern: str) -> str:
    try:
        re.compile(pattern, re.IGNORECASE)
    except re.error as exc:
        raise ValueError(f"not a valid regular expression: {exc}") from None
    return pattern


def _annomi(label: str) -> str:
    if label not in ANNOMI_LABELS:
        raise ValueError(f"unknown AnnoMI label {label!r}; use one of {sorted(ANNOMI_LABELS)}")
    return label


def _miti(code: str) -> str:
    if code not in (*MITI_CODES, "NC"):
        raise ValueError(f"unknown MITI 4.2.1 code {code!r}; use one of {list(MITI_CODES)} "
                         "or NC (not coded: filler, greetings)")
    return code


Cue = Annotated[str, AfterValidator(_regex)]
AnnomiLabel = Annotated[str, AfterValidator(_annomi)]
MitiCode = Annotated[str, AfterValidator(_miti)]


class Examples(Strict):
    positive: list[str] = []
    negative: list[str] = []


class OfflineHints(Strict):
    """How the offline coder (trained on AnnoMI) maps onto this code.

    ``annomi`` lists AnnoMI labels as ``behaviour`` or ``behaviour:subtype`` (``question:open``,
    ``therapist_input:advice``). ``cues`` are case-insensitive regular expressions for what
    AnnoMI does not label (affirmations, emphasising autonomy, confrontation); a cue match wins
    over the AnnoMI label. ``miti`` lists the MITI 4.2.1 utterance codes this code takes when the
    coder codes utterances: it wins over cues and labels, so a rubric without MITI's codes still
    sees a confrontation the utterance coder found (helping skills: ``confronting``) instead of
    praising it as whatever the AnnoMI label says.
    """

    annomi: list[AnnomiLabel] = []
    cues: list[Cue] = []
    miti: list[MitiCode] = []


class Code(Strict):
    id: str = Field(pattern=_CODE)
    name: str
    definition: str
    examples: Examples = Examples()
    offline: OfflineHints = OfflineHints()
    coaching: str = Field("", description="One line of feedback a trainee sees for this code.")


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

    @model_validator(mode="after")
    def _order(self) -> Metric:
        t = self.thresholds
        if t is not None and (t.good < t.fair if self.higher_is_better else t.good > t.fair):
            better = "higher" if self.higher_is_better else "lower"
            raise ValueError(f"thresholds: good must be {better} than fair "
                             f"(higher_is_better is {str(self.higher_is_better).lower()})")
        return self


class Rubric(Document):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")
    version: int = Field(ge=1)
    title: str
    citation: str
    description: str = ""
    turn_items: list[TurnItem] = Field(min_length=1)
    session_items: list[SessionItem] = []
    groups: list[Group] = []
    metrics: list[Metric] = []

    def content_problems(self) -> list[Problem]:
        """Cross references inside the file, each placed at the key that is wrong."""
        problems: list[Problem] = []
        owner: dict[str, str] = {}

        def claim(name: str, what: str, loc: tuple[str | int, ...]) -> None:
            if name in RESERVED_NAMES:
                problems.append((loc, f"{name!r} is reserved (number of turns coded)"))
            elif name in owner:
                problems.append((loc, f"{what} id {name!r} is already used by {owner[name]} "
                                      "(codes, groups, session items, metrics: one namespace)"))
            else:
                owner[name] = f"{what} {name!r}"

        for i, item in enumerate(self.turn_items):
            for j, c in enumerate(item.codes):
                claim(c.id, "code", ("turn_items", i, "codes", j, "id"))
        codes = set(owner)
        for i, g in enumerate(self.groups):
            claim(g.id, "group", ("groups", i, "id"))
        for i, s in enumerate(self.session_items):
            claim(s.id, "session item", ("session_items", i, "id"))
        for i, m in enumerate(self.metrics):
            claim(m.id, "metric", ("metrics", i, "id"))
        for i, g in enumerate(self.groups):
            for j, code in enumerate(g.codes):
                if code not in codes:
                    problems.append((("groups", i, "codes", j),
                                     f"{code!r} is not a code of this rubric"))
        names = set(owner) | RESERVED_NAMES
        formulas: list[tuple[tuple[str | int, ...], str]] = [
            (("metrics", i, "formula"), m.formula) for i, m in enumerate(self.metrics)]
        formulas += [(("session_items", i, "estimate"), s.estimate)
                     for i, s in enumerate(self.session_items) if s.estimate]
        for loc, formula in formulas:
            try:
                unknown = sorted(formula_names(formula) - names)
            except FormulaError as exc:
                problems.append((loc, str(exc)))
                continue
            if unknown:
                problems.append((loc, f"formula uses unknown names {unknown} (use code, group, "
                                      "session item or metric ids, or total)"))
        return problems

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
    scores = [a.score for a in anchors]
    for s in scores:
        if not lo <= s <= hi:
            raise ValueError(f"anchor score {s} is outside {lo}..{hi}")
    if len(set(scores)) != len(scores):
        raise ValueError("each anchor score may appear only once")
