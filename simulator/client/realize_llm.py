"""Say the planned act through a chat model, streamed token by token, keeping split brain.

The planner already decided *what* the client does; the model only voices it. Split brain is
enforced here, by construction of the prompt: the system prompt (``prompts/client_system.j2``)
receives the persona's profile, style and the principles that name no locked fact
(``safe_principles``), the state in words, the act (with the topic asked about, "answer it", or
the CBT technique) and a length cap, a few authored lines of the act as voice examples, and of the
hidden facts only those already unlocked, plus, when the act is ``disclose``, the one fact being
disclosed. It never receives the rubric, grades, risk notes, learning objectives or facilitator
notes. After generation ``reply_problem`` checks the reply (a locked fact leaked, by keyword or by
meaning; the role broken; far too long); the engine regenerates once with the problem named, then
falls back to the offline line. The trainee's words go in as the other speaker's messages
(``HumanMessage``), never into the system prompt, so "ignore your instructions" is just
something the counselor said.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import jinja2
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage

from simulator.client.planner import Plan
from simulator.client.realize_offline import belief_rating, candidate_lines
from simulator.client.state import ClientState
from simulator.coder.labels import Utterance
from simulator.content.persona import Persona, mentions
from simulator.content.topics import common_topics
from simulator.llm.gate import EndpointGate
from simulator.llm.limits import CallLimits, limits_for, reply_token_cap
from simulator.llm.providers import spec_of
from simulator.llm.streaming import stream_reply
from simulator.settings import defaults

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


PRINCIPLE_FACT_SIMILARITY: Final = 0.5
"""A principle this close in meaning to a locked fact's summary names it, and is left out."""
LEAK_SIMILARITY: Final = 0.65
"""A reply this close in meaning to a locked fact's disclosure line gives the fact away."""
VOICE_EXAMPLES: Final = 3
TOO_LONG: Final = 2.0
"""A reply longer than this many times the word cap is refused."""
OUT_OF_ROLE: Final = re.compile(
    r"\b(as an ai|language model|i am an assistant|i'm an assistant|system prompt"
    r"|as your counsel?lor)\b", re.IGNORECASE)


def _locked(persona: Persona, state: ClientState) -> list[Any]:
    return [f for f in persona.hidden_facts if f.id not in state.unlocked]


def safe_principles(persona: Persona, state: ClientState) -> list[str]:
    """The persona's principles and rules, without those that name a locked fact: by one of its
    keywords, or by meaning (close to its summary). Learning a principle like "never volunteers
    the shakes" would teach the model the fact before the trainee earned it."""
    texts = [*persona.principles, *(r.principle for r in persona.rules)]
    locked = _locked(persona, state)
    if not texts or not locked:
        return list(dict.fromkeys(texts))
    from simulator.client.encoder import sentence_encoder

    enc = sentence_encoder()
    sims = enc.embed(texts) @ enc.embed([f.summary for f in locked]).T
    out = []
    for i, text in enumerate(texts):
        named = any(mentions(text, k) for f in locked for k in f.keywords)
        if not named and float(sims[i].max()) < PRINCIPLE_FACT_SIMILARITY:
            out.append(text)
    return list(dict.fromkeys(out))


def voice_examples(persona: Persona, plan: Plan, state: ClientState) -> list[str]:
    """A few authored lines of the act (never one that gives away a locked fact)."""
    if plan.act == "disclose":
        return []
    lines = candidate_lines(persona, plan, state.unlocked, state)
    if not lines:
        lines = candidate_lines(persona, plan.model_copy(update={"act": "elaborate"}),
                                state.unlocked, state)
    rng = random.Random(f"{persona.id}:{plan.act}:{plan.topic}:{state.turn}")
    return rng.sample(lines, min(VOICE_EXAMPLES, len(lines)))


def topic_title(persona: Persona, topic: str | None) -> str | None:
    if topic is None:
        return None
    common = {t.id: t.title for t in common_topics()}
    return common.get(topic, topic.replace("_", " "))


