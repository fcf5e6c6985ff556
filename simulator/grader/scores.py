"""Session scores: what a rubric's summary metrics say about one session, with fair/good verdicts.

Everything here is driven by the rubric YAML: code counts come from the session's effective turn
codes (supervisor correction > grader > coder, see ``Store.effective_codes``), group counts from the
rubric's groups, metrics from its formulas (``content.formula``), verdicts from its thresholds.
Session-level items (MITI globals) come from a supervisor correction, else the LLM grader's session
grade, else the rubric's ``estimate`` formula; estimates are flagged (``source="estimate"``) and so
is every metric computed from one, so a report never passes an estimate off as a rating.

Formula names: code ids (counts), group ids (summed counts), ``total`` (coded counselor
turns), session item ids (scores) and other metric ids (values); they resolve in dependency
order. A division by zero gives ``None`` ("not applicable", e.g. R:Q with no questions), which
has no verdict.

Counts are per utterance where the coder segmented the turn (MITI 4.2.1 tallies behaviours per
utterance, "Behavior Counts"): a turn that reflects and then asks adds one reflection and one
question, so R:Q is not understated. A turn's utterance codes stand in for its turn code only
while they agree with it (the effective code is the one derived from them); a supervisor's
correction or a grader that coded the turn differently is counted at the turn level, once.
``total`` stays the number of coded turns (the rubric's estimates are per turn).

``format: percent`` metrics may be written as fractions (``CR / (SR + CR)`` with thresholds 0.4/0.5)
or as percentages (``100 * CR / (SR + CR)`` with 40/50); thresholds at or below 1 mean fractions.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel

from simulator.coder.labels import UtteranceCode
from simulator.coder.rubric_codes import turn_code
from simulator.content.formula import evaluate, formula_names
from simulator.content.rubric import Metric, Rubric, Thresholds

if TYPE_CHECKING:
    from simulator.store import Session, Store, StoredItemScore, Value

MIN_EVIDENCE = 5
"""A ratio of counts (``CR / (SR + CR)``, ``(SR + CR) / Q``) gets a verdict only when at least this
many of the behaviours it counts were coded: "good" %CR from two reflections, or R:Q from one
question and one reflection, is noise, not evidence. The
MITI manual sets no minimum; five is this project's choice (MITI's thresholds assume a 20-minute
session with dozens of behaviours). Below it the value is still shown, with no verdict."""

Verdict = Literal["below fair", "fair", "good"]
ItemSource = Literal["supervisor", "grader", "estimate"]


class MetricScore(BaseModel):
    id: str
    name: str
    value: float | None
    display: str
    """The value as people read it: ``2.0``, ``33%``, ``n/a``."""
    format: Literal["ratio", "percent", "number"]
    thresholds: Thresholds | None = None
    fair_display: str | None = None
    good_display: str | None = None
    higher_is_better: bool = True
    verdict: Verdict | None = None
    explanation: str = ""
    estimate: bool = False
    """True when the value depends on an estimated session item."""
    evidence_n: int | None = None
    """For a ratio of counts, how many of its behaviours were coded (reflections for %CR,
    reflections and questions for R:Q)."""
    evidence_of: str = ""
    """Those behaviours as the rubric names them (``SR + CR``)."""
    insufficient: bool = False
    """True when ``evidence_n`` is under ``MIN_EVIDENCE``: no verdict is given."""


class SessionItemScore(BaseModel):
    id: str
    title: str
    min: int
    max: int
    score: float | None = None
    source: ItemSource | None = None
    machine_score: float | None = None
    """Grader or estimate value, kept when a supervisor corrected it."""
    evidence: list[str] = []
    rationale: str = ""


class ItemMean(BaseModel):
    """Mean of a scalar (or binary, as a rate 0..1) turn item over the coded turns that have it."""

    id: str
    title: str
    kind: Literal["scalar", "binary"]
    mean: float | None
    n: int
    min: int | None = None
    max: int | None = None


class SessionScores(BaseModel):
    session_id: str | None = None
    rubric_id: str
    rubric_version: int
    n_turns: int
    """Counselor turns with at least one code."""
    counts: dict[str, int]
    """Every code of the rubric (zeros included), by code id."""
    group_counts: dict[str, int]
    metrics: list[MetricScore]
    session_items: list[SessionItemScore]
    item_means: list[ItemMean]
    estimated: bool = False
    """Some session item (and so possibly some metric) is an estimate, not a rating."""
    n_utterances: int = 0
    """Utterances counted one by one (turns counted whole are not included)."""

    def metric(self, metric_id: str) -> MetricScore:
        for m in self.metrics:
            if m.id == metric_id:
                return m
        raise KeyError(metric_id)

    def item(self, item_id: str) -> SessionItemScore:
        for s in self.session_items:
            if s.id == item_id:
                return s
        raise KeyError(item_id)


def verdict_for(value: float | None, thresholds: Thresholds | None,
                higher_is_better: bool = True) -> Verdict | None:
    """``good`` at or beyond the good threshold, ``fair`` at or beyond fair, else ``below fair``."""
    if value is None or thresholds is None:
        return None
    if higher_is_better:
        if value >= thresholds.good:
            return "good"
        return "fair" if value >= thresholds.fair else "below fair"
    if value <= thresholds.good:
        return "good"
    return "fair" if value <= thresholds.fair else "below fair"


def _is_fraction(metric: Metric, value: float | None) -> bool:
    if metric.thresholds is not None:
        return max(abs(metric.thresholds.fair), abs(metric.thresholds.good)) <= 1.0
    return value is not None and abs(value) <= 1.0


def display_value(metric: Metric, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric.format == "percent":
        pct = value * 100 if _is_fraction(metric, value) else value
        return f"{pct:.0f}%"
    if metric.format == "ratio":
        return f"{value:.1f}"
    return f"{value:.2f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"


def utterance_counts(utterances: Sequence[UtteranceCode], allowed: set[str],
                     turn_value: str) -> list[str] | None:
    """The codes an item counts for a turn from its utterances, or None when the turn must be
    counted whole (no utterance codes for this item, or they disagree with ``turn_value``)."""
    if not utterances:
        return None
    behaviour, qtype = turn_code(list(utterances), allowed)
    if {"OQ", "CQ"} <= allowed:  # the question-type item
        if qtype is None:
            return None
        if turn_value != qtype:
            return None
        return [u.question_type for u in utterances
                if u.behaviour == "Q" and u.question_type in allowed]
    if behaviour is None or behaviour != turn_value:
        return None
    return [u.behaviour for u in utterances if u.behaviour in allowed]


def compute_scores(rubric: Rubric, turns: Sequence[Mapping[str, Value]], *,
                   session_items: Mapping[str, StoredItemScore] | None = None,
                   corrections: Mapping[str, Value] | None = None,
                   session_id: str | None = None,
                   utterances: Sequence[Sequence[UtteranceCode]] | None = None) -> SessionScores:
    """Scores from the effective values of each coded counselor turn (turn item id -> value).

    ``session_items`` are the grader's session-level scores, ``corrections`` a supervisor's
    session-level corrections (session item id -> score); both optional. ``utterances`` (one
    list per turn, aligned with ``turns``) are the coder's utterance codes: where they agree
    with the turn's effective code, each utterance is counted.
    """
    categorical = [i for i in rubric.turn_items if i.kind == "categorical"]
    counts: Counter[str] = Counter({c: 0 for c in sorted(rubric.code_ids())})
    coded = 0
    counted_utterances: set[int] = set()
    for n, values in enumerate(turns):
        if not any(v is not None for v in values.values()):
            continue
        coded += 1
        utts = utterances[n] if utterances is not None and n < len(utterances) else ()
        for item in categorical:
            v = values.get(item.id)
            allowed = {c.id for c in item.codes}
            if not (isinstance(v, str) and v in allowed):
                continue
            each = utterance_counts(utts, allowed, v)
            if each is None:
                counts[v] += 1
            else:
                counts.update(each)
                counted_utterances.add(n)
    groups = {g.id: sum(counts[c] for c in g.codes) for g in rubric.groups}

    means: list[ItemMean] = []
    for item in rubric.turn_items:
        if item.kind == "categorical":
            continue
        nums = [float(v) for t in turns if (v := t.get(item.id)) is not None
                and isinstance(v, int | float | bool)]
        kind: Literal["scalar", "binary"] = "binary" if item.kind == "binary" else "scalar"
        means.append(ItemMean(id=item.id, title=item.title, kind=kind,
                              mean=sum(nums) / len(nums) if nums else None, n=len(nums),
                              min=item.min, max=item.max))

    base: dict[str, float | None] = {**{k: float(v) for k, v in counts.items()},
                                     **{k: float(v) for k, v in groups.items()},
                                     "total": float(coded)}
    resolver = _Resolver(rubric, base, session_items or {}, corrections or {})
    items = [resolver.session_item(s.id) for s in rubric.session_items]
    metrics = []
    for m in rubric.metrics:
        value = resolver.value(m.id)
        t = m.thresholds
        evidence_of, evidence_n = _evidence(m.formula, base)
        insufficient = evidence_n is not None and evidence_n < MIN_EVIDENCE
        metrics.append(MetricScore(
            id=m.id, name=m.name, value=value, display=display_value(m, value), format=m.format,
            thresholds=t, fair_display=display_value(m, t.fair) if t else None,
            good_display=display_value(m, t.good) if t else None,
            higher_is_better=m.higher_is_better,
            verdict=None if insufficient else verdict_for(value, t, m.higher_is_better),
            explanation=m.explanation,
            estimate=resolver.depends_on_estimate(m.id), evidence_n=evidence_n,
            evidence_of=evidence_of, insufficient=insufficient))
    return SessionScores(session_id=session_id, rubric_id=rubric.id, rubric_version=rubric.version,
                         n_turns=coded, counts=dict(counts), group_counts=groups, metrics=metrics,
                         session_items=items, item_means=means,
                         estimated=any(s.source == "estimate" for s in items),
                         n_utterances=sum(len(utterances[n]) for n in counted_utterances)
                         if utterances is not None else 0)


def _evidence(formula: str, counts: Mapping[str, float | None]) -> tuple[str, int | None]:
    """``("SR + CR", 2)`` for ``CR / (SR + CR)``: for a ratio of counts (a top-level division
    whose names are all codes or groups), the behaviours it counts and how many were coded;
    ``("", None)`` for anything else (session items, constants, ``total``)."""
    import ast

    try:
        tree = ast.parse(formula.strip(), mode="eval").body
    except SyntaxError:
        return "", None
    if not (isinstance(tree, ast.BinOp) and isinstance(tree.op, ast.Div)):
        return "", None
    names: list[str] = []
    for side in (tree.right, tree.left):  # the denominator's behaviours first, as written
        text = ast.unparse(side)
        used = formula_names(text)
        for n in re.findall(r"[A-Za-z_]\w*", text):
            if n in used and n not in names:
                names.append(n)
    if not names or any(n not in counts or n == "total" for n in names):
        return "", None
    return " + ".join(names), int(sum(counts[n] or 0 for n in names))


class _Resolver:
    """Evaluates session items and metrics lazily, in dependency order, refusing cycles."""

    def __init__(self, rubric: Rubric, base: dict[str, float | None],
                 graded: Mapping[str, StoredItemScore], corrections: Mapping[str, Value]) -> None:
        self.rubric, self.base, self.graded, self.corrections = rubric, base, graded, corrections
        self.items = {s.id: s for s in rubric.session_items}
        self.metrics = {m.id: m for m in rubric.metrics}
        self.done: dict[str, float | None] = {}
        self.item_scores: dict[str, SessionItemScore] = {}
        self.busy: set[str] = set()

    def value(self, name: str) -> float | None:
        if name in self.base:
            return self.base[name]
        if name in self.done:
            return self.done[name]
        if name in self.busy:
            raise ValueError(f"rubric {self.rubric.id!r}: {name!r} depends on itself")
        self.busy.add(name)
        try:
            if name in self.items:
                result = self.session_item(name).score
            elif name in self.metrics:
                result = self._eval(self.metrics[name].formula)
            else:
                result = 0.0
        finally:
            self.busy.discard(name)
        self.done[name] = result
        return result

    def _eval(self, formula: str) -> float | None:
        return evaluate(formula, {n: self.value(n) for n in formula_names(formula)})

    def session_item(self, item_id: str) -> SessionItemScore:
        if item_id in self.item_scores:
            return self.item_scores[item_id]
        s = self.items[item_id]
        out = SessionItemScore(id=s.id, title=s.title, min=s.min, max=s.max)
        graded = self.graded.get(item_id)
        if graded is not None and graded.score is not None:
            out.score, out.source = float(graded.score), "grader"
            out.evidence, out.rationale = list(graded.evidence), graded.rationale
        elif s.estimate:
            self.busy.add(item_id)
            try:
                est = self._eval(s.estimate)
            finally:
                self.busy.discard(item_id)
            if est is not None:
                out.score, out.source = round(est, 2), "estimate"
        fix = self.corrections.get(item_id)
        if isinstance(fix, int | float) and not isinstance(fix, bool):
            out.machine_score, out.score, out.source = out.score, float(fix), "supervisor"
        self.item_scores[item_id] = out
        self.done[item_id] = out.score
        return out

    def depends_on_estimate(self, name: str, seen: set[str] | None = None) -> bool:
        seen = seen or set()
        if name in seen:
            return False
        seen.add(name)
        if name in self.items:
            return self.item_scores.get(name, SessionItemScore(
                id=name, title="", min=0, max=1)).source == "estimate"
        if name in self.metrics:
            return any(self.depends_on_estimate(n, seen)
                       for n in formula_names(self.metrics[name].formula))
        return False


def session_scores(store: Store, session_id: str, rubric: Rubric | None = None) -> SessionScores:
    """Scores of a stored session against the exact rubric version it recorded (or ``rubric``)."""
    session = store.get_session(session_id)
    rubric = rubric or session_rubric(store, session)
    effective = store.effective_codes(session_id, rubric.id)
    grade = store.session_grade(session_id, rubric.id)
    fixes: dict[str, Value] = {}
    for r in store.reviews(session_id):
        if r.turn_id is None and r.item_id and r.has_value:
            fixes[r.item_id] = r.value
    return compute_scores(rubric, [e.values for e in effective],
                          session_items=grade.items if grade else None, corrections=fixes,
                          session_id=session_id,
                          utterances=[stored_utterances(store, e.turn.id) for e in effective])


def stored_utterances(store: Store, turn_id: int) -> list[UtteranceCode]:
    """The latest utterance codes the coder stored for a turn (any rubric: they are MITI codes
    whatever the session's rubric), or none."""
    for record in reversed(store.codes(turn_id)):
        raw = (record.labels or {}).get("utterances")
        if raw:
            return [UtteranceCode.model_validate(u) for u in raw]
    return []


def session_rubric(store: Store, session: Session) -> Rubric:
    """The rubric exactly as the session recorded it (parsed from the stored YAML text, once
    per stored version: ``content.loader.load_recorded``)."""
    from simulator.content.loader import load_recorded

    content = store.get_content("rubric", session.rubric_id, session.rubric_sha)
    return load_recorded(Rubric, content.id, content.sha256, content.content)
