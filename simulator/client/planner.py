"""Choose the client's next act from its state, like ConsistentMI's stage-of-change actions.

The planner decides *what* the client does; a realizer (LLM or authored lines) decides only *how
it sounds*. Decisions go in priority order, and the first that applies wins:

1. the trainee is closing the session -> ``closing`` (only a real closing: "thanks for coming"
   on the first turn is a greeting, see ``understand.closing``);
2. a persona rule whose cue happened (``persona.rules``: a lecture to Alex shuts him down; an
   abrupt early risk question is minimised) -> its act, ``shut_down`` or ``minimise``;
3. the turn confronted the client -> ``react_to_confrontation``;
4. the turn gave advice or persuaded without permission -> ``react_to_advice``;
4b. the turn asked permission to share or suggest something ("Would it be OK if I...?") ->
   ``grant_permission``, with a stance (an answer to the request, not to its subject);
5. a hidden fact unlocked and has not been said yet -> ``disclose``: the one about the topic
   asked, else the oldest unlock, unless the trainee asked about another topic, which is
   answered first;
6. a CBT technique (belief rating, evidence for or against, alternative thought) and a persona
   with a cognitive model -> ``cbt``, answered from the model;
7. a question (or, when the client is open, a reflection; or an invitation to work on it
   together, coded Seek) about a topic the persona can answer -> ``answer`` with a stance
   from rapport and resistance (``stance_of``): open, guarded or deflecting; while the topic's
   hidden fact is locked the answer is never open; a topic the persona has no answer for is
   deflected;
8. the first reply of the session -> ``opening``;
9. a run of closed questions (``SHORT_ANSWER_RUN``) -> ``short_answer``;
10. otherwise a weighted draw (seeded ``rng``) over elaborate / change talk / sustain talk /
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

from simulator.client.state import ClientState, rule_applies
from simulator.client.understand import Understanding
from simulator.content.persona import CLIENT_ACTS, ClientAct, Persona, Stance

PlanAct = ClientAct | Literal["disclose", "answer", "cbt", "shut_down", "minimise"]
PLAN_ACTS: Final[tuple[str, ...]] = (*CLIENT_ACTS, "disclose", "answer", "cbt", "shut_down",
                                     "minimise")

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
    topic: str | None = None
    """The topic answered (``answer``, ``minimise``) or the CBT technique (``cbt``)."""
    stance: Stance | None = None
    """How openly the client answers (``answer``)."""
    rule: int | None = None
    """Index of the persona rule being kept (``shut_down``, ``minimise``)."""
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


def _plan(persona: Persona, act: str, reason: str, fact_id: str | None = None,
          **extra: object) -> Plan:
    return Plan.model_validate({"act": act, "fact_id": fact_id, "reason": reason,
                                "max_words": reply_length(persona, act), **extra})


OPEN_FROM_RAPPORT: Final = 0.45
OPEN_BELOW_RESISTANCE: Final = 0.5
DEFLECT_FROM_RESISTANCE_ANSWER: Final = 0.65
DEFLECT_BELOW_RAPPORT: Final = 0.15


def stance_of(state: ClientState) -> Stance:
    """Open with enough rapport and little resistance; deflecting when very defensive or with
    almost no rapport; guarded in between."""
    if state.resistance >= DEFLECT_FROM_RESISTANCE_ANSWER or state.rapport < DEFLECT_BELOW_RAPPORT:
        return "deflecting"
    if state.rapport >= OPEN_FROM_RAPPORT and state.resistance < OPEN_BELOW_RESISTANCE:
        return "open"
    return "guarded"


def answer_plan(state: ClientState, persona: Persona, topic: str, why: str) -> Plan:
    """``answer`` about ``topic``: the stance from the state, never open while the topic's hidden
    fact is locked (then guarded, so nothing is given away); ``deflect`` without an answer."""
    answer = persona.answer(topic)
    if answer is None:
        return _plan(persona, "deflect", f"{why}; the persona has no answer for {topic!r}")
    stance = stance_of(state)
    if stance == "open" and answer.fact is not None and answer.fact not in state.unlocked:
        stance = "guarded"
    return _plan(persona, "answer", f"{why}; stance {stance} (rapport {state.rapport:.2f}, "
                 f"resistance {state.resistance:.2f})", topic=topic, stance=stance)


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


def _rule_plan(state: ClientState, persona: Persona, heard: Understanding,
               before: ClientState | None) -> Plan | None:
    for i, rule in enumerate(persona.rules):
        if rule_applies(rule.when, before or state, heard, rule.before_rapport):
            return _plan(persona, rule.then, f"rule {i}: {rule.principle}", rule=i,
                         topic=heard.topic)
    return None


def plan_next(state: ClientState, persona: Persona, codes: Iterable[str],
              rng: random.Random, heard: Understanding | None = None,
              before: ClientState | None = None) -> Plan:
    """The client's act in reply to the trainee turn that produced ``state`` (via update_state).

    ``heard`` is what the client understood of the turn (without it, only the codes count);
    ``before`` is the state before the turn (persona rules compare rapport then).
    """
    codes = list(codes)
    if state.trainee_closing:
        return _plan(persona, "closing", "the trainee is ending the session")
    if heard is not None:
        ruled = _rule_plan(state, persona, heard, before)
        if ruled is not None:
            return ruled
    if "CONFRONT" in codes or (heard is not None and heard.did("confrontation")):
        return _plan(persona, "react_to_confrontation", "the trainee confronted the client")
    if "PERSUADE" in codes or (heard is not None and heard.did("advice")):
        return _plan(persona, "react_to_advice", "unsolicited advice or persuasion")
    if heard is not None and heard.did("permission") and not heard.did("closing"):
        return _plan(persona, "grant_permission", "the trainee asked permission to share or "
                     "suggest something", stance=stance_of(state))
    pending = state.pending_disclosures()
    topic = heard.topic if heard is not None else None
    if pending:
        facts = [persona.fact(f) for f in pending]
        on_topic = [f for f in facts if topic is not None and topic in f.unlock.about]
        asked_other = heard is not None and heard.asked and topic is not None
        fact = on_topic[0] if on_topic else None if asked_other else facts[0]
        if fact is not None:
            return _plan(persona, "disclose", f"hidden fact {fact.id!r} unlocked and not yet said",
                         fact_id=fact.id)
    if heard is not None and topic is not None:
        cm = persona.cognitive_model
        if heard.topic_kind == "technique":
            if cm is not None and cm.cbt is not None:
                return _plan(persona, "cbt", f"CBT technique {topic!r}", topic=topic)
        elif heard.asked or (heard.did("reflection") and stance_of(state) == "open") or \
                "SEEK" in codes:
            # a reflection about a topic earns an open answer; a guarded client's short answer
            # to one would sound like a reply to a question nobody asked. An invitation to work
            # on a topic together ("Let's make a plan for keeping you safe") is answered on it.
            if "opening" not in state.recent_acts and state.turn <= 1 and \
                    topic == "reason_for_coming":
                return _plan(persona, "opening", "first reply of the session: why they came")
            return answer_plan(state, persona, topic, f"asked about {topic!r}")
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
