"""``counselsim bench load``: a whole class practising at once, through the browser's own HTTP API.

Starts the web app (``simulator.web.app.build_app``) in a child process on 127.0.0.1 with a
throw-away database and N trainee accounts, or targets ``--url`` (loopback only), and runs N
simulated trainees concurrently. Each one does what the browser does: ``POST /login``, then for
every click a ``POST /gradio_api/queue/join`` (the event's ``fn_index`` and ``trigger_id`` read
from ``/config``, a per-tab ``session_hash``) and reads the event's server-sent events from
``GET /gradio_api/queue/data`` until ``process_completed``. It starts a session, then sends T turns
with a pause ("think time", default 10 s: reading the client's reply and typing the next turn)
between them; the class arrives over ``--ramp-ms`` (default 10 s) rather than in one instant.

The client model is a fake of fixed latency (``--latency-ms``, default 300) in the child, and the
grader a fake LLM grader of twice that latency, so the figures are the app's own cost on top of a
model; ``--latency-ms 0`` uses the offline realizer and grader instead.

``--replicas N`` starts N app processes on one database (``--db``: a ``postgresql://...`` URL of
an empty database, or by default a throw-away SQLite file) and spreads the trainees over them
round-robin, as a sticky reverse proxy would (docs/deployment.md).

Reports turns/s, latency p50/p95/p99 (click to completed reply) and the same minus the model's
latency, errors, and **lost turns**: turns whose ``queue/join`` was accepted but whose text is not
in the database afterwards (each turn carries a unique tag). Bounded: N <= 500, T <= 100, and a
hard deadline (``--timeout-s``) after which every trainee is stopped and the child killed.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import secrets
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import BaseModel

from simulator.bench.turn import TRAINEE_TURNS, machine_info, pct, summary
from simulator.settings import ModelSettings, Settings, defaults

MAX_USERS = 500
MAX_TURNS = 100
PASSWORD = "bench-" + "trainee-pass"  # noqa: S105 - a throw-away account in a temp database
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


class LoadTargets(BaseModel):
    users: int = 100
    beyond_model_p95_ms: float = 500.0
    lost_turns: int = 0


class LoadBench(BaseModel):
    """What ``bench load`` prints (the ``load`` section of ``bench all``)."""

    bench: str = "load"
    users: int
    turns_per_user: int
    model_latency_ms: float
    think_ms: float
    """Mean pause between a trainee's turns (reading the reply, typing the next turn)."""
    ramp_ms: float
    """The trainees arrive (sign in, open the page, start) spread over this time."""
    server: str
    """``started`` (a child process on 127.0.0.1) or ``external`` (``--url``)."""
    replicas: int = 1
    """App processes the trainees were spread over (``--replicas``)."""
    backend: str = "sqlite"
    """The database the started app processes shared: ``sqlite`` or ``postgresql``."""
    duration_s: float
    turns_sent: int
    turns_ok: int
    errors: int
    error_samples: list[str]
    connection_retries: int
    """Page-load requests that met a dropped connection and were sent again (as a browser
    reload would); turns are never retried."""
    lost_turns: int | None
    """Sent (join accepted) but not in the database afterwards; None when it could not be read."""
    unanswered_turns: int | None
    """Stored, but with no client reply after them in the database."""
    turns_per_s: float
    latency_ms: dict[str, float]
    beyond_model_ms: dict[str, float]
    first_update_ms: dict[str, float]
    """Click to the first streamed update (the trainee's own message echoed back)."""
    timed_out: bool
    targets: LoadTargets = LoadTargets()
    met: dict[str, bool]
    machine: dict[str, Any]


