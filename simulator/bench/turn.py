"""``counselsim bench turn``: what the engine itself adds to a turn, with the models taken out.

A trainee judges the simulator by how soon the client starts answering. With a real model most of
that wait is the model's; this benchmark measures the rest: storing the trainee's turn, coding it
(offline coder), updating the client state, planning, storing the reply and starting the grader.
It drives the real ``Practice`` (temp database, shipped rubric, a persona from the configured
library or the engine's test persona) with two fakes of fixed latency:

* a client chat model (LangChain ``GenericFakeChatModel``) whose stream sleeps ``latency_ms``
  before the first token, then streams the reply word by word;
* an LLM grader (a Runnable, as ``grade_turn`` accepts) that sleeps ``grader_latency_ms`` (by
  default twice the client's) before answering a valid grade.

Figures (one JSON object): overhead per turn in ms (whole turn minus the model's own latency),
p50/p95; the ratio of time-to-first-client-token to the model's latency, p50/p95; and how many
replies arrived before their grade was stored (all of them, when grading never delays a reply).
"""

from __future__ import annotations

import asyncio
import math
import platform
import shutil
import statistics
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessageChunk
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import RunnableLambda
from pydantic import BaseModel

from simulator.content.rubric import Rubric
from simulator.settings import ROOT, Settings, defaults

TEST_PERSONA = ROOT / "tests" / "fixtures" / "engine" / "test-dana.yaml"
FAKE_SPEC = "openai-compatible:bench-fake@http://127.0.0.1:9/v1"
"""The model string the fakes are recorded under (a loopback port nothing listens on)."""
REPLY = "I guess it has been a rough few weeks, and the wine helps me switch off after a shift."

TRAINEE_TURNS = [
    "What brings you in today?",
    "It sounds like the evenings are the hardest part for you.",
    "You need to cut down on the drinking.",
    "How do you feel about what the GP said?",
    "So on the one hand the wine helps you unwind, and on the other you are worried about your "
    "health.",
    "You have kept going through some really hard shifts.",
    "Have you tried drinking less?",
    "What would you like to be different a year from now?",
    "Tell me more about Alex.",
    "It is your decision what you do next.",
]


class TurnTargets(BaseModel):
    overhead_p95_ms: float = 20.0
    ratio_p95: float = 1.05


class TurnBench(BaseModel):
    """What ``bench turn`` prints (the ``turn`` section of ``bench all``)."""

    bench: str = "turn"
    turns: int
    sessions: int
    latency_ms: float
    grader_latency_ms: float
    overhead_ms: dict[str, float]
    """Whole turn (send to stored reply) minus the model's own wait: p50, p95, max, mean."""
    first_token_ms: dict[str, float]
    first_token_overhead_ms: dict[str, float]
    """Time to the first client token minus the model's own wait."""
    ratio: dict[str, float]
    """Time to the first client token / the model's nominal latency: p50, p95, max."""
    ratio_to_actual_wait: dict[str, float]
    """The same over the wait the fake really had (a busy machine oversleeps): p50, p95, max."""
    offline_turn_ms: dict[str, float]
    """A whole turn with the offline realizer and offline grader (no model at all): p50, p95."""
    replies_before_grade: int
    """Replies that were complete while their LLM grade was still running (should be all)."""
    grades_ok: int
    targets: TurnTargets = TurnTargets()
    met: dict[str, bool]
    machine: dict[str, Any]


def machine_info() -> dict[str, Any]:
    import os

    return {"cpus": os.cpu_count(), "python": platform.python_version(),
            "platform": platform.platform(terse=True)}


def pct(values: list[float], q: float) -> float:
    """The q-th percentile (0..100), nearest-rank on the sorted values (no interpolation)."""
    if not values:
        return 0.0
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def summary(values: list[float], digits: int = 2) -> dict[str, float]:
    return {"p50": round(pct(values, 50), digits), "p95": round(pct(values, 95), digits),
            "p99": round(pct(values, 99), digits), "max": round(max(values, default=0.0), digits),
            "mean": round(statistics.fmean(values) if values else 0.0, digits)}


