"""One client engine step, the only place the turn loop is written: update, plan, say.

Practice (``service/practice.py``), self-play (``service/selfplay.py``) and the educator's
preview (``web/context.py``) all drive the client through this module, so a change to how the
client reacts lands once. A step is split where the callers differ:

* ``respond`` is pure and instant: the state after the trainee's coded turn, what the turn did
  (``understand``) and the planner's next act. Only this module calls the planner.
* ``speak`` says the plan: the offline realizer's line as one piece, or the client model's
  reply streamed piece by piece (``realize_llm``); ``checked_reply`` then checks the model's
  reply (one regeneration, then the offline line).
* ``after`` is the state once the reply has been said (acts remembered, a disclosed fact kept).

Callers keep their own storage and error handling (Practice commits the trainee's turn before
calling anything here, and stores the reply with ``after``'s state).
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any

from langchain_core.language_models.chat_models import BaseChatModel
from pydantic import BaseModel, ConfigDict

from simulator.client.planner import Plan, opening_plan, plan_next
from simulator.client.realize_offline import realize_offline
from simulator.client.state import ClientState, initial_state, record_reply, update_state
from simulator.client.understand import Understanding, understand
from simulator.coder.labels import Utterance
from simulator.content.persona import Persona

History = Sequence[Utterance | Mapping[str, Any]]


class Step(BaseModel):
    """The client's side of one turn before it speaks: state, what it heard, what it will do."""

    model_config = ConfigDict(frozen=True)

    state: ClientState
    """After the trainee's turn, before the reply (``after`` adds the reply)."""
    plan: Plan
    heard: Understanding | None = None
    """What the trainee's turn did and was about (``None`` for the opening)."""


def opening(persona: Persona) -> Step:
    """The step for the client's first words, before the trainee has said anything."""
    return Step(state=initial_state(persona), plan=opening_plan(persona))


def respond(persona: Persona, before: ClientState, codes: Iterable[str], text: str,
            rng: random.Random, history: Sequence[Utterance] = ()) -> Step:
    """The client's plan in reply to the trainee turn ``text`` coded ``codes`` (engine rubric).

    ``history`` is the conversation before ``text``; ``rng`` is the turn's seeded generator, also
    passed to ``speak`` so a replay gives the same words.
    """
    codes = list(codes)
    heard = understand(persona, text, codes, before, history)
    state = update_state(before, persona, codes, text, heard=heard)
    plan = plan_next(state, persona, codes, rng, heard=heard, before=before)
    return Step(state=state, plan=plan, heard=heard)


def after(step: Step) -> ClientState:
    """The state once the planned reply has been said."""
    return record_reply(step.state, step.plan.act, step.plan.fact_id,
                        topic=step.plan.topic)


def say_offline(persona: Persona, step: Step, used: set[str], rng: random.Random) -> str:
    """The planned act in the persona's authored words (adds the line to ``used``)."""
    return realize_offline(persona, step.plan, used, rng, unlocked=step.state.unlocked,
                           state=step.state)


async def speak(persona: Persona, step: Step, history: History, used: set[str],
                rng: random.Random, model: BaseChatModel | None = None,
                **call: Any) -> AsyncIterator[str]:
    """Say the plan: one piece offline, or the client model's reply streamed piece by piece.

    ``history`` ends with the trainee's turn (the opening has none). With a model, a failure
    after retries raises ``ModelUnavailable`` for the caller to handle. ``call`` is how the
    model is called (limits, endpoint gate, failure reporting: ``realize_llm``'s keywords).
    """
    if model is None:
        yield say_offline(persona, step, used, rng)
        return
    from simulator.client.realize_llm import stream_client_reply

    async for piece in stream_client_reply(model, persona, step.plan, step.state, history,
                                           **call):
        yield piece


def longest_reply_words(step: Step) -> int:
    """The most words a reply to ``step`` may have before the check refuses it as far too long
    (``realize_llm.TOO_LONG`` times the planned length)."""
    from simulator.client.realize_llm import TOO_LONG

    return int(TOO_LONG * step.plan.max_words)


async def checked_reply(persona: Persona, step: Step, history: History, said: str,
                        used: set[str], rng: random.Random, model: BaseChatModel,
                        **call: Any) -> str:
    """The model's reply ``said`` if it passes the check; else one regeneration told what was
    wrong; else the offline line. ``realize_llm.reply_problem`` says what is checked."""
    from simulator.client.realize_llm import client_reply, reply_problem

    problem = reply_problem(persona, step.plan, step.state, said)
    if problem is None:
        return said
    again = await client_reply(model, persona, step.plan, step.state, history,
                               correction=problem, **call)
    if reply_problem(persona, step.plan, step.state, again) is None:
        return again
    return say_offline(persona, step, used, rng)


async def reply(persona: Persona, step: Step, history: History, used: set[str],
                rng: random.Random, model: BaseChatModel | None = None) -> str:
    """The whole reply at once, checked when a model wrote it (self-play and the preview)."""
    parts = [p async for p in speak(persona, step, history, used, rng, model)]
    text = "".join(parts).strip()
    if model is None:
        return text
    return await checked_reply(persona, step, history, text, used, rng, model)


__all__ = ["History", "Plan", "Step", "after", "checked_reply", "longest_reply_words", "opening",
           "reply", "respond", "say_offline", "speak"]
