"""Choose the client's next act from its state, like ConsistentMI's stage-of-change actions.

The planner decides *what* the client does; a realizer (LLM or authored lines) decides only *how
it sounds*. Decisions go in priority order, and the first that applies wins:

1. the trainee is closing the session -> ``closing``;
2. the turn confronted the client -> ``react_to_confrontation``;
3. the turn gave advice or persuaded without permission -> ``react_to_advice``;
4. a hidden fact unlocked and has not been said yet -> ``disclose`` (oldest unlock first);
5. the first reply of the session -> ``opening``;
6. a run of closed questions (``SHORT_ANSWER_RUN``) -> ``short_answer``;
7. otherwise a weighted draw (seeded ``rng``) over elaborate / change talk / sustain talk /
   ambivalence / deflect / short answer: the stage of change sets the talk mix
   (``STAGE_TALK``), rapport favours change talk and elaboration, resistance favours sustain talk
   and deflection, an open question or reflection invites elaboration, and an act used in the last
   two replies is damped (``REPEAT_DAMPING``) so a session does not loop.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from typing import Final, Literal

from pydantic import BaseModel, Field

from simulator.client.state import ClientState
from simulator.content.persona import CLIENT_ACTS, ClientAct, Persona

PlanAct = ClientAct | Literal["disclose"]
PLAN_ACTS: Final[tuple[str, ...]] = (*CLIENT_ACTS, "disclose")

STAGE_TALK: Final[dict[str, dict[str, float]]] = {
    "precontemplation": {"change_talk": 0.10, "sustain_talk": 0.60, "ambivalence": 0.30},
    "contemplation": {"change_talk": 0.30, "sustain_talk": 0.30, "ambivalence": 0.40},
    "preparation": {"change_talk": 0.55, "sustain_talk": 0.15, "ambivalence": 0.30},
    "action": {"change_talk": 0.70, "sustain_talk": 0.10, "ambivalence": 0.20},
    "maintenance": {"change_talk": 0.70, "sustain_talk": 0.10, "ambivalence": 0.20},
}
"""Share of change talk, sustain talk and ambivalence at each stage of change."""

INVITING: Final[frozenset[str]] = frozenset({"OQ", "CR", "SR", "AF", "EMPHASIZE", "SEEK"})
"""Codes after which the client tends to say more (elaborate)."""
SHORT_ANSWER_RUN: Final = 2
"""From the second closed question in a row, the client answers briefly."""
REPEAT_DAMPING: Final = (0.3, 0.65)
"""Weight multipliers for an act equal to the last / second-to-last reply's act."""
DEFLECT_FROM_RESISTANCE: Final = 0.45
"""Above this resistance the client starts deflecting; the weight grows with resistance."""


class Plan(BaseModel):
    """The client's next move, recorded per turn for supervisors (never shown to trainees)."""

    act: PlanAct
    fact_id: str | None = None
    """The hidden fact to disclose (only with ``act == "disclose"``)."""
    max_words: int = Field(ge=3)
    reason: str
    """Why the planner chose this act, in words a supervisor can read."""


def reply_length(persona: Persona, act: str) -> int:
    """Word cap for a reply: 20 words for a terse client up to 70 for a verbose one, per act."""
    base = round(20 + 50 * persona.style.verbosity)
    if persona.style.conversational_style == "verbose":
        base += 15
    caps = {"short_answer": min(12, base), "deflect": min(25, base), "closing": min(35, base),
            "opening": base + 10, "disclose": base + 20}
    return caps.get(act, base)


def _plan(persona: Persona, act: str, reason: str, fact_id: str | None = None) -> Plan:
    return Plan(act=act, fact_id=fact_id, max_words=reply_length(persona, act), reason=reason)


def opening_plan(persona: Persona) -> Plan:
    """For sessions where the client speaks first."""
    return _plan(persona, "opening", "the client opens the session")


def talk_weights(state: ClientState, persona: Persona, codes: Iterable[str]) -> dict[str, float]:
    """The weights of the free draw (step 7), exposed so tests and supervisors can inspect them."""
    codes = set(codes)
    talk = STAGE_TALK[state.stage]
    r, res = state.rapport, state.resistance
    style = persona.style
    w = {
        "elaborate": 0.35 + 0.5 * r + (0.6 if codes & INVITING else 0.0)
        + (0.2 if style.conversational_style in ("verbose", "tangent") else 0.0),
        "change_talk": talk["change_talk"] * (0.4 + 1.2 * r) * (1.2 - res)
        * (1.3 if style.conversational_style == "pleasing" else 1.0),
        "sustain_talk": talk["sustain_talk"] * (0.5 + 1.2 * res),
        "ambivalence": talk["ambivalence"] * (0.7 + 0.6 * r),
        "deflect": max(0.0, res - DEFLECT_FROM_RESISTANCE) * 2.0 + 0.6 * style.tangentiality
        + (0.25 if r < 0.25 else 0.0),
        "short_answer": 0.05 + (0.3 if "CQ" in codes else 0.0)
        + (0.2 if style.conversational_style == "reserved" else 0.0),
    }
    recent = state.recent_acts
    for back, damping in enumerate(REPEAT_DAMPING, start=1):
        if len(recent) >= back and recent[-back] in w:
            w[recent[-back]] *= damping
    return w


def plan_next(state: ClientState, persona: Persona, codes: Iterable[str],
              rng: random.Random) -> Plan:
    """The client's act in reply to the trainee turn that produced ``state`` (via update_state)."""
    codes = list(codes)
    if state.trainee_closing:
        return _plan(persona, "closing", "the trainee is ending the session")
    if "CONFRONT" in codes:
        return _plan(persona, "react_to_confrontation", "the trainee confronted the client")
    if "PERSUADE" in codes:
        return _plan(persona, "react_to_advice", "unsolicited advice or persuasion")
    pending = state.pending_disclosures()
    if pending:
        fact = persona.fact(pending[0])
        return _plan(persona, "disclose", f"hidden fact {fact.id!r} unlocked and not yet said",
                     fact_id=fact.id)
    if "opening" not in state.recent_acts and state.turn <= 1:
        return _plan(persona, "opening", "first reply of the session")
    if state.closed_run >= SHORT_ANSWER_RUN:
        return _plan(persona, "short_answer", f"{state.closed_run} closed questions in a row")
    weights = talk_weights(state, persona, codes)
    acts = list(weights)
    act = rng.choices(acts, weights=[weights[a] for a in acts], k=1)[0]
    reason = (f"drawn at stage {state.stage}, rapport {state.rapport:.2f}, "
              f"resistance {state.resistance:.2f}")
    return _plan(persona, act, reason)
