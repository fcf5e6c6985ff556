"""Mapping a coder's AnnoMI labels onto the codes of any rubric, using the rubric's own hints.

No rubric is hard-coded: each code of a categorical turn item says, in its ``offline`` hints, which
AnnoMI labels it stands for (``question:open``, ``reflection``...) and which phrases (``cues``,
case-insensitive regular expressions) mark what AnnoMI does not label (affirmations, emphasising
autonomy, confrontation). For each categorical item, in this order:

0. when the coder gave utterance codes, a code whose ``miti`` hints name one of them (the most
   consequential first, ``TURN_PRECEDENCE``): a helping-skills turn with a Confront utterance is
   ``confronting``, whatever its AnnoMI label;
1. a cue of a code matches the turn text: that code (codes tried in the item's order), since cues
   name what the AnnoMI labels cannot see;
2. a code lists ``behaviour:subtype`` exactly (``reflection:complex``);
3. a code lists the bare ``behaviour`` (``question``);
4. the item's ``default_code``; an item with no default and no match is left out of the codes.

When the labels carry utterance codes (``CounselorLabels.utterances``, MITI 4.2.1 code ids) and an
item's codes include them, the item's turn code is derived from the utterances instead
(``turn_code``): the most consequential behaviour of the turn, so that a turn with one Confront
utterance is not reported as a reflection, and a reflection followed by a question keeps its
reflection as the behaviour and its question in the question type. Scores still count every
utterance (``grader.scores``).

Binary and scalar items are not coded offline (the LLM grader scores them). Regular expressions are
compiled once per rubric object and cached.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from simulator.coder.labels import CodedTurn, CounselorLabels, UtteranceCode
from simulator.content.rubric import Rubric, TurnItem


@dataclass(frozen=True)
class _ItemPlan:
    item_id: str
    cues: tuple[tuple[str, re.Pattern[str]], ...]
    """(code id, compiled cue), in the item's code order."""
    exact: dict[str, str]
    """``behaviour:subtype`` -> code id (first code listing it wins)."""
    behaviour: dict[str, str]
    """bare ``behaviour`` -> code id."""
    default: str | None
    miti: dict[str, str]
    """MITI 4.2.1 utterance code -> code id (``OfflineHints.miti``; first code listing it wins)."""

    def code(self, labels: CounselorLabels, text: str) -> str | None:
        # filler (NC) stands for the turn only when the turn is nothing else: "Hi Farida. What
        # brings you in?" is its question, not a greeting
        said = {u.behaviour for u in labels.utterances}
        taken, _ = turn_code(labels.utterances,
                             set(self.miti) - ({"NC"} if said - {"NC"} else set()))
        if taken is not None:
            return self.miti[taken]
        for code_id, pattern in self.cues:
            if pattern.search(text):
                return code_id
        if labels.subtype:
            hit = self.exact.get(f"{labels.behaviour}:{labels.subtype}")
            if hit:
                return hit
        return self.behaviour.get(labels.behaviour, self.default)


def _plan_item(item: TurnItem) -> _ItemPlan:
    cues: list[tuple[str, re.Pattern[str]]] = []
    exact: dict[str, str] = {}
    behaviour: dict[str, str] = {}
    miti: dict[str, str] = {}
    for code in item.codes:
        for utterance_code in code.offline.miti:
            miti.setdefault(utterance_code, code.id)
        cues.extend((code.id, re.compile(c, re.IGNORECASE)) for c in code.offline.cues)
        for label in code.offline.annomi:
            (exact if ":" in label else behaviour).setdefault(label, code.id)
    return _ItemPlan(item.id, tuple(cues), exact, behaviour, item.default_code, miti)


_CACHE: dict[int, tuple[Rubric, tuple[_ItemPlan, ...]]] = {}
_CACHE_MAX = 64


def _plans(rubric: Rubric) -> tuple[_ItemPlan, ...]:
    hit = _CACHE.get(id(rubric))
    if hit is not None and hit[0] is rubric:
        return hit[1]
    plans = tuple(_plan_item(i) for i in rubric.turn_items if i.kind == "categorical")
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.pop(next(iter(_CACHE)))
    _CACHE[id(rubric)] = (rubric, plans)  # holding the rubric keeps its id from being reused
    return plans


TURN_PRECEDENCE: tuple[str, ...] = ("CONFRONT", "PERSUADE", "PERSUADE_WITH", "EMPHASIZE", "AF",
                                     "SEEK", "CR", "SR", "GI", "Q", "NC")
"""Which utterance code stands for a turn that holds several: MI-non-adherent first (the coach
must not praise a turn that confronts), then the MI-adherent codes, reflections before questions
(the question stays visible in the question type), filler last."""


def turn_code(utterances: list[UtteranceCode], allowed: set[str]) -> tuple[str | None, str | None]:
    """The turn's behaviour code and question type from its utterance codes (``allowed``: the
    rubric item's code ids). A question type is given when any utterance is a Question."""
    present = {u.behaviour for u in utterances}
    behaviour = next((c for c in TURN_PRECEDENCE if c in present and c in allowed), None)
    qtypes = [u.question_type for u in utterances if u.behaviour == "Q" and u.question_type]
    qtype = "OQ" if "OQ" in qtypes else (qtypes[0] if qtypes else None)
    return behaviour, qtype


def _from_utterances(plan: _ItemPlan, labels: CounselorLabels, allowed: set[str]) -> str | None:
    behaviour, qtype = turn_code(labels.utterances, allowed)
    if qtype is not None and qtype in allowed:
        return qtype
    if behaviour is not None:
        return behaviour
    if {"OQ", "CQ"} & allowed and plan.default in allowed:
        return plan.default  # a question-type item and no question: "not a question"
    return None


def code_turn(labels: CounselorLabels, text: str, rubric: Rubric) -> CodedTurn:
    """Code one counselor turn against ``rubric`` from its labels and text."""
    codes: dict[str, str] = {}
    item_codes = {i.id: {c.id for c in i.codes} for i in rubric.turn_items}
    used = {u.behaviour for u in labels.utterances} | {u.question_type for u in labels.utterances
                                                       if u.question_type}
    plans = _plans(rubric)
    miti_like = bool(labels.utterances) and any(used & item_codes[p.item_id] for p in plans)
    for plan in plans:
        allowed = item_codes[plan.item_id]
        code = None
        if miti_like and (used & allowed or {"OQ", "CQ"} <= allowed):
            code = _from_utterances(plan, labels, allowed)
        if code is None:
            code = plan.code(labels, text)
        if code is not None:
            codes[plan.item_id] = code
    return CodedTurn(labels=labels, codes=codes, rubric_id=rubric.id)
