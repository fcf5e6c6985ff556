"""Say the planned act in the persona's own authored words, without any model.

This is the default client on a fresh install and in every test, so it must behave well on its
own: it draws among the persona's lines for the act (a "shuffle bag": no line repeats until every
line of that act has been used in the session), fills ``{placeholders}`` from the persona's
``facts``, and is the last line of defence for split brain: it refuses to disclose a fact that is
not unlocked, and skips any authored line that would quote a locked fact's disclosure text.
"""

from __future__ import annotations

import random
from collections.abc import Collection

from simulator.client.planner import Plan
from simulator.client.state import ClientState
from simulator.content.persona import Persona, Stance, mentions
from simulator.errors import InvalidInput

FALLBACK_ACT = "short_answer"
"""Used only if every line of the planned act would reveal a locked fact (an authoring mistake)."""

PERMISSION_LINES: dict[str, list[str]] = {
    "open": ["Sure, go ahead.", "Okay. I'd like to hear it.", "Yes, please."],
    "guarded": ["Go on, then.", "Okay.", "I suppose so."],
    "deflecting": ["Fine. Go on, if you must.", "Go on. You're going to tell me anyway.",
                   "Fine. Go on."],
}
"""Stock answers to a permission request, by stance, for personas with no ``grant_permission``
lines of their own."""


class LockedFactError(InvalidInput):
    """A plan asked to disclose a hidden fact that has not been unlocked."""


def _locked_texts(persona: Persona, unlocked: Collection[str]) -> list[str]:
    return [persona.fill(t).strip().lower() for f in persona.hidden_facts if f.id not in unlocked
            for t in f.disclosure if t.strip()]


def _reveals(line: str, locked: list[str], keywords: list[str] | None = None) -> bool:
    low = line.lower()
    return any(t in low for t in locked) or any(mentions(line, k) for k in keywords or ())


def locked_keywords(persona: Persona, unlocked: Collection[str]) -> list[str]:
    """Words that give away a hidden fact not unlocked yet (its ``keywords``)."""
    return [k for f in persona.hidden_facts if f.id not in unlocked for k in f.keywords]


STANCE_FALLBACK: dict[Stance, tuple[Stance, ...]] = {
    "open": ("open", "guarded", "deflecting"),
    "guarded": ("guarded", "deflecting", "open"),
    "deflecting": ("deflecting", "guarded"),
}
"""Where an answer's lines come from when the planned stance has none (open never stands in for
a guarded answer whose topic's fact is locked: the gate is checked below)."""

RATING_STEP = 15
"""Points the belief rating falls once evidence against, and again once an alternative, is said."""
RATING_FLOOR = 10


def belief_rating(persona: Persona, state: ClientState | None) -> int:
    """The client's current belief in its main automatic thought, 0-100."""
    cm = persona.cognitive_model
    base = cm.belief_rating if cm is not None else 80
    done = set(state.cbt_done) if state is not None else set()
    drop = RATING_STEP * len(done & {"evidence_against", "alternative_thought"})
    return max(RATING_FLOOR, base - drop)


def _answer_lines(persona: Persona, plan: Plan, unlocked: Collection[str],
                  used: Collection[str] = ()) -> list[str]:
    """The planned stance's lines; when they are all used in this session (the trainee asked
    again), the next stance in ``STANCE_FALLBACK`` that still has an unsaid line."""
    answer = persona.answer(plan.topic or "")
    if answer is None:
        return []
    gated = answer.fact is not None and answer.fact not in unlocked
    chain = [st for st in STANCE_FALLBACK[plan.stance or "guarded"]
             if answer.lines(st) and not (st == "open" and gated)]
    for stance in chain:
        if any(persona.fill(t) not in used for t in answer.lines(stance)):
            return answer.lines(stance)
    # everything this topic has was said: the persona's own deflections rather than a repeat
    return [] if used else answer.lines(chain[0]) if chain else []


def _cbt_lines(persona: Persona, plan: Plan, state: ClientState | None) -> list[str]:
    cm = persona.cognitive_model
    if cm is None or cm.cbt is None:
        return []
    cbt = cm.cbt
    if plan.topic == "evidence_against" and cbt.no_evidence_against and state is not None \
            and state.rapport < 0.3:
        return list(cbt.no_evidence_against)
    lines: list[str] = list(getattr(cbt, plan.topic or "", []) or [])
    if plan.topic == "belief_rating":
        rating = str(belief_rating(persona, state))
        thought = cm.automatic_thoughts[0].rstrip(".")
        lines = [ln.replace("{rating}", rating).replace("{thought}", thought) for ln in lines]
    return lines


def act_lines(persona: Persona, plan: Plan, unlocked: Collection[str],
              state: ClientState | None = None, used: Collection[str] = ()) -> list[str]:
    """The authored lines of ``plan``'s act, unfilled (the answer bank, CBT answers and rules
    included); ``used`` are the lines already said in the session."""
    if plan.act == "answer":
        return _answer_lines(persona, plan, unlocked, used)
    if plan.act == "cbt":
        return _cbt_lines(persona, plan, state)
    if plan.act == "grant_permission":
        return persona.lines_for("grant_permission") or PERMISSION_LINES[plan.stance or "guarded"]
    if plan.act in ("shut_down", "minimise"):
        if plan.rule is not None and plan.rule < len(persona.rules):
            return list(persona.rules[plan.rule].lines)
        return persona.lines_for("deflect")
    return persona.lines_for(plan.act)


def candidate_lines(persona: Persona, plan: Plan, unlocked: Collection[str],
                    state: ClientState | None = None, used: Collection[str] = ()) -> list[str]:
    """Every filled line the act may use, in authored order (lines that would give away a
    locked fact removed: its disclosure text or one of its keywords)."""
    if plan.act == "disclose":
        if plan.fact_id is None or plan.fact_id not in unlocked:
            raise LockedFactError(f"cannot disclose {plan.fact_id!r}: it is not unlocked")
        return [persona.fill(t) for t in persona.fact(plan.fact_id).disclosure if t.strip()]
    locked = _locked_texts(persona, unlocked)
    keywords = locked_keywords(persona, unlocked)
    lines = [persona.fill(t) for t in act_lines(persona, plan, unlocked, state, used)
             if t.strip()]
    return [ln for ln in lines if not _reveals(ln, locked, keywords)]


def realize_offline(persona: Persona, plan: Plan, used_lines: set[str], rng: random.Random, *,
                    unlocked: Collection[str], state: ClientState | None = None) -> str:
    """One reply for ``plan``. Adds the chosen line to ``used_lines`` (the session's memory).

    ``unlocked`` is ``state.unlocked``: the realizer checks it itself rather than trusting the plan.
    ``state`` gives CBT answers the client's current belief rating.
    """
    lines = candidate_lines(persona, plan, unlocked, state, used_lines)
    if not lines and plan.act in ("answer", "cbt"):
        lines = candidate_lines(persona, plan.model_copy(update={"act": "deflect"}), unlocked)
    if not lines and plan.act != FALLBACK_ACT:
        lines = candidate_lines(persona, plan.model_copy(update={"act": FALLBACK_ACT}), unlocked)
    if not lines:
        return "..."
    fresh = [ln for ln in lines if ln not in used_lines]
    if not fresh:
        # every line of this act was used in this session: start a new round of the bag
        used_lines.difference_update(lines)
        fresh = lines
    line = rng.choice(fresh)
    used_lines.add(line)
    return line
