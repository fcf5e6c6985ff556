"""``counselsim bench turn --single-slot``: client and LLM grader on one single-slot server.

The common local set-up (one llama.cpp server for both roles) is where grading could delay the
client: the server answers one request at a time. This benchmark runs the real path end to end:
``Practice`` with ``ChatOpenAI`` for the client *and* the grader, over HTTP to the loopback stub
server (``tests/stub_llm_server.py``) set to one slot and a fixed latency before every answer's
first byte (the model's own time). Turns follow each other with ``think_ms`` between them (0: the
next turn is sent the moment the reply is stored, the hardest case: the previous turn's grade is
then always running when the next reply needs the slot).

Figures: time to the client's first token over the model latency (p50/p95), lost turns (a
trainee turn left without a stored client reply), grades ok once the queue drains, and how many
grade requests were preempted (cancelled and sent again) to let a reply through.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from simulator.bench.turn import (
    TRAINEE_TURNS,
    bench_settings,
    machine_info,
    pct,
    summary,
    valid_grade,
)
from simulator.settings import ROOT, ModelSettings

REPLY = "I guess it has been a rough few weeks, and the wine helps me switch off after a shift."


class SingleSlotTargets(BaseModel):
    ratio_p95: float = 1.1
    lost_turns: int = 0


class SingleSlotBench(BaseModel):
    bench: str = "turn-single-slot"
    turns: int
    latency_ms: float
    think_ms: float
    first_token_ms: dict[str, float]
    ratio: dict[str, float]
    """Time to the first client token / the model latency: p50, p95, max."""
    to_server_ms: dict[str, float] = {}
    """From sending the turn to the client's request reaching the server (engine + SDK + any
    wait for the endpoint's gate, i.e. for a running grade to step aside)."""
    slot_wait_ms: dict[str, float] = {}
    """How long the client's request then waited at the server for its one slot."""
    lost_turns: int
    errors: list[str]
    grades_ok: int
    grade_requests: int
    preempted_grades: int
    server_max_running: int
    """Most requests the server ever ran at once (1: the slot was never shared)."""
    targets: SingleSlotTargets = SingleSlotTargets()
    met: dict[str, bool]
    machine: dict[str, Any]
    measured: str = ""
    """When (UTC), and the machine's load average over the run's last minute: on a shared
    machine the engine's share of the wait grows with the load."""
    load_average_1min: float | None = None
    sent_at: list[float] = Field(default=[], exclude=True)
    """``perf_counter`` when each measured turn was sent (to match the server's records)."""