# ---------------------------------------------------------------- the server under test


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve_child(config_path: str) -> None:
    """Entry point of the child process: the real web app with fake-latency models."""
    import uvicorn

    from simulator.bench.turn import FAKE_SPEC, LatencyChatModel, latency_grader
    from simulator.service.practice import Practice
    from simulator.web.app import build_app

    cfg = json.loads(Path(config_path).read_text())
    settings = Settings.model_validate(cfg["settings"])
    practice = Practice.from_settings(settings)
    latency_s = float(cfg["latency_ms"]) / 1000
    if latency_s > 0:
        practice.client_model = LatencyChatModel(messages=iter(()), latency_s=latency_s)
        practice.grader_model = latency_grader(  # type: ignore[assignment]
            practice.library.rubric(settings.rubric), 2 * latency_s)
        # The fakes answer any number at once, like a hosted model: measured is the app's own
        # capacity. Under its loopback address a fake would count as one local server with
        # one slot (llm.limits), and 100 trainees would queue for it (3 replies a second).
        practice.settings = settings.model_copy(update={
            "client_model": FAKE_SPEC, "grader_model": FAKE_SPEC,
            "models": {**settings.models, FAKE_SPEC: ModelSettings(max_concurrency=1024)}})
        # nothing listens at the fake's address: the header's availability checks would probe
        # it (and load the SDKs to classify the refusal) on page loads, which no class pays
        practice.availability = None
    app, _ctx = build_app(settings, practice)
    uvicorn.run(app, host="127.0.0.1", port=int(cfg["port"]), log_level="error",
                server_header=False, access_log=False)


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes] | None = None
    db: Path | None = None
    """The SQLite file (None on PostgreSQL: see ``target``)."""
    target: str | Path | None = None
    """The database, whichever backend (for counting lost turns)."""

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(folder: Path, users: int, latency_ms: float,
                 base: Settings | None = None, wait_s: float = 120.0) -> tuple[Server, str]:
    """Create the trainees in a fresh database in ``folder`` and start the app on 127.0.0.1."""
    servers, persona_id = start_servers(folder, users, latency_ms, base, wait_s=wait_s)
    return servers[0], persona_id


def start_servers(folder: Path, users: int, latency_ms: float, base: Settings | None = None,
                  *, replicas: int = 1, db: str | None = None, wait_s: float = 120.0
                  ) -> tuple[list[Server], str]:
    """Create the trainees in a fresh database (``db``, which must be empty, or a new SQLite
    file in ``folder``) and start ``replicas`` app processes on it, on 127.0.0.1."""
    from simulator.bench.turn import bench_settings
    from simulator.service.accounts import hash_password
    from simulator.store import open_store

    settings, persona_id = bench_settings(folder, base)
    settings = settings.model_copy(update={"client_model": "offline",
                                           "grader_model": "offline"})
    if db is not None:
        settings = settings.model_copy(update={"db": Settings(db=db).db})
    store = open_store(settings.db)
    try:
        if store.count_users():
            raise ValueError("--db must be an empty database: the bench creates its own "
                             "accounts and counts every turn in it")
        hashed = hash_password(PASSWORD)
        for i in range(users):
            store.add_user(user_name(i), "trainee", cohort="bench", password_hash=hashed)
    finally:
        store.close()
    servers: list[Server] = []
    try:
        for n in range(replicas):
            servers.append(_start_child(folder, settings, latency_ms, n))
        for server in servers:  # started together, waited for together
            _wait_ready(server, folder, wait_s)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers, persona_id


def _start_child(folder: Path, settings: Settings, latency_ms: float, n: int) -> Server:
    port = free_port()
    suffix = "" if n == 0 else f"-{n}"
    config = folder / f"server{suffix}.json"
    config.write_text(json.dumps({"settings": settings.model_dump(mode="json"),
                                  "latency_ms": latency_ms, "port": port}))
    log = (folder / f"server{suffix}.log").open("wb")
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", "import sys; from simulator.bench.load import _serve_child; "
         "_serve_child(sys.argv[1])", str(config)],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    sqlite_file = settings.db if isinstance(settings.db, Path) else None
    return Server(url=f"http://127.0.0.1:{port}", process=child, db=sqlite_file,
                  target=settings.db)


