"""``counselsim bench abuse``: what an attacker on the class network can do to a live server.

Starts the web app in a child process on 127.0.0.1 (``bench.load.start_server``: a throw-away
database, offline client and grader) and, through the browser's own HTTP API:

1. **Quiet**: one signed-in trainee sends turns back to back; their latency is the baseline.
2. **Login flood**: ``--connections`` clients post random user names and passwords to ``/login``
   for ``--flood-s`` seconds while the trainee keeps sending turns and a real user signs in every
   few seconds. Reports the trainee's turn latency (p50/p95 against quiet), each real sign-in's
   time, and what the attackers got (HTTP statuses, attempts per second). The attackers run in
   a process of their own (``flood``), as they would on other machines.
3. **Concurrent sends**: five tabs of one session send at once (different words), then one tab
   sends the same words twice at once (Enter then Send); counts what was stored, refused, lost
   (accepted but not in the database) and duplicated.
4. **Locked database**: another process holds the database's write lock for ``--lock-s``
   seconds; reports ``/healthz`` latency during it (the event loop must stay free) and what a
   sign-in attempted meanwhile got.

A full disk is not simulated here (it needs a filesystem of its own); ``tests/test_faults_storage``
covers the turn path on one. Loopback only; bounded by ``--timeout-s``.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import re
import secrets
import sqlite3
import statistics
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from simulator.bench.load import (
    PASSWORD,
    TRAINEE_TURNS,
    Endpoints,
    EventFailed,
    answered,
    run_event,
    start_inputs,
    start_server,
    user_name,
)


class AbuseBench(BaseModel):
    bench: str = "abuse"
    connections: int
    flood_s: float
    quiet_turn_p50_s: float | None = None
    quiet_turn_p95_s: float | None = None
    flood_turn_p50_s: float | None = None
    flood_turn_p95_s: float | None = None
    flood_turn_p95_ratio: float | None = None
    """Flood p95 / quiet p95 (target: under 2)."""
    flood_turns: int = 0
    flood_turn_errors: int = 0
    real_sign_in_s: list[float] = []
    """Each real user's sign-in during the flood, seconds (target: each under 2)."""
    attacker_attempts: int = 0
    attacker_per_s: float = 0.0
    attacker_statuses: dict[str, int] = {}
    attacker_got_a_session: int = 0
    concurrent_sent: int = 0
    concurrent_stored: int = 0
    concurrent_refused: int = 0
    concurrent_lost: int = 0
    concurrent_duplicated: int = 0
    refusal_message: str = ""
    lock_s: float = 0.0
    healthz_max_s_while_locked: float | None = None
    sign_in_while_locked: str = ""
    errors: list[str] = []


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    if len(values) == 1:
        return round(values[0], 4)
    return round(statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1], 4)


async def _signed_in(url: str, name: str, password: str) -> Any:
    import httpx

    client = httpx.AsyncClient(base_url=url, timeout=60)
    r = await client.post("/login", data={"username": name, "password": password})
    if r.status_code != 200:
        await client.aclose()
        raise RuntimeError(f"sign-in of {name} failed: HTTP {r.status_code} {r.text[:200]}")
    return client


class Trainee:
    """One signed-in trainee in one tab (a session_hash), driving the practice tab's events."""

    def __init__(self, client: Any, ep: Endpoints, open_fn: tuple[int, int]) -> None:
        self.client, self.ep, self.open_fn = client, ep, open_fn
        self.hash = secrets.token_hex(6)

    async def load(self) -> None:
        for fn, values in self.ep.page_load:
            await run_event(self.client, self.ep, self.hash, fn, values)

    async def start(self, persona_id: str) -> None:
        await run_event(self.client, self.ep, self.hash, self.ep.start, start_inputs(persona_id))

    async def open(self, session_id: str) -> None:
        await run_event(self.client, self.ep, self.hash, self.open_fn, [session_id])

    async def send(self, text: str, shown: list[Any] | None = None) -> tuple[float, Any]:
        t0 = time.perf_counter()
        data, _ = await run_event(self.client, self.ep, self.hash, self.ep.send,
                                  [None, text, shown])
        return time.perf_counter() - t0, data