class LatencyChatModel(GenericFakeChatModel):
    """A fake client model: sleeps ``latency_s`` before the first token, then streams ``reply``
    word by word with no further delay. Reusable for any number of calls (the base class would
    run out of scripted messages)."""

    latency_s: float = 0.1
    reply: str = REPLY
    calls: list[tuple[float, float, float]] = []
    """(called, first token, last token) perf_counter times of every stream, for the bench."""

    def _words(self) -> Iterator[str]:
        words = self.reply.split(" ")
        for i, w in enumerate(words):
            yield w if i == 0 else " " + w

    async def _astream(self, *args: Any, **kwargs: Any
                       ) -> AsyncIterator[ChatGenerationChunk]:
        called = time.perf_counter()
        await asyncio.sleep(self.latency_s)
        first = time.perf_counter()
        for w in self._words():
            yield ChatGenerationChunk(message=AIMessageChunk(content=w))
        self.calls.append((called, first, time.perf_counter()))

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        time.sleep(self.latency_s)
        for w in self._words():
            yield ChatGenerationChunk(message=AIMessageChunk(content=w))


def valid_grade(rubric: Rubric) -> dict[str, Any]:
    """A grade the rubric's schema accepts: first code / false / minimum for each turn item."""
    codes: dict[str, Any] = {}
    for item in rubric.turn_items:
        if item.kind == "categorical":
            codes[item.id] = item.codes[0].id
        elif item.kind == "binary":
            codes[item.id] = False
        else:
            codes[item.id] = item.min
    return {"rationale": "The trainee said something; benchmark grade.", "codes": codes,
            "alternative": "What matters most to you about this?"}


def latency_grader(rubric: Rubric, latency_s: float) -> RunnableLambda[Any, Any]:
    """A fake LLM grader: answers a valid grade for ``rubric`` after ``latency_s``."""
    answer = valid_grade(rubric)

    async def grade(_messages: Any) -> dict[str, Any]:
        await asyncio.sleep(latency_s)
        return answer

    def grade_sync(_messages: Any) -> dict[str, Any]:
        time.sleep(latency_s)
        return answer

    return RunnableLambda(grade_sync, afunc=grade)


def bench_settings(folder: Path, base: Settings | None = None) -> tuple[Settings, str]:
    """Settings for a throw-away database in ``folder``; the persona id to practise with.

    Uses the configured persona library when it loads a persona, else the engine test persona.
    """
    from simulator.content.library import load_library

    base = base or defaults()
    lib = load_library(base.persona_dirs(), base.rubric_dirs())
    if lib.personas:
        return (base.model_copy(update={"db": folder / "bench.db"}), sorted(lib.personas)[0])
    personas = folder / "personas"
    personas.mkdir(exist_ok=True)
    shutil.copy(TEST_PERSONA, personas / TEST_PERSONA.name)
    return (base.model_copy(update={"db": folder / "bench.db", "personas": personas}),
            "test-dana")


async def _timed_turn(practice: Any, sid: str, trainee: str, text: str
                      ) -> tuple[float, float | None, int, bool]:
    """(total seconds, first-token seconds or None, stored turn id, client reply arrived)."""
    t0 = time.perf_counter()
    first: float | None = None
    turn_id = -1
    ok = False
    async for ev in practice.turn(sid, trainee, text):
        if ev.kind == "stored":
            turn_id = int(ev.data["turn_id"])
        elif ev.kind == "token" and first is None:
            first = time.perf_counter() - t0
        elif ev.kind == "client":
            ok = True
        elif ev.kind == "error":
            raise RuntimeError(f"benchmark turn failed: {ev.text}")
    return time.perf_counter() - t0, first, turn_id, ok


def run_turn_bench(turns: int = 200, latency_ms: float = 100.0,
                   grader_latency_ms: float | None = None, turns_per_session: int = 20,
                   warmup: int = 5, settings: Settings | None = None) -> TurnBench:
    """Measure ``turns`` turns (after ``warmup`` unmeasured ones) in a temporary database."""
    from simulator.service.practice import Practice

    if turns < 1:
        raise ValueError("--turns must be at least 1")
    if latency_ms <= 0:
        raise ValueError("--latency-ms must be positive (the ratio divides by it)")
    grader_ms = 2 * latency_ms if grader_latency_ms is None else grader_latency_ms
    latency_s = latency_ms / 1000
    with tempfile.TemporaryDirectory(prefix="counselsim-bench-") as tmp:
        s, persona_id = bench_settings(Path(tmp), settings)
        offline_s = s.model_copy(update={"client_model": "offline", "grader_model": "offline"})
        practice = Practice.from_settings(offline_s)
        try:
            rubric = practice.library.rubric(s.rubric)
            practice.client_model = LatencyChatModel(messages=iter(()), latency_s=latency_s)
            practice.grader_model = latency_grader(rubric, grader_ms / 1000)  # type: ignore[assignment]
            practice.settings = s.model_copy(update={"client_model": FAKE_SPEC,
                                                     "grader_model": FAKE_SPEC})
            return asyncio.run(_measure(practice, persona_id, turns, warmup, turns_per_session,
                                        latency_s, grader_ms))
        finally:
            practice.store.close()