def _wait_ready(server: Server, folder: Path, wait_s: float) -> None:
    import httpx

    assert server.process is not None
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            logs = "".join(f.read_text(errors="replace") for f in folder.glob("server*.log"))
            raise RuntimeError("the web app exited while starting: " + logs[-2000:])
        try:
            if httpx.get(server.url + "/healthz", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the web app did not answer within {wait_s:.0f} s")


def user_name(i: int) -> str:
    return f"bench{i:03d}"


def check_loopback(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or parts.hostname not in LOOPBACK:
        raise ValueError(f"--url must be a loopback address (127.0.0.1, localhost), not {url!r}")
    return url.rstrip("/")


# ---------------------------------------------------------------- one simulated trainee


@dataclass
class Endpoints:
    """fn_index and trigger_id of the practice tab's events, read from ``/config``."""

    start: tuple[int, int]
    send: tuple[int, int]
    page_load: list[tuple[tuple[int, int], list[Any]]] = field(default_factory=list)
    """The events a browser fires when the page opens (they fill the persona dropdown)."""
    api_prefix: str = "/gradio_api"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Endpoints:
        by_name = {d.get("api_name"): d for d in config["dependencies"]}
        try:
            start, send = by_name["start_fn"], by_name["send_fn"]
        except KeyError as e:
            raise RuntimeError(f"the web app has no {e.args[0]} event (practice tab changed?)") \
                from None
        initial = {c["id"]: (c.get("props") or {}).get("value") for c in config["components"]}
        loads = [((int(d["id"]), int(t[0])), [initial.get(i) for i in d.get("inputs", [])])
                 for d in config["dependencies"]
                 for t in d.get("targets", []) if t[1] == "load" and d.get("backend_fn")]
        return cls(start=(int(start["id"]), int(start["targets"][0][0])),
                   send=(int(send["id"]), int(send["targets"][0][0])), page_load=loads,
                   api_prefix=config.get("api_prefix", "/gradio_api"))


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    first_updates: list[float] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    ok: int = 0
    errors: int = 0
    retries: int = 0
    samples: list[str] = field(default_factory=list)

    def error(self, message: str) -> None:
        self.errors += 1
        if len(self.samples) < 5:
            self.samples.append(message[:300])


class EventFailed(RuntimeError):
    pass


class JoinFailed(EventFailed):
    """The join request itself met a dropped connection: the server never took the event."""


async def run_event(client: Any, ep: Endpoints, session_hash: str, fn: tuple[int, int],
                    data: list[Any], on_sent: Any = None) -> tuple[Any, float | None]:
    """One click, as the browser does it: join the queue, read the event's SSE stream.

    Returns (the completed output data, seconds to the first update or None)."""
    import httpx

    t0 = time.perf_counter()
    try:
        r = await client.post(f"{ep.api_prefix}/queue/join", json={
            "data": data, "event_data": None, "fn_index": fn[0], "trigger_id": fn[1],
            "session_hash": session_hash})
    except httpx.TransportError as exc:
        raise JoinFailed(f"queue/join: {type(exc).__name__}: {exc}") from exc
    if r.status_code != 200:
        raise EventFailed(f"queue/join HTTP {r.status_code}: {r.text[:200]}")
    event_id = r.json().get("event_id")
    if on_sent is not None:
        on_sent()
    first: float | None = None
    async with client.stream("GET", f"{ep.api_prefix}/queue/data",
                             params={"session_hash": session_hash}) as stream:
        if stream.status_code != 200:
            raise EventFailed(f"queue/data HTTP {stream.status_code}")
        async for line in stream.aiter_lines():
            if not line.startswith("data:"):
                continue
            msg = json.loads(line[5:])
            if msg.get("event_id") not in (None, event_id):
                continue
            kind = msg.get("msg")
            if kind == "process_generating" and first is None:
                first = time.perf_counter() - t0
            elif kind == "process_completed":
                output = msg.get("output") or {}
                if not msg.get("success", False):
                    raise EventFailed(f"event failed: {str(output.get('error'))[:200]}")
                return output.get("data"), first
            elif kind == "unexpected_error":
                raise EventFailed(f"unexpected error: {msg.get('message')}")
    raise EventFailed("the event stream ended before the event completed")


def start_inputs(persona_id: str) -> list[Any]:
    """The start screen's inputs as a browser sends them: the client, the rubric (None: the
    persona's default) and the mode."""
    return [persona_id, None, "coach"]


def turn_tag(user: int, turn: int) -> str:
    return f"(ref u{user:03d}t{turn:03d})"


async def trainee(i: int, url: str, ep: Endpoints, persona_id: str, turns: int,
                  think_s: float, latency_s: float, tally: Tally, password: str,
                  request_timeout_s: float, arrive_s: float = 0.0) -> None:
    import httpx

    rng = random.Random(i)
    await asyncio.sleep(arrive_s)
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them (a browser
    # retries a request that meets a connection closed under it; httpx does not).
    limits = httpx.Limits(max_connections=4, max_keepalive_connections=2, keepalive_expiry=3.0)
    async with httpx.AsyncClient(base_url=url, timeout=request_timeout_s, limits=limits) as client:
        r = await client.post("/login", data={"username": user_name(i), "password": password})
        if r.status_code != 200:
            tally.error(f"login HTTP {r.status_code}")
            return
        session_hash = secrets.token_hex(6)
        stage = "page load"
        try:
            for fn, values in ep.page_load:
                await _with_one_retry(tally, run_event(client, ep, session_hash, fn, values),
                                      lambda fn=fn, values=values: run_event(
                                          client, ep, session_hash, fn, values))
            stage = "start"
            await run_event(client, ep, session_hash, ep.start, start_inputs(persona_id))
        except (EventFailed, httpx.HTTPError) as exc:
            tally.error(f"{stage}: {type(exc).__name__}: {exc}")
            return
        for t in range(turns):
            await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))
            text = f"{TRAINEE_TURNS[(i + t) % len(TRAINEE_TURNS)]} {turn_tag(i, t)}"
            t0 = time.perf_counter()
            try:
                data, first = await run_event(client, ep, session_hash, ep.send, [None, text, None],
                                              on_sent=lambda text=text: tally.sent.append(text))
            except (EventFailed, httpx.HTTPError) as exc:
                tally.error(f"turn: {type(exc).__name__}: {exc}")
                continue
            elapsed = time.perf_counter() - t0
            chat = data[0] if data else None
            if not answered(chat, text):
                tally.error("turn: the conversation shown has no client reply after the turn")
                continue
            tally.ok += 1
            tally.latencies.append(elapsed)
            if first is not None:
                tally.first_updates.append(first)


async def _with_one_retry(tally: Tally, first: Any, again: Any) -> Any:
    """Page-load events are reads: like a browser reloading, try once more after a dropped
    connection, and count it (``connection_retries``) so it is reported, not hidden."""
    try:
        return await first
    except JoinFailed:
        tally.retries += 1
        await asyncio.sleep(0.5)
        return await again()


def answered(chat: Any, text: str) -> bool:
    """The chat returned ends with the trainee's text and then a client message."""
    if not isinstance(chat, list) or len(chat) < 2:
        return False

    def content(m: Any) -> str:
        c = m.get("content") if isinstance(m, dict) else None
        if isinstance(c, list):
            return "".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
        return str(c or "")

    last, before = chat[-1], chat[-2]
    return (isinstance(last, dict) and last.get("role") == "assistant" and bool(content(last))
            and isinstance(before, dict) and text.strip() in content(before))


# ---------------------------------------------------------------- the run


def count_lost(db: str | Path, sent: list[str]) -> tuple[int, int]:
    """(lost, unanswered): sent turns missing from the database / stored without a reply.
    An SQLite file is opened read-only; a ``postgresql://`` URL through the store."""
    import sqlite3

    if isinstance(db, str) and "://" in db:
        from simulator.store import open_store

        store = open_store(db)
        try:
            rows = store.current_turn_texts()
        finally:
            store.close()
    else:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)
        try:
            rows = conn.execute("SELECT session_id, idx, speaker, text FROM turns WHERE "
                                "abandoned_branch IS NULL ORDER BY session_id, idx").fetchall()
        finally:
            conn.close()
    stored: dict[str, tuple[str, int]] = {}
    replied: set[tuple[str, int]] = set()
    for session_id, idx, speaker, text in rows:
        if speaker == "counselor":
            stored[text] = (session_id, idx)
        else:
            replied.add((session_id, idx))
    lost = sum(1 for t in sent if t not in stored)
    unanswered = sum(1 for t in sent if t in stored
                     and (stored[t][0], stored[t][1] + 1) not in replied)
    return lost, unanswered