SESSION_TURNS = 20
"""The timed trainee starts a new session every this many turns, in both phases.

Why: a turn late in a long session costs more than an early one (the chat history the page
re-sends grows), and the flood phase is four times longer than the quiet one. Without fresh
sessions the comparison measured session length as much as the flood: with one attacker
connection instead of 40 the "flood" p95 was still 3.25 times the quiet one."""


async def _turns_for(trainee: Trainee, seconds: float, tag: str, out: list[float],
                     errors: list[str], persona_id: str | None = None) -> None:
    deadline = time.monotonic() + seconds
    i = 0
    while time.monotonic() < deadline:
        if persona_id is not None and i and i % SESSION_TURNS == 0:
            await trainee.start(persona_id)
        text = f"{TRAINEE_TURNS[i % len(TRAINEE_TURNS)]} ({tag} {i})"
        try:
            elapsed, _ = await trainee.send(text)
            out.append(elapsed)
        except EventFailed as exc:
            errors.append(f"{tag} turn: {exc}")
        i += 1
        await asyncio.sleep(0.3)


async def _attacker(url: str, deadline: float, statuses: dict[str, int], got: list[int]) -> None:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as client:
        while time.monotonic() < deadline:
            try:
                r = await client.post("/login", data={"username": secrets.token_hex(6),
                                                      "password": secrets.token_urlsafe(12)})
                key = str(r.status_code)
                if r.status_code == 200:
                    got.append(1)
            except httpx.HTTPError as exc:
                key = type(exc).__name__
            statuses[key] = statuses.get(key, 0) + 1


def flood(url: str, connections: int, seconds: float) -> tuple[dict[str, int], int, float]:
    """The login flood, run in a process of its own: HTTP statuses, sessions the attackers got,
    and how long it ran.

    Why a process: attackers sit on other machines of the class network. In the bench's own
    process their 40 clients shared one event loop (and the GIL) with the trainee being timed,
    so part of the "slower turn" was the bench measuring itself."""
    async def run() -> tuple[dict[str, int], int, float]:
        deadline = time.monotonic() + seconds
        statuses: dict[str, int] = {}
        got: list[int] = []
        t0 = time.perf_counter()
        await asyncio.gather(*(_attacker(url, deadline, statuses, got)
                               for _ in range(connections)), return_exceptions=True)
        return statuses, len(got), time.perf_counter() - t0

    return asyncio.run(run())


async def _real_sign_ins(url: str, deadline: float, out: list[float], errors: list[str]) -> None:
    import httpx

    i = 1
    while time.monotonic() < deadline:
        await asyncio.sleep(5.0)
        t0 = time.perf_counter()
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            r = await client.post("/login", data={"username": user_name(i), "password": PASSWORD})
        if r.status_code == 200:
            out.append(round(time.perf_counter() - t0, 3))
        else:
            errors.append(f"real sign-in HTTP {r.status_code}: {r.text[:120]}")
        i = i % 3 + 1