async def _measure(practice: Any, persona_id: str, turns: int, warmup: int,
                   turns_per_session: int, latency_s: float, grader_ms: float) -> TurnBench:
    overhead: list[float] = []
    first_ms: list[float] = []
    ratios: list[float] = []
    ratios_actual: list[float] = []
    first_overhead: list[float] = []
    before_grade = 0
    sessions = 0
    sid = ""
    done_in_session = turns_per_session
    measured: list[int] = []
    for n in range(warmup + turns):
        if done_in_session >= turns_per_session:
            sid = practice.start("bench", persona_id)
            sessions += 1
            done_in_session = 0
        text = TRAINEE_TURNS[n % len(TRAINEE_TURNS)]
        total, first, turn_id, _ok = await _timed_turn(practice, sid, "bench", text)
        done_in_session += 1
        if n < warmup:
            continue
        measured.append(turn_id)
        if not _graded(practice, sid, turn_id):
            before_grade += 1
        called, model_first, _last = practice.client_model.calls[-1]
        model_wait = model_first - called  # the fake's own sleep, as the scheduler served it
        assert first is not None
        overhead.append((total - model_wait) * 1000)
        first_overhead.append((first - model_wait) * 1000)
        first_ms.append(first * 1000)
        ratios.append(first / latency_s)
        ratios_actual.append(first / model_wait)
    await practice.wait_for_grades()
    graded = {g.turn_id for s in _session_ids(practice) for g in practice.store.grades(s)
              if g.status == "ok"}
    grades_ok = sum(1 for t in measured if t in graded)

    offline_ms = await _offline_turns(practice, persona_id, min(turns, 100), turns_per_session)
    targets = TurnTargets()
    return TurnBench(
        turns=turns, sessions=sessions, latency_ms=latency_s * 1000, grader_latency_ms=grader_ms,
        overhead_ms=summary(overhead), first_token_ms=summary(first_ms),
        first_token_overhead_ms=summary(first_overhead),
        ratio={k: round(v, 4) for k, v in summary(ratios, 4).items()},
        ratio_to_actual_wait={k: round(v, 4) for k, v in summary(ratios_actual, 4).items()},
        offline_turn_ms=summary(offline_ms), replies_before_grade=before_grade,
        grades_ok=grades_ok, targets=targets,
        met={"overhead_p95": pct(overhead, 95) < targets.overhead_p95_ms,
             "ratio_p95": pct(ratios, 95) < targets.ratio_p95,
             "grading_never_delays_reply": before_grade == turns},
        machine=machine_info())


def _graded(practice: Any, sid: str, turn_id: int) -> bool:
    return any(g.turn_id == turn_id for g in practice.store.grades(sid))


def _session_ids(practice: Any) -> list[str]:
    return [s.session_id for s in practice.store.list_sessions(trainee="bench")]


async def _offline_turns(practice: Any, persona_id: str, turns: int,
                         turns_per_session: int) -> list[float]:
    """Whole turns with no model at all (offline realizer, offline grader in line)."""
    client, grader = practice.client_model, practice.grader_model
    practice.client_model = practice.grader_model = None
    out: list[float] = []
    try:
        sid = ""
        for n in range(turns):
            if n % turns_per_session == 0:
                sid = practice.start("bench-offline", persona_id)
            total, _first, _tid, _ok = await _timed_turn(
                practice, sid, "bench-offline", TRAINEE_TURNS[n % len(TRAINEE_TURNS)])
            out.append(total * 1000)
    finally:
        practice.client_model, practice.grader_model = client, grader
    return out


def format_text(r: TurnBench) -> str:
    o, q, f = r.overhead_ms, r.ratio, r.first_token_overhead_ms
    return (f"{r.turns} turns in {r.sessions} sessions, fake client {r.latency_ms:g} ms, "
            f"fake grader {r.grader_latency_ms:g} ms\n"
            f"  engine overhead per turn: p50 {o['p50']} ms, p95 {o['p95']} ms "
            f"(target < {r.targets.overhead_p95_ms:g})\n"
            f"  of which before the first token: p50 {f['p50']} ms, p95 {f['p95']} ms\n"
            f"  first token / model latency: p50 {q['p50']}, p95 {q['p95']} "
            f"(target < {r.targets.ratio_p95:g})\n"
            f"  replies complete before their grade: {r.replies_before_grade}/{r.turns}; "
            f"grades ok afterwards: {r.grades_ok}/{r.turns}\n"
            f"  whole offline turn: p50 {r.offline_turn_ms['p50']} ms, "
            f"p95 {r.offline_turn_ms['p95']} ms")