async def drive(url: str | list[str], users: int, turns: int, persona_id: str, think_s: float,
                latency_s: float, timeout_s: float, password: str,
                request_timeout_s: float = 60.0, ramp_s: float = 0.0
                ) -> tuple[Tally, float, bool]:
    """Run the trainees; they arrive spread evenly over ``ramp_s`` (a class signing in). With
    several ``url`` (replicas), trainee i uses url i mod N for everything (sticky)."""
    import httpx

    urls = [url] if isinstance(url, str) else url
    async with httpx.AsyncClient(base_url=urls[0], timeout=30) as c:
        r = await c.post("/login", data={"username": user_name(0), "password": password})
        r.raise_for_status()
        ep = Endpoints.from_config((await c.get("/config")).json())
    tally = Tally()
    t0 = time.perf_counter()
    tasks = [asyncio.ensure_future(trainee(i, urls[i % len(urls)], ep, persona_id, turns,
                                           think_s, latency_s, tally, password,
                                           request_timeout_s, arrive_s=ramp_s * i / users))
             for i in range(users)]
    _done, late = await asyncio.wait(tasks, timeout=timeout_s)
    for task in late:
        task.cancel()
    if late:
        await asyncio.gather(*late, return_exceptions=True)
        tally.error(f"hard timeout after {timeout_s:g} s: {len(late)} trainees stopped")
    for task in _done:
        if task.exception() is not None:
            tally.error(f"trainee crashed: {task.exception()!r}")
    return tally, time.perf_counter() - t0, bool(late)


