"""The educator's preview: a persona as edited, held in memory, talking through the same engine
step as a real session (``client/engine.py``), with the configured client model (offline when
none). Replayed from the start each time with fixed seeds, so it needs no stored state."""

from __future__ import annotations

import random

from simulator.client import engine
from simulator.coder.labels import Utterance
from simulator.coder.rubric_codes import code_turn
from simulator.content.persona import Persona
from simulator.content.rubric import Rubric
from simulator.service.practice import Practice


async def preview_replies(practice: Practice, rubric: Rubric, persona: Persona,
                          said: list[str]) -> list[str]:
    """Replies of ``persona`` to the trainee turns ``said``: the opening, then one per turn.

    ``rubric`` is the engine rubric whose codes drive the client (as in practice).
    """
    used: set[str] = set()
    step = engine.opening(persona)
    opening = engine.say_offline(persona, step, used, random.Random(f"preview:{persona.id}:0"))
    state = engine.after(step)
    replies = [opening]
    history = [Utterance(speaker="client", text=opening)]
    for i, text in enumerate(said, start=1):
        labels = practice.coder.code_counselor(text, history)
        codes = code_turn(labels, text, rubric).code_list()
        rng = random.Random(f"preview:{persona.id}:{i}")
        step = engine.respond(persona, state, codes, text, rng, history)
        history.append(Utterance(speaker="counselor", text=text))
        reply = await engine.reply(persona, step, history, used, rng, practice.client_model)
        state = engine.after(step)
        replies.append(reply)
        history.append(Utterance(speaker="client", text=reply))
    return replies


__all__ = ["preview_replies"]