def _stub_module() -> Any:
    """The loopback stub server lives with the tests (it is test equipment, not product)."""
    tests = str(ROOT / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    import stub_llm_server

    return stub_llm_server


def run_single_slot_bench(turns: int = 100, latency_ms: float = 300.0, think_ms: float = 0.0,
                          turns_per_session: int = 20, warmup: int = 3) -> SingleSlotBench:
    from simulator.service.practice import Practice

    if turns < 1 or latency_ms <= 0:
        raise ValueError("--turns must be at least 1 and --latency-ms positive")
    stub_mod = _stub_module()
    with tempfile.TemporaryDirectory(prefix="counselsim-bench-") as tmp, \
            stub_mod.StubLLMServer(latency_s=latency_ms / 1000, slots=1,
                                   served_models=["bench"]) as stub:
        s, persona_id = bench_settings(Path(tmp))
        spec = f"openai-compatible:bench@{stub.openai_base_url}"
        # no client-side rate limit: the server's one slot is the limit being measured
        s = s.model_copy(update={"client_model": spec, "grader_model": spec, "max_retries": 1,
                                 "requests_per_second": 1000.0,
                                 "models": {spec: ModelSettings(max_concurrency=1)}})
        practice = Practice.from_settings(s)
        answer = json.dumps(valid_grade(practice.library.rubric(s.rubric)))

        def respond(req: Any) -> Any:
            if isinstance(req.body, dict) and req.body.get("response_format"):
                return stub_mod.Reply(answer)
            return stub_mod.Reply(REPLY)

        stub.responder = respond
        try:
            result = asyncio.run(_measure(practice, persona_id, turns, latency_ms, think_ms,
                                          turns_per_session, warmup))
        finally:
            practice.store.close()
        grade_requests = sum(1 for r in stub.requests
                             if isinstance(r.body, dict) and r.body.get("response_format"))
        client_requests = [r for r in stub.requests if r.method == "POST" and r.stream]
        measured = client_requests[len(client_requests) - turns:]
        starts = result.sent_at
        to_server = [(r.arrived - t0) * 1000 for r, t0 in zip(measured, starts, strict=False)]
        slot_wait = [(r.started - r.arrived) * 1000 for r in measured]
        return result.model_copy(update={"grade_requests": grade_requests,
                                         "server_max_running": stub.max_running,
                                         "to_server_ms": summary(to_server),
                                         "slot_wait_ms": summary(slot_wait)})


async def _measure(practice: Any, persona_id: str, turns: int, latency_ms: float,
                   think_ms: float, turns_per_session: int, warmup: int) -> SingleSlotBench:
    from simulator.llm.gate import gate_for
    from simulator.llm.limits import endpoint_key

    first_ms: list[float] = []
    sent_at: list[float] = []
    errors: list[str] = []
    sessions: list[str] = []
    sid = practice.start("bench", persona_id) if warmup else ""  # not counted
    for n in range(-warmup, turns):  # warm-up turns (n < 0): first connections, coder caches
        if n >= 0 and n % turns_per_session == 0:
            sid = practice.start("bench", persona_id)
            sessions.append(sid)
        t0 = time.perf_counter()
        if n >= 0:
            sent_at.append(t0)
        first: float | None = None
        async for ev in practice.turn(sid, "bench", TRAINEE_TURNS[n % len(TRAINEE_TURNS)]):
            if ev.kind == "token" and first is None:
                first = time.perf_counter() - t0
            elif ev.kind == "error" and n >= 0:
                errors.append(ev.text)
        if first is not None and n >= 0:
            first_ms.append(first * 1000)
        if think_ms:
            await asyncio.sleep(think_ms / 1000)
    await practice.wait_for_grades()
    gate = gate_for(endpoint_key(practice.settings.client_model), 1)
    lost = 0
    grades_ok = 0
    for s in sessions:
        current = practice.store.current_turns(s)
        for i, t in enumerate(current):
            if t.speaker == "counselor" and (i + 1 >= len(current)
                                             or current[i + 1].speaker != "client"):
                lost += 1
        grades_ok += sum(1 for g in practice.store.grades(s) if g.status == "ok")
    ratios = [f / latency_ms for f in first_ms]
    targets = SingleSlotTargets()
    return SingleSlotBench(
        turns=turns, latency_ms=latency_ms, think_ms=think_ms, first_token_ms=summary(first_ms),
        ratio={k: round(v, 4) for k, v in summary(ratios, 4).items()}, lost_turns=lost,
        errors=errors[:5], grades_ok=grades_ok, grade_requests=0,
        preempted_grades=gate.preemptions, server_max_running=0, targets=targets,
        met={"ratio_p95": bool(ratios) and pct(ratios, 95) <= targets.ratio_p95,
             "lost_turns": lost == targets.lost_turns},
        machine=machine_info(), sent_at=sent_at,
        measured=datetime.now(UTC).isoformat(timespec="seconds"),
        load_average_1min=round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None)


def format_text(r: SingleSlotBench) -> str:
    q = r.ratio
    return (f"{r.turns} turns, client and LLM grader on one single-slot server "
            f"({r.latency_ms:g} ms before each answer), think time {r.think_ms:g} ms\n"
            f"  first client token / model latency: p50 {q['p50']}, p95 {q['p95']} "
            f"(target <= {r.targets.ratio_p95:g})\n"
            f"  turn sent -> client request at the server: p50 {r.to_server_ms.get('p50')} ms, "
            f"p95 {r.to_server_ms.get('p95')} ms; then waiting for the slot: p50 "
            f"{r.slot_wait_ms.get('p50')} ms, p95 {r.slot_wait_ms.get('p95')} ms\n"
            f"  lost turns: {r.lost_turns}; errors: {len(r.errors)}\n"
            f"  grades ok: {r.grades_ok}/{r.turns} after {r.grade_requests} grade requests "
            f"({r.preempted_grades} preempted by a reply); server ran at most "
            f"{r.server_max_running} request(s) at once\n"
            f"  measured {r.measured}, load average {r.load_average_1min} on "
            f"{r.machine.get('cpus')} cores")