def run_load_bench(users: int = 100, turns: int = 5, latency_ms: float = 300.0,
                   think_ms: float = 10_000.0, url: str | None = None, timeout_s: float = 300.0,
                   ramp_ms: float = 10_000.0,
                   password: str | None = None, persona: str | None = None,
                   db: str | Path | None = None, settings: Settings | None = None,
                   replicas: int = 1) -> LoadBench:
    if not 1 <= users <= MAX_USERS:
        raise ValueError(f"--users must be between 1 and {MAX_USERS}")
    if not 1 <= turns <= MAX_TURNS:
        raise ValueError(f"--turns must be between 1 and {MAX_TURNS}")
    if latency_ms < 0 or think_ms < 0 or timeout_s <= 0:
        raise ValueError("--latency-ms and --think-ms must be >= 0 and --timeout-s > 0")
    if not 1 <= replicas <= 8:
        raise ValueError("--replicas must be between 1 and 8")
    if url is not None and replicas != 1:
        raise ValueError("--replicas starts its own app processes: not with --url")
    backend = "postgresql" if db is not None and str(db).startswith("postgres") else "sqlite"
    with tempfile.TemporaryDirectory(prefix="counselsim-load-") as tmp:
        servers: list[Server] = []
        try:
            target: str | list[str]
            db_path: str | Path | None
            if url is None:
                servers, persona_id = start_servers(
                    Path(tmp), users, latency_ms, settings or defaults(), replicas=replicas,
                    db=None if db is None else str(db))
                target, pw, db_path = [s.url for s in servers], PASSWORD, servers[0].target
            else:
                if not password or not persona:
                    raise ValueError("--url needs --password and --persona (accounts bench000.."
                                     " must exist on that server)")
                target, pw, db_path, persona_id = check_loopback(url), password, db, persona
            tally, duration, timed_out = asyncio.run(drive(
                target, users, turns, persona_id, think_ms / 1000, latency_ms / 1000,
                timeout_s, pw, ramp_s=ramp_ms / 1000))
            time.sleep(0.5)  # let the last replies' commits land
            lost = unanswered = None
            if db_path is not None and (not isinstance(db_path, Path) or db_path.exists()):
                lost, unanswered = count_lost(db_path, tally.sent)
        finally:
            for server in servers:
                server.stop()
    lat_ms = [x * 1000 for x in tally.latencies]
    beyond = [x - latency_ms for x in lat_ms]
    targets = LoadTargets()
    return LoadBench(
        users=users, turns_per_user=turns, model_latency_ms=latency_ms, think_ms=think_ms,
        ramp_ms=ramp_ms, server="external" if url else "started", replicas=replicas,
        backend=backend,
        duration_s=round(duration, 2),
        turns_sent=len(tally.sent), turns_ok=tally.ok, errors=tally.errors,
        connection_retries=tally.retries,
        error_samples=tally.samples, lost_turns=lost, unanswered_turns=unanswered,
        turns_per_s=round(tally.ok / duration, 2) if duration else 0.0,
        latency_ms=summary(lat_ms, 1), beyond_model_ms=summary(beyond, 1),
        first_update_ms=summary([x * 1000 for x in tally.first_updates], 1),
        timed_out=timed_out, targets=targets,
        met={"users": users >= targets.users and tally.errors == 0,
             "beyond_model_p95": bool(beyond) and pct(beyond, 95) < targets.beyond_model_p95_ms,
             "lost_turns": lost == 0},
        machine=machine_info())


def format_text(r: LoadBench) -> str:
    b, la = r.beyond_model_ms, r.latency_ms
    where = f"{r.replicas} replicas on {r.backend}, " if r.replicas > 1 else ""
    return (f"{r.users} trainees x {r.turns_per_user} turns ({where}{r.server} app, fake model "
            f"{r.model_latency_ms:g} ms, think {r.think_ms:g} ms, arriving over "
            f"{r.ramp_ms:g} ms) in {r.duration_s} s\n"
            f"  {r.turns_ok}/{r.turns_sent} turns answered, {r.turns_per_s} turns/s, "
            f"{r.errors} errors ({r.connection_retries} page-load retries), "
            f"lost turns: {r.lost_turns}, unanswered: {r.unanswered_turns}\n"
            f"  click to reply: p50 {la['p50']} ms, p95 {la['p95']} ms, p99 {la['p99']} ms\n"
            f"  beyond the model: p50 {b['p50']} ms, p95 {b['p95']} ms "
            f"(target < {r.targets.beyond_model_p95_ms:g})")