async def _concurrent(url: str, ep: Endpoints, open_fn: tuple[int, int], persona_id: str,
                      db: Path, result: AbuseBench) -> None:
    client = await _signed_in(url, user_name(4), PASSWORD)
    try:
        first = Trainee(client, ep, open_fn)
        await first.load()
        await first.start(persona_id)
        store = sqlite3.connect(db)
        sid = store.execute("SELECT session_id FROM sessions WHERE trainee = ? ORDER BY created "
                            "DESC LIMIT 1", (user_name(4),)).fetchone()[0]
        tabs = [first] + [Trainee(client, ep, open_fn) for _ in range(4)]
        for tab in tabs[1:]:
            await tab.open(sid)
        texts = [f"Tab {i} asks what brings you in. ({secrets.token_hex(3)})" for i in range(5)]
        outcomes = await asyncio.gather(*(tab.send(t) for tab, t in zip(tabs, texts, strict=True)),
                                        return_exceptions=True)
        # A send the app refused still completes: it shows a notice and leaves the words in the
        # box. Accepted means the conversation returned ends with this text and a reply.
        took = [not isinstance(o, BaseException) and answered(o[1][0] if o[1] else None, t)
                for o, t in zip(outcomes, texts, strict=True)]
        refusals = [o for o, ok in zip(outcomes, took, strict=True) if not ok]
        if refusals:
            result.refusal_message = _refusal_text(refusals[0])
        shown = [{"role": "assistant", "content": [{"type": "text", "text": "…"}]}] * len(
            store.execute(
            "SELECT 1 FROM turns WHERE session_id = ? AND abandoned_branch IS NULL",
            (sid,)).fetchall())
        twice = f"So the evenings are the hardest part. ({secrets.token_hex(3)})"
        # the same words from the same view twice at once (one event stream per tab, so the
        # second send goes through another tab's stream; the server sees the same key)
        pair = await asyncio.gather(tabs[1].send(twice, shown), tabs[2].send(twice, shown),
                                    return_exceptions=True)
        result.errors += [f"double send: {o}"[:200] for o in pair if isinstance(o, Exception)]
        sent = [*texts, twice]
        stored = [r[0] for r in store.execute(
            "SELECT text FROM turns WHERE session_id = ? AND speaker = 'counselor'", (sid,))]
        accepted = {t for t, ok in zip(texts, took, strict=True) if ok}
        if any(not isinstance(o, BaseException) and answered(o[1][0] if o[1] else None, twice)
               for o in pair):
            accepted.add(twice)
        result.concurrent_sent = len(texts) + 2
        result.concurrent_stored = sum(1 for t in sent if t in stored)
        result.concurrent_refused = len(refusals)
        result.concurrent_lost = sum(1 for t in accepted if t not in stored)
        result.concurrent_duplicated = sum(stored.count(t) - 1 for t in sent if stored.count(t) > 1)
        speakers = [r[0] for r in store.execute(
            "SELECT speaker FROM turns WHERE session_id = ? AND abandoned_branch IS NULL "
            "ORDER BY idx", (sid,))]
        if any(a == b for a, b in zip(speakers, speakers[1:], strict=False)):
            result.errors.append(f"turns out of order: {speakers}")
        store.close()
    finally:
        await client.aclose()


def _refusal_text(outcome: Any) -> str:
    """What the app said when it refused a send (an exception, or the notice it returned)."""
    if isinstance(outcome, BaseException):
        return str(outcome)[:200]
    found = re.findall(r"changed in another window[^\"<]*|[^\"<]*one turn at a time[^\"<]*",
                       json.dumps(outcome[1]))
    return (found[0] if found else "refused (the words were kept in the box)")[:200]


async def _locked(url: str, db: Path, lock_s: float, result: AbuseBench) -> None:
    import httpx

    ready = threading.Event()

    def hold() -> None:
        conn = sqlite3.connect(db, timeout=30)
        conn.execute("BEGIN EXCLUSIVE")
        ready.set()
        time.sleep(lock_s)
        conn.rollback()
        conn.close()

    holder = threading.Thread(target=hold, daemon=True)
    holder.start()
    await asyncio.to_thread(ready.wait, 30)
    worst = 0.0

    async def sign_in() -> str:
        async with httpx.AsyncClient(base_url=url, timeout=60) as c:
            t0 = time.perf_counter()
            r = await c.post("/login", data={"username": user_name(2), "password": PASSWORD})
            return f"HTTP {r.status_code} after {time.perf_counter() - t0:.1f} s"

    attempt = asyncio.ensure_future(sign_in())
    async with httpx.AsyncClient(base_url=url, timeout=60) as c:
        end = time.monotonic() + lock_s
        while time.monotonic() < end:
            t0 = time.perf_counter()
            await c.get("/healthz")
            worst = max(worst, time.perf_counter() - t0)
            await asyncio.sleep(0.1)
    result.sign_in_while_locked = await attempt
    result.healthz_max_s_while_locked = round(worst, 4)
    await asyncio.to_thread(holder.join, 30)


