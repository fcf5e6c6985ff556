"""Self-play: a counselor (scripted offline, or an LLM) talks to the simulated client, in memory.

Why: educators need to know a persona behaves as designed before trainees meet it: that skilful
work earns its hidden facts and lowers resistance, and that closed questions, advice and
confrontation do not. ``counselsim selfplay --persona ID --counselor skilled|unskilled`` runs one
session through the real engine (offline coder + rubric codes -> state -> planner -> realizer) and
reports the transcript, the facts unlocked and the final state. Nothing is stored.

The scripted counselors are data (``selfplay_counselors.yaml``): a plan of moves and lines per
move. Skilled and unskilled ask about the same persona topics at the same turns, so the
difference in what they unlock is skill, not coverage. An LLM counselor (``--counselor-model``)
sees only the trainee brief, never the persona's hidden facts.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jinja2
from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from pydantic import BaseModel, Field
from ruamel.yaml import YAML

from simulator.client import engine
from simulator.client.engine import Plan
from simulator.client.realize_llm import content_text
from simulator.client.state import ClientState
from simulator.coder.labels import Utterance
from simulator.content.persona import Persona
from simulator.llm.providers import empty_reply, spec_of, unavailable
from simulator.settings import Settings

COUNSELORS_FILE = Path(__file__).resolve().parent / "selfplay_counselors.yaml"
DEFAULT_TURNS = 16

CodeFn = Callable[[str, Sequence[Utterance]], list[str]]
"""Codes a counselor turn in context, e.g. ``["CR", "NQ"]`` (engine rubric codes)."""


class Move(BaseModel):
    codes: list[str] = Field(min_length=1, description="Codes the offline coder should give.")
    lines: list[str] = Field(min_length=1)


class CounselorScript(BaseModel):
    description: str
    plan: list[str] = Field(min_length=1)
    moves: dict[str, Move]
    llm: str


class TranscriptEntry(BaseModel):
    speaker: str
    text: str
    act: str | None = None
    """Client turns: the planner's act."""
    fact_id: str | None = None
    move: str | None = None
    """Scripted counselor turns: the intended move (compare with ``codes``)."""
    codes: list[str] = []
    """Counselor turns: the engine codes the coder gave."""
    rapport: float | None = None
    resistance: float | None = None
    stage: str | None = None


class SelfplayResult(BaseModel):
    persona: str
    counselor: str
    turns: int
    seed: int
    client_model: str
    counselor_model: str
    transcript: list[TranscriptEntry]
    unlocked_facts: list[str]
    disclosed_facts: list[str]
    final_state: ClientState


def load_counselors(path: Path = COUNSELORS_FILE) -> dict[str, CounselorScript]:
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    scripts = {k: CounselorScript.model_validate(v) for k, v in data["counselors"].items()}
    for name, s in scripts.items():
        unknown = sorted(set(s.plan) - set(s.moves))
        if unknown:
            raise ValueError(f"{path}: counselor {name!r} plan uses unknown moves {unknown}")
    return scripts


def persona_topics(persona: Persona) -> list[str]:
    """A few words naming each hidden fact's topic, in persona order: its first unlock keyword,
    or the title of its first ``unlock.about`` topic (the persona's own answer title, else the
    common topic's title)."""
    from simulator.content.topics import common_topics

    titles = {t.id: t.title for t in common_topics()}
    titles.update({a.topic: a.title for a in persona.answers if a.title})
    out = []
    for f in persona.hidden_facts:
        if f.unlock.topics:
            out.append(f.unlock.topics[0])
        elif f.unlock.about:
            out.append(titles.get(f.unlock.about[0], f.unlock.about[0].replace("_", " ")))
    return out


class ScriptedCounselor:
    """Says the plan's move for each turn, its lines in authored order (cycling per move)."""

    def __init__(self, script: CounselorScript, persona: Persona) -> None:
        self.script, self.persona = script, persona
        self.topics = persona_topics(persona)
        self.said: dict[str, int] = {}
        self.topic_turns = 0

    def next_turn(self, index: int) -> tuple[str, str]:
        """(move, text) for counselor turn ``index`` (0-based)."""
        move = self.script.plan[index % len(self.script.plan)]
        if move == "topic" and not self.topics:
            move = self.script.plan[0]
        lines = self.script.moves[move].lines
        n = self.said.get(move, 0)
        self.said[move] = n + 1
        line = lines[n % len(lines)]
        values = {"name": self.persona.identity.name}
        if move == "topic":
            values["topic"] = self.topics[self.topic_turns % len(self.topics)]
            self.topic_turns += 1
        return move, line.format(**values)


HERE = Path(__file__).resolve().parent
_env = jinja2.Environment(loader=jinja2.FileSystemLoader(HERE), autoescape=False,  # noqa: S701
                          undefined=jinja2.StrictUndefined)


async def llm_counselor_turn(model: BaseChatModel, script: CounselorScript, persona: Persona,
                             history: Sequence[Utterance]) -> str:
    """The next counselor line from an LLM that sees only the trainee brief and the dialogue."""
    system = _env.get_template("counselor_selfplay.j2").render(
        brief=persona.trainee_brief, instruction=script.llm)
    messages: list[BaseMessage] = [SystemMessage(system)]
    for u in history:  # from the counselor's side: the client is the other speaker
        messages.append(HumanMessage(u.text) if u.speaker == "client" else AIMessage(u.text))
    try:
        reply = await model.ainvoke(messages)
    except Exception as exc:
        raise unavailable(exc, spec_of(model), "counselor") from exc
    text = content_text(reply.content).strip()
    if not text:
        raise empty_reply(spec_of(model), "counselor")
    return text


