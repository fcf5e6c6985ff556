"""The simulated client's inner state, updated deterministically from each coded trainee turn.

Why deterministic: the same transcript must always give the same client, so supervisors can
replay a session, tests can pin behaviour, and the LLM realizer only *voices* a decision that plain
code already made. Everything a persona's author can tune lives in the persona (difficulty,
``style``, hidden facts with unlock conditions); everything else is a named constant below.

How one trainee turn moves the client (``update_state``):

* Each engine code (MITI 4.2.1 codes, e.g. ``["CR", "NQ"]``) has an ``Effect`` in ``SKILL_EFFECTS``:
  open questions (OQ) and complex reflections (CR) build rapport most, simple reflections (SR)
  less, affirmations (AF) and emphasising autonomy (EMPHASIZE) lower resistance most, persuasion
  without permission (PERSUADE) and confrontation (CONFRONT) raise resistance and cost rapport.
* Helpful deltas are multiplied by the persona's ``gain`` (harder, more guarded clients warm up
  more slowly); harmful deltas by its ``sensitivity`` (harder clients react more strongly).
  Rapport gains shrink as rapport grows (``RAPPORT_SATURATION``): trust is quick to start and
  slow to complete, so a dozen good turns do not make a guarded client fully trusting.
* Closed questions in a row (``closed_run``) are fine at first; from ``CLOSED_RUN_PENALTY_FROM``
  on, every further one costs rapport and adds resistance.
* The stage of change moves forward one step after sustained MI-consistent work with enough
  rapport and little resistance (``STAGE_FORWARD_*``), and back one step after confrontation or
  repeated persuasion; it never moves more than ``MAX_STAGE_ADVANCE`` steps beyond where the
  persona started in one session.
* A hidden fact unlocks once **all** the conditions its author gave hold on the same turn:
  rapport (after this turn) at least ``unlock.rapport``; the session count of the listed skill
  codes at least ``unlock.skills.count``; this trainee turn mentions one of ``unlock.topics``
  (case-insensitive, at a word start, so "drink" matches "drinking" but not "shrink"). Once
  unlocked a fact stays unlocked, even if rapport later drops.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Final

from pydantic import BaseModel, ConfigDict, Field

from simulator.content.persona import HiddenFact, Persona, StageOfChange

if TYPE_CHECKING:
    from simulator.client.understand import Understanding

STAGES: Final[tuple[StageOfChange, ...]] = (
    "precontemplation", "contemplation", "preparation", "action", "maintenance")


class Effect(BaseModel):
    """What one code does to the client. Positive rapport helps; positive resistance hurts."""

    model_config = ConfigDict(frozen=True)

    rapport: float = 0.0
    resistance: float = 0.0
    intensity: float = 0.0
    stage: float = 0.0
    """Contribution to stage progress (+1 total moves one stage forward, -1 one stage back)."""


SKILL_EFFECTS: Final[dict[str, Effect]] = {
    # question type (MITI question_type item)
    "OQ": Effect(rapport=0.07, resistance=-0.02, stage=0.12),
    "CQ": Effect(rapport=0.01),
    # behaviour (MITI behaviour item)
    "CR": Effect(rapport=0.09, resistance=-0.04, intensity=-0.03, stage=0.20),
    "SR": Effect(rapport=0.05, resistance=-0.02, intensity=-0.02, stage=0.05),
    "AF": Effect(rapport=0.05, resistance=-0.07, intensity=-0.04, stage=0.12),
    "EMPHASIZE": Effect(rapport=0.03, resistance=-0.09, stage=0.20),
    "SEEK": Effect(rapport=0.04, resistance=-0.03, stage=0.10),
    "PERSUADE_WITH": Effect(rapport=0.0, resistance=0.0, stage=0.05),
    "GI": Effect(),
    "Q": Effect(),
    "NC": Effect(),
    "NQ": Effect(),
    "PERSUADE": Effect(rapport=-0.05, resistance=0.10, intensity=0.06, stage=-0.35),
    "CONFRONT": Effect(rapport=-0.10, resistance=0.16, intensity=0.12, stage=-0.60),
}
"""Per-code effect before persona scaling. Codes not listed (another rubric's) do nothing."""

MI_CONSISTENT: Final[frozenset[str]] = frozenset({"OQ", "CR", "SR", "AF", "EMPHASIZE", "SEEK"})
"""Codes that count as MI-consistent work for stage movement."""

MI_INCONSISTENT: Final[frozenset[str]] = frozenset({"PERSUADE", "CONFRONT"})

CLOSED_RUN_PENALTY_FROM: Final = 3
"""The third closed question in a row, and every one after it, is penalised."""
CLOSED_RUN_PENALTY: Final = Effect(rapport=-0.03, resistance=0.03)

RAPPORT_SATURATION: Final = 0.6
"""Rapport gains are multiplied by ``1 - RAPPORT_SATURATION * rapport`` (x0.7 at rapport 0.5)."""

STAGE_FORWARD_MIN_RAPPORT: Final = 0.5
STAGE_FORWARD_MAX_RESISTANCE: Final = 0.45
"""Stage progress only accumulates forward while rapport is at least / resistance at most these."""
MAX_STAGE_ADVANCE: Final = 2
INTENSITY_DRIFT: Final = 0.02
"""Each turn, emotional intensity drifts this far back towards the persona's baseline."""
RECENT_ACTS_KEPT: Final = 8

CLOSING_CUES: Final = re.compile(
    r"\b(our time is (nearly |almost )?up"
    r"|(we('ve| have| are|'re)) (nearly |almost )?(out of|run out of) time"
    r"|wrap (things |this |it )?up"
    r"|(let's|let us|we'll|we will|we can|we should) (stop|end|finish) (here|there|for today|now)"
    r"|see you next|good-?bye|take care|thanks? (you )?for coming)\b",
    re.IGNORECASE,
)
"""Trainee wording that ends the session; the planner answers it with the ``closing`` act."""


class ClientState(BaseModel):
    """All the planner and realizers may know about the client now (supervisors see it too)."""

    model_config = ConfigDict(frozen=True)

    rapport: float = Field(ge=0, le=1)
    resistance: float = Field(ge=0, le=1)
    stage: StageOfChange
    initial_stage: StageOfChange
    stage_progress: float = 0.0
    emotional_intensity: float = Field(ge=0, le=1)
    baseline_intensity: float = Field(ge=0, le=1)
    unlocked: list[str] = []
    """Hidden fact ids, in the order they unlocked."""
    newly_unlocked: list[str] = []
    """Facts that unlocked on the last trainee turn."""
    disclosed: list[str] = []
    """Hidden fact ids the client has already said (via a ``disclose`` act)."""
    turn: int = 0
    """Trainee turns processed so far."""
    skill_counts: dict[str, int] = {}
    closed_run: int = 0
    recent_acts: list[str] = []
    """The client's last acts, oldest first (at most ``RECENT_ACTS_KEPT``)."""
    topics_seen: list[str] = []
    """Unlock keywords the trainee has mentioned at least once, in first-mention order."""
    last_codes: list[str] = []
    trainee_closing: bool = False
    """The last trainee turn ended the session (see ``understand.closing``; ``CLOSING_CUES``
    when no understanding is given)."""
    heard: dict[str, object] = {}
    """What the client understood of the last trainee turn (acts, topic, score)."""
    topics_asked: list[str] = []
    """Topic ids the trainee has asked or reflected about, in first-mention order."""
    cbt_done: list[str] = []
    """CBT techniques the client has answered (belief_rating, evidence_against ...)."""

    def pending_disclosures(self) -> list[str]:
        """Unlocked facts the client has not said yet, oldest unlock first."""
        return [f for f in self.unlocked if f not in self.disclosed]


def _clamp(x: float, lo: float = 0.0, hi: float = 1.0) -> float:
    return max(lo, min(hi, x))


def gain_of(persona: Persona) -> float:
    """Multiplier for helpful deltas: 1.05 for an easy, open client; about 0.5 for a hard one."""
    guard = persona.style.guardedness - 0.5
    return _clamp(1.15 - 0.1 * persona.difficulty - 0.4 * guard, 0.4, 1.2)


def sensitivity_of(persona: Persona) -> float:
    """Multiplier for harmful deltas: 0.9 at difficulty 1 up to 1.3 at difficulty 5."""
    return 0.8 + 0.1 * persona.difficulty


BASELINE_INTENSITY: Final[dict[str, float]] = {"upset": 0.7, "reserved": 0.3}
DEFAULT_INTENSITY: Final = 0.45


def initial_state(persona: Persona) -> ClientState:
    """The client walking in: rapport from difficulty and guardedness, resistance from style."""
    guard = persona.style.guardedness - 0.5
    rapport = _clamp(0.45 - 0.05 * (persona.difficulty - 1) - 0.3 * guard, 0.05, 0.7)
    intensity = BASELINE_INTENSITY.get(persona.style.conversational_style, DEFAULT_INTENSITY)
    return ClientState(
        rapport=round(rapport, 4), resistance=persona.style.resistance,
        stage=persona.stage_of_change, initial_stage=persona.stage_of_change,
        emotional_intensity=intensity, baseline_intensity=intensity,
    )


def mentions(text: str, keyword: str) -> bool:
    """Case-insensitive match at a word start ("drink" in "Drinking", not in "shrink")."""
    return re.search(r"(?<!\w)" + re.escape(keyword.strip()), text, re.IGNORECASE) is not None


def fact_unlocks(fact: HiddenFact, rapport: float, counts: dict[str, int],
                 trainee_text: str, topic: str | None = None,
                 disclosed: Iterable[str] = ()) -> bool:
    """True when every condition the author gave for ``fact`` holds (AND). ``topic`` is what the
    client understood the turn to be about (``unlock.about``)."""
    cond = fact.unlock
    if cond.rapport is not None and rapport < cond.rapport:
        return False
    skills = cond.skills
    if skills is not None and sum(counts.get(c, 0) for c in skills.codes) < skills.count:
        return False
    if cond.after and not set(cond.after) <= set(disclosed):
        return False
    if cond.about and topic not in cond.about:
        return False
    return not cond.topics or any(mentions(trainee_text, t) for t in cond.topics)


def _stage_step(stage: StageOfChange, initial: StageOfChange, step: int) -> StageOfChange:
    i, start = STAGES.index(stage), STAGES.index(initial)
    j = max(0, min(i + step, len(STAGES) - 1, start + MAX_STAGE_ADVANCE))
    return STAGES[j]


def rule_applies(rule_when: str, state: ClientState, heard: Understanding | None,
                 before_rapport: float | None) -> bool:
    """Whether a persona rule's trainee cue happened on this turn (``state`` is before it)."""
    if heard is None:
        return False
    if before_rapport is not None and state.rapport >= before_rapport:
        return False
    if rule_when == "early_risk_question":
        return heard.did("risk_question")
    if rule_when == "closed_question_run":
        return state.closed_run + 1 >= CLOSED_RUN_PENALTY_FROM and heard.did("question")
    return heard.did(rule_when)  # type: ignore[arg-type]


def update_state(state: ClientState, persona: Persona, codes: Iterable[str],
                 trainee_text: str, heard: Understanding | None = None) -> ClientState:
    """The client after one coded trainee turn. Pure: same inputs, same result.

    ``heard`` (``understand.understand``) adds what the turn was about: facts unlock by topic
    (``unlock.about``), the trainee is closing only when it really closes, and persona rules that
    apply add their resistance.
    """
    codes = list(codes)
    gain, sens = gain_of(persona), sensitivity_of(persona)

    closed_run = state.closed_run + 1 if "CQ" in codes else 0
    effects = [SKILL_EFFECTS[c] for c in codes if c in SKILL_EFFECTS]
    if closed_run >= CLOSED_RUN_PENALTY_FROM:
        effects.append(CLOSED_RUN_PENALTY)

    rapport, resistance, intensity, progress = (state.rapport, state.resistance,
                                                state.emotional_intensity, state.stage_progress)
    for e in effects:
        if e.rapport > 0:
            rapport += e.rapport * gain * (1 - RAPPORT_SATURATION * _clamp(rapport))
        else:
            rapport += e.rapport * sens
        resistance += e.resistance * (gain if e.resistance < 0 else sens)
        intensity += e.intensity * (sens if e.intensity > 0 else 1.0)
    for rule in persona.rules:
        if rule.resistance and rule_applies(rule.when, state, heard, rule.before_rapport):
            resistance += rule.resistance * sens
    rapport, resistance = _clamp(rapport), _clamp(resistance)
    base = state.baseline_intensity
    intensity = intensity + _clamp(base - intensity, -INTENSITY_DRIFT, INTENSITY_DRIFT)
    intensity = _clamp(intensity)

    forward = sum(e.stage for e in effects if e.stage > 0) * gain
    backward = sum(e.stage for e in effects if e.stage < 0) * sens
    if (forward and rapport >= STAGE_FORWARD_MIN_RAPPORT
            and resistance <= STAGE_FORWARD_MAX_RESISTANCE):
        progress += forward
    progress += backward
    stage = state.stage
    if progress >= 1.0:
        stage, progress = _stage_step(stage, state.initial_stage, +1), 0.0
    elif progress <= -1.0:
        stage, progress = _stage_step(stage, state.initial_stage, -1), 0.0

    counts = dict(state.skill_counts)
    for c in codes:
        counts[c] = counts.get(c, 0) + 1

    topic = heard.topic if heard is not None else None
    newly = [f.id for f in persona.hidden_facts
             if f.id not in state.unlocked
             and fact_unlocks(f, rapport, counts, trainee_text, topic, state.disclosed)]
    topics = list(state.topics_seen)
    for f in persona.hidden_facts:
        for t in f.unlock.topics:
            if t not in topics and mentions(trainee_text, t):
                topics.append(t)

    return state.model_copy(update={
        "rapport": round(rapport, 4), "resistance": round(resistance, 4),
        "emotional_intensity": round(intensity, 4), "stage": stage,
        "stage_progress": round(progress, 4),
        "unlocked": [*state.unlocked, *newly], "newly_unlocked": newly,
        "turn": state.turn + 1, "skill_counts": counts, "closed_run": closed_run,
        "topics_seen": topics, "last_codes": codes,
        "trainee_closing": (heard.did("closing") if heard is not None
                            else CLOSING_CUES.search(trainee_text) is not None),
        "heard": heard.model_dump() if heard is not None else {},
        "topics_asked": (state.topics_asked if topic is None or topic in state.topics_asked
                         else [*state.topics_asked, topic]),
    })


def record_reply(state: ClientState, act: str, fact_id: str | None = None,
                 topic: str | None = None) -> ClientState:
    """The state after the client has spoken ``act`` (remember it; a disclosed fact is now said;
    a CBT technique answered is remembered in ``cbt_done``)."""
    disclosed = state.disclosed
    if act == "disclose" and fact_id is not None and fact_id not in disclosed:
        if fact_id not in state.unlocked:
            raise ValueError(f"fact {fact_id!r} is locked and cannot be disclosed")
        disclosed = [*disclosed, fact_id]
    recent = [*state.recent_acts, act][-RECENT_ACTS_KEPT:]
    cbt = state.cbt_done
    if act == "cbt" and topic is not None:
        cbt = [*cbt, topic]
    return state.model_copy(update={"recent_acts": recent, "disclosed": disclosed,
                                    "cbt_done": cbt})