async def drive(url: str, db: Path, persona_id: str, connections: int, flood_s: float,
                quiet_s: float, lock_s: float) -> AbuseBench:
    result = AbuseBench(connections=connections, flood_s=flood_s, lock_s=lock_s)
    client = await _signed_in(url, user_name(0), PASSWORD)
    try:
        config = (await client.get("/config")).json()
        ep = Endpoints.from_config(config)
        by_name = {d.get("api_name"): d for d in config["dependencies"]}
        opener = by_name["open_session"]
        open_fn = (int(opener["id"]), int(opener["targets"][0][0]))
        trainee = Trainee(client, ep, open_fn)
        await trainee.load()
        await trainee.start(persona_id)
        quiet: list[float] = []
        await _turns_for(trainee, quiet_s, "quiet", quiet, result.errors, persona_id)
        result.quiet_turn_p50_s, result.quiet_turn_p95_s = _pct(quiet, 50), _pct(quiet, 95)
        deadline = time.monotonic() + flood_s
        flooded: list[float] = []
        errors: list[str] = []
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(1, mp_context=spawn) as pool:
            attackers = asyncio.get_running_loop().run_in_executor(
                pool, flood, url, connections, flood_s)
            await trainee.start(persona_id)  # the flood's turns begin in a fresh session too
            await asyncio.gather(_turns_for(trainee, flood_s, "flood", flooded, errors,
                                            persona_id),
                                 _real_sign_ins(url, deadline - 5, result.real_sign_in_s,
                                                errors))
            statuses, got, took = await attackers
        result.flood_turns, result.flood_turn_errors = len(flooded), len(errors)
        result.errors += errors[:5]
        result.flood_turn_p50_s, result.flood_turn_p95_s = _pct(flooded, 50), _pct(flooded, 95)
        if result.flood_turn_p95_s and result.quiet_turn_p95_s:
            result.flood_turn_p95_ratio = round(result.flood_turn_p95_s
                                                / result.quiet_turn_p95_s, 2)
        result.attacker_attempts = sum(statuses.values())
        result.attacker_per_s = round(result.attacker_attempts / took, 1)
        result.attacker_statuses = dict(sorted(statuses.items()))
        result.attacker_got_a_session = got
    finally:
        await client.aclose()
    await _concurrent(url, ep, open_fn, persona_id, db, result)
    await _locked(url, db, lock_s, result)
    return result


def run_abuse_bench(connections: int = 40, flood_s: float = 60.0, quiet_s: float = 15.0,
                    lock_s: float = 10.0, timeout_s: float = 400.0) -> AbuseBench:
    if not 1 <= connections <= 200 or not 1 <= flood_s <= 600:
        raise ValueError("--connections must be 1..200 and --flood-s 1..600")
    with tempfile.TemporaryDirectory(prefix="counselsim-abuse-") as tmp:
        server, persona_id = start_server(Path(tmp), users=5, latency_ms=0, wait_s=300)
        try:
            assert server.db is not None
            return asyncio.run(asyncio.wait_for(
                drive(server.url, server.db, persona_id, connections, flood_s, quiet_s, lock_s),
                timeout_s))
        finally:
            server.stop()


def format_text(r: AbuseBench) -> str:
    return (f"login flood: {r.connections} connections for {r.flood_s:g} s, "
            f"{r.attacker_attempts} attempts ({r.attacker_per_s}/s), statuses "
            f"{r.attacker_statuses}, sessions won: {r.attacker_got_a_session}\n"
            f"trainee turn p50/p95 quiet {r.quiet_turn_p50_s}/{r.quiet_turn_p95_s} s, "
            f"during flood {r.flood_turn_p50_s}/{r.flood_turn_p95_s} s "
            f"(p95 ratio {r.flood_turn_p95_ratio}); real sign-ins: {r.real_sign_in_s} s\n"
            f"concurrent sends: {r.concurrent_sent} sent, {r.concurrent_stored} stored, "
            f"{r.concurrent_refused} refused, {r.concurrent_lost} lost, "
            f"{r.concurrent_duplicated} duplicated\n"
            f"database locked {r.lock_s:g} s: /healthz worst {r.healthz_max_s_while_locked} s, "
            f"sign-in meanwhile {r.sign_in_while_locked}"
            + (f"\nerrors: {r.errors}" if r.errors else ""))