def offline_code_fn(settings: Settings) -> CodeFn:
    """The engine's coding: the offline coder, mapped onto ``settings.engine_rubric`` codes."""
    from simulator.coder.offline import load_offline_coder
    from simulator.coder.rubric_codes import code_turn
    from simulator.content.library import load_library

    library = load_library(settings.persona_dirs(), settings.rubric_dirs())
    rubric = library.rubric(settings.engine_rubric)
    coder = load_offline_coder()

    def code(text: str, context: Sequence[Utterance]) -> list[str]:
        return code_turn(coder.code_counselor(text, context), text, rubric).code_list()

    return code


async def run_selfplay_async(persona: Persona, counselor: str, code: CodeFn, *,
                             turns: int = DEFAULT_TURNS, seed: int = 0,
                             client_model: BaseChatModel | None = None,
                             counselor_model: BaseChatModel | None = None,
                             scripts: dict[str, CounselorScript] | None = None) -> SelfplayResult:
    """One self-play session: the client opens, then ``turns`` counselor turns each answered."""
    scripts = scripts or load_counselors()
    if counselor not in scripts:
        raise ValueError(f"unknown counselor {counselor!r} (known: {', '.join(sorted(scripts))})")
    if turns < 1:
        raise ValueError("turns must be at least 1")
    script = scripts[counselor]
    rng = random.Random(seed)
    scripted = ScriptedCounselor(script, persona)
    used: set[str] = set()
    history: list[Utterance] = []
    transcript: list[TranscriptEntry] = []

    def client_turn(text: str, plan: Plan, st: ClientState) -> None:
        history.append(Utterance(speaker="client", text=text))
        transcript.append(TranscriptEntry(speaker="client", text=text, act=plan.act,
                                          fact_id=plan.fact_id, rapport=st.rapport,
                                          resistance=st.resistance, stage=st.stage))

    step = engine.opening(persona)
    text = await engine.reply(persona, step, history, used, rng, client_model)
    state = engine.after(step)
    client_turn(text, step.plan, state)
    for i in range(turns):
        move: str | None
        if counselor_model is None:
            move, said = scripted.next_turn(i)
        else:
            move, said = None, await llm_counselor_turn(counselor_model, script, persona, history)
        codes = code(said, list(history))
        step = engine.respond(persona, state, codes, said, rng, list(history))
        history.append(Utterance(speaker="counselor", text=said))
        transcript.append(TranscriptEntry(speaker="counselor", text=said, move=move, codes=codes))
        text = await engine.reply(persona, step, history, used, rng, client_model)
        state = engine.after(step)
        client_turn(text, step.plan, state)
    return SelfplayResult(
        persona=persona.id, counselor=counselor, turns=turns, seed=seed,
        client_model=spec_of(client_model) if client_model else "offline",
        counselor_model=spec_of(counselor_model) if counselor_model else "scripted",
        transcript=transcript, unlocked_facts=list(state.unlocked),
        disclosed_facts=list(state.disclosed), final_state=state)


def run_selfplay(persona: Persona, counselor: str, code: CodeFn, **kwargs: Any) -> SelfplayResult:
    """Synchronous wrapper of ``run_selfplay_async`` (same arguments)."""
    return asyncio.run(run_selfplay_async(persona, counselor, code, **kwargs))


def format_transcript(result: SelfplayResult, persona: Persona) -> list[str]:
    """Human-readable lines for the terminal."""
    out = []
    for e in result.transcript:
        if e.speaker == "counselor":
            out.append(f"Counselor [{' '.join(e.codes)}]: {e.text}")
        else:
            tag = f"{e.act}:{e.fact_id}" if e.fact_id else e.act
            out.append(f"{persona.identity.name} ({tag}; rapport {e.rapport:.2f}, "
                       f"resistance {e.resistance:.2f}): {e.text}")
    s = result.final_state
    out.append(f"-- unlocked {len(s.unlocked)}/{len(persona.hidden_facts)} hidden facts "
               f"{s.unlocked}; rapport {s.rapport:.2f}, resistance {s.resistance:.2f}, "
               f"stage {s.stage}")
    return out


def selfplay_command(settings: Settings, persona_id: str, counselor: str, turns: int, seed: int,
                     counselor_model: str | None, client_model: str | None,
                     ) -> tuple[list[str], dict[str, Any]]:
    """What ``counselsim selfplay`` does: (terminal lines, the JSON object)."""
    from simulator.content.library import load_library
    from simulator.llm.providers import chat_model

    library = load_library(settings.persona_dirs(), settings.rubric_dirs())
    persona = library.persona(persona_id)
    client = chat_model(client_model, settings) if client_model else None
    counsel = chat_model(counselor_model, settings) if counselor_model else None
    if counselor_model and counsel is None:
        raise ValueError(f"counselor model {counselor_model!r} is unavailable (see the warning)")
    result = run_selfplay(persona, counselor, offline_code_fn(settings), turns=turns, seed=seed,
                          client_model=client, counselor_model=counsel)
    return format_transcript(result, persona), result.model_dump(mode="json")
