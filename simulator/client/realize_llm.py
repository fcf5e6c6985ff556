"""Say the planned act through a chat model, streamed token by token, keeping split brain.

The planner already decided *what* the client does; the model only voices it. Split brain is
enforced here, by construction of the prompt: the system prompt (``prompts/client_system.j2``)
receives the persona's profile, principles and style, the state in words, the act and a length
cap, and of the hidden facts only those already unlocked, plus, when the act is ``disclose``, the
one fact being disclosed. It never receives the rubric, grades, risk notes, learning objectives or
facilitator notes. The trainee's words go in as the other speaker's messages (``HumanMessage``),
never into the system prompt, so "ignore your instructions" is just something the counselor said.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from simulator.client.planner import Plan
from simulator.client.state import ClientState
from simulator.coder.labels import Utterance
from simulator.content.persona import Persona
from simulator.llm.gate import EndpointGate
from simulator.llm.limits import CallLimits, limits_for, reply_token_cap
from simulator.llm.providers import spec_of
from simulator.llm.streaming import stream_reply
from simulator.settings import load_settings

PROMPTS = Path(__file__).resolve().parent / "prompts"
TEMPLATE = "client_system.j2"

_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(PROMPTS), autoescape=False,  # noqa: S701 - a prompt, not HTML
    undefined=jinja2.StrictUndefined, trim_blocks=False, keep_trailing_newline=False)


def _level(x: float, words: tuple[str, str, str]) -> str:
    return words[0] if x < 0.35 else words[1] if x < 0.65 else words[2]


def state_in_words(persona: Persona, state: ClientState) -> dict[str, str]:
    """The numbers a model would misread, as words it can act on."""
    s = persona.style
    return {
        "rapport": _level(state.rapport, ("wary and not yet at ease", "somewhat at ease",
                                          "fairly comfortable and trusting")),
        "resistance": _level(state.resistance, ("open to what is said", "a bit defensive",
                                                "defensive and reluctant")),
        "intensity": _level(state.emotional_intensity, ("fairly calm", "noticeable",
                                                        "strong and close to the surface")),
        "verbosity": _level(s.verbosity, ("you say little", "you talk a moderate amount",
                                          "you talk a lot")),
        "guardedness": _level(s.guardedness, ("fairly open about yourself", "somewhat private",
                                              "very private")),
    }


def render_client_prompt(persona: Persona, plan: Plan, state: ClientState) -> str:
    """The system prompt for the client's next reply (only unlocked facts; see module docstring)."""
    unlocked = [persona.fact(f) for f in state.unlocked]
    disclosure = None
    if plan.act == "disclose":
        if plan.fact_id is None or plan.fact_id not in state.unlocked:
            raise ValueError(f"cannot disclose {plan.fact_id!r}: it is not unlocked")
        fact = persona.fact(plan.fact_id)
        disclosure = {"summary": fact.summary, "example": persona.fill(fact.disclosure[0])}
        unlocked = [f for f in unlocked if f.id != fact.id]
    text = _env.get_template(TEMPLATE).render(
        persona=persona, plan=plan, state=state, unlocked_facts=unlocked, disclosure=disclosure,
        levels=state_in_words(persona, state))
    return text.strip() + "\n"


def content_text(content: Any) -> str:
    """Text of a message or chunk content: a string, or a list of parts (Anthropic blocks, Gradio
    message parts with ``metadata``/``options``); non-text parts are dropped."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        out = []
        for part in content:
            if isinstance(part, str):
                out.append(part)
            elif isinstance(part, Mapping) and part.get("type", "text") in ("text", "text_delta"):
                out.append(str(part.get("text", "")))
        return "".join(out)
    return ""


def history_messages(history: Sequence[Utterance | Mapping[str, Any]]) -> list[BaseMessage]:
    """The conversation as the client model sees it: counselor -> Human, client -> AI.

    Accepts ``Utterance`` or Gradio-style ``{"role", "content", "metadata"...}`` dicts (role
    ``user`` is the trainee); metadata and options are dropped, only text is kept.
    """
    out: list[BaseMessage] = []
    for item in history:
        if isinstance(item, Utterance):
            speaker, text = item.speaker, item.text
        else:
            role = item.get("speaker") or item.get("role")
            speaker = "counselor" if role in ("counselor", "user", "human") else "client"
            text = content_text(item.get("text", item.get("content")))
        if not text.strip():
            continue
        out.append(HumanMessage(text) if speaker == "counselor" else AIMessage(text))
    return out


def client_messages(persona: Persona, plan: Plan, state: ClientState,
                    history: Sequence[Utterance | Mapping[str, Any]]) -> list[BaseMessage]:
    """System prompt + the conversation so far (ending with the trainee's turn)."""
    return [SystemMessage(render_client_prompt(persona, plan, state)), *history_messages(history)]


async def stream_client_reply(model: BaseChatModel, persona: Persona, plan: Plan,
                              state: ClientState,
                              history: Sequence[Utterance | Mapping[str, Any]],
                              role: str = "client", *, limits: CallLimits | None = None,
                              spec: str | None = None, gate: EndpointGate | None = None,
                              on_failure: Callable[[str, str], None] | None = None,
                              info: dict[str, Any] | None = None) -> AsyncIterator[str]:
    """Yield the client's reply as text pieces, capped in length and fitted to the model's
    context window (``llm.streaming.stream_reply``: limits, timeouts, retries, the endpoint gate).

    Any failure, and an empty reply, is raised as ``ModelUnavailable`` with a message the
    trainee can act on; the caller decides whether to fall back to offline.
    """
    spec = spec or spec_of(model)
    if limits is None:
        try:
            limits = limits_for(spec, load_settings())
        except ValueError:  # a fake or wrapped model with no model string: default limits
            limits = limits_for("offline", load_settings())
    messages = client_messages(persona, plan, state, history)
    cap = reply_token_cap(plan.max_words, limits.reply_max_tokens)
    async for piece in stream_reply(model, messages, limits, spec=spec, role=role,
                                    max_tokens=cap, gate=gate, on_failure=on_failure,
                                    info=info):
        yield piece


async def client_reply(model: BaseChatModel, persona: Persona, plan: Plan, state: ClientState,
                       history: Sequence[Utterance | Mapping[str, Any]]) -> str:
    """The whole reply at once (for selfplay and scripts)."""
    parts = [p async for p in stream_client_reply(model, persona, plan, state, history)]
    return "".join(parts).strip()
