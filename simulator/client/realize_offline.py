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
from simulator.content.persona import Persona
from simulator.errors import InvalidInput

FALLBACK_ACT = "short_answer"
"""Used only if every line of the planned act would reveal a locked fact (an authoring mistake)."""


class LockedFactError(InvalidInput):
    """A plan asked to disclose a hidden fact that has not been unlocked."""


def _locked_texts(persona: Persona, unlocked: Collection[str]) -> list[str]:
    return [persona.fill(t).strip().lower() for f in persona.hidden_facts if f.id not in unlocked
            for t in f.disclosure if t.strip()]


def _reveals(line: str, locked: list[str]) -> bool:
    low = line.lower()
    return any(t in low for t in locked)


def candidate_lines(persona: Persona, plan: Plan, unlocked: Collection[str]) -> list[str]:
    """Every filled line the act may use, in authored order (locked-fact lines removed)."""
    if plan.act == "disclose":
        if plan.fact_id is None or plan.fact_id not in unlocked:
            raise LockedFactError(f"cannot disclose {plan.fact_id!r}: it is not unlocked")
        return [persona.fill(t) for t in persona.fact(plan.fact_id).disclosure if t.strip()]
    locked = _locked_texts(persona, unlocked)
    lines = [persona.fill(t) for t in persona.lines_for(plan.act) if t.strip()]
    return [ln for ln in lines if not _reveals(ln, locked)]


def realize_offline(persona: Persona, plan: Plan, used_lines: set[str], rng: random.Random, *,
                    unlocked: Collection[str]) -> str:
    """One reply for ``plan``. Adds the chosen line to ``used_lines`` (the session's memory).

    ``unlocked`` is ``state.unlocked``: the realizer checks it itself rather than trusting the plan.
    """
    lines = candidate_lines(persona, plan, unlocked)
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