def reply_problem(persona: Persona, plan: Plan, state: ClientState, reply: str) -> str | None:
    """Why ``reply`` cannot be kept, or None. Checked: a locked fact given away (one of its
    keywords, or a sentence close in meaning to one of its disclosure lines), the client
    speaking out of role, and a reply far over the word cap."""
    if not reply.strip():
        return "it was empty."
    allowed = {plan.fact_id} if plan.act == "disclose" else set()
    locked = [f for f in _locked(persona, state) if f.id not in allowed]
    for f in locked:
        word = next((k for k in f.keywords if mentions(reply, k)), None)
        if word is not None:
            return "it gave away something you are not ready to talk about yet. Leave it out."
    if locked:
        from simulator.client.encoder import sentence_encoder
        from simulator.client.understand import sentences

        enc = sentence_encoder()
        bank = [persona.fill(t) for f in locked for t in f.disclosure]
        sims = enc.embed(sentences(reply) or [reply]) @ enc.embed(bank).T
        if float(sims.max()) >= LEAK_SIMILARITY:
            return "it gave away something you are not ready to talk about yet. Leave it out."
    if OUT_OF_ROLE.search(reply):
        return f"it stepped out of role. Speak only as {persona.identity.name}."
    if len(reply.split()) > TOO_LONG * plan.max_words:
        return f"it was far too long. Use at most {plan.max_words} words."
    return None


def render_client_prompt(persona: Persona, plan: Plan, state: ClientState,
                         correction: str | None = None) -> str:
    """The system prompt for the client's next reply (only unlocked facts; see module docstring)."""
    unlocked = [persona.fact(f) for f in state.unlocked]
    disclosure = None
    if plan.act == "disclose":
        if plan.fact_id is None or plan.fact_id not in state.unlocked:
            raise ValueError(f"cannot disclose {plan.fact_id!r}: it is not unlocked")
        fact = persona.fact(plan.fact_id)
        disclosure = {"summary": fact.summary, "example": persona.fill(fact.disclosure[0])}
        unlocked = [f for f in unlocked if f.id != fact.id]
    rule = (persona.rules[plan.rule].principle
            if plan.rule is not None and plan.rule < len(persona.rules) else None)
    text = _env.get_template(TEMPLATE).render(
        persona=persona, plan=plan, state=state, unlocked_facts=unlocked, disclosure=disclosure,
        levels=state_in_words(persona, state), principles=safe_principles(persona, state),
        topic_title=topic_title(persona, plan.topic), rule=rule,
        rating=belief_rating(persona, state), voice=voice_examples(persona, plan, state),
        correction=correction)
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
                    history: Sequence[Utterance | Mapping[str, Any]],
                    correction: str | None = None) -> list[BaseMessage]:
    """System prompt + the conversation so far (ending with the trainee's turn)."""
    return [SystemMessage(render_client_prompt(persona, plan, state, correction)),
            *history_messages(history)]


async def stream_client_reply(model: BaseChatModel, persona: Persona, plan: Plan,
                              state: ClientState,
                              history: Sequence[Utterance | Mapping[str, Any]],
                              role: str = "client",
                              correction: str | None = None, *,
                              limits: CallLimits | None = None,
                              spec: str | None = None, gate: EndpointGate | None = None,
                              on_failure: Callable[[str, str], None] | None = None,
                              info: dict[str, Any] | None = None) -> AsyncIterator[str]:
    """Yield the client's reply as text pieces, capped in length and fitted to the model's
    context window (``llm.streaming.stream_reply``: limits, timeouts, retries, the endpoint gate).
    ``correction`` asks for a second try after the post-generation check refused the first.

    Any failure, and an empty reply, is raised as ``ModelUnavailable`` with a message the
    trainee can act on; the caller decides whether to fall back to offline.
    """
    spec = spec or spec_of(model)
    if limits is None:
        try:
            limits = limits_for(spec, defaults())
        except ValueError:  # a fake or wrapped model with no model string: default limits
            limits = limits_for("offline", defaults())
    messages = client_messages(persona, plan, state, history, correction)
    cap = reply_token_cap(plan.max_words, limits.reply_max_tokens)
    async for piece in stream_reply(model, messages, limits, spec=spec, role=role,
                                    max_tokens=cap, gate=gate, on_failure=on_failure,
                                    info=info):
        yield piece


async def client_reply(model: BaseChatModel, persona: Persona, plan: Plan, state: ClientState,
                       history: Sequence[Utterance | Mapping[str, Any]],
                       correction: str | None = None, **call: Any) -> str:
    """The whole reply at once (for selfplay, scripts and the regeneration after a check);
    ``call`` as for ``stream_client_reply`` (limits, gate, failure reporting)."""
    parts = [p async for p in stream_client_reply(model, persona, plan, state, history,
                                                  correction=correction, **call)]
    return "".join(parts).strip()
