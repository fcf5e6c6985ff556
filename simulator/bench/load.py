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
import re
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

from simulator.bench.failover import (
    Failover,
    FailoverReport,
    JobOutcome,
    drain_jobs,
    wait_for_jobs,
)
from simulator.bench.failover import format_text as format_failover
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
    committed_turns: int = 0
    """Turns the app said it stored (the send's first update: the turn shown, the box cleared)."""
    lost_committed_turns: int | None = None
    """Of those, the ones not in the database afterwards (must be 0, whatever was killed)."""
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
    failover: FailoverReport | None = None
    """``--kill-replica-after``: what was killed, who moved, and the dead replica's grades."""
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
        grader_s = float(cfg.get("grader_latency_ms") or 2 * cfg["latency_ms"]) / 1000
        rubric = practice.library.rubric(settings.rubric)
        practice.client_model = LatencyChatModel(messages=iter(()), latency_s=latency_s)
        practice.grader_model = latency_grader(rubric, grader_s)  # type: ignore[assignment]
        # The fakes answer any number at once, like a hosted model: measured is the app's own
        # capacity. Under its loopback address a fake would count as one local server with
        # one slot (llm.limits), and 100 trainees would queue for it (3 replies a second).
        practice.settings = settings.model_copy(update={
            "client_model": FAKE_SPEC, "grader_model": FAKE_SPEC,
            "models": {**settings.models, FAKE_SPEC: ModelSettings(max_concurrency=1024)}})
        # nothing listens at the fake's address: the header's availability checks would probe
        # it (and load the SDKs to classify the refusal) on page loads, which no class pays
        practice.availability = None
        _start_job_worker(practice, cfg, latency_grader(rubric, grader_s))
    app, _ctx = build_app(settings, practice)
    uvicorn.run(app, host="127.0.0.1", port=int(cfg["port"]), log_level="error",
                server_header=False, access_log=False)


def _start_job_worker(practice: Any, cfg: dict[str, Any], grader: Any) -> None:
    """Record LLM grades as jobs and run the job worker, as ``counselsim serve`` does with an
    LLM grader (web/serve.py): so a killed replica leaves jobs behind, and the survivor's worker
    finishes them. The worker name comes from the bench (``Server.worker``) so that it can tell
    whose jobs are whose in the ``grading_jobs`` table."""
    from simulator.service.grading_jobs import LEASE_S, POLL_S, JobWorker

    lease_s = float(cfg.get("lease_s") or LEASE_S)
    practice.grading_worker = cfg["worker"]
    JobWorker(practice.store, practice.settings, worker=cfg["worker"], lease_s=lease_s,
              poll_s=min(POLL_S, lease_s / 3), model=grader).start()


@dataclass
class Server:
    url: str
    process: subprocess.Popen[bytes] | None = None
    db: Path | None = None
    """The SQLite file (None on PostgreSQL: see ``target``)."""
    target: str | Path | None = None
    """The database, whichever backend (for counting lost turns)."""
    worker: str | None = None
    """The name its grading jobs are held under (``grading_jobs.claimed_by``)."""

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
                  *, replicas: int = 1, db: str | None = None, wait_s: float = 120.0,
                  grader_latency_ms: float | None = None, lease_s: float | None = None
                  ) -> tuple[list[Server], str]:
    """Create the trainees in a fresh database (``db``, which must be empty, or a new SQLite
    file in ``folder``) and start ``replicas`` app processes on it, on 127.0.0.1.

    With fake models (``latency_ms`` > 0) each replica records its LLM grades as jobs and runs a
    job worker, as ``counselsim serve`` does, under ``lease_s`` (default: serve's 60 s)."""
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
            servers.append(_start_child(folder, settings, latency_ms, n,
                                        grader_latency_ms=grader_latency_ms, lease_s=lease_s))
        for server in servers:  # started together, waited for together
            _wait_ready(server, folder, wait_s)
    except BaseException:
        for server in servers:
            server.stop()
        raise
    return servers, persona_id


def _start_child(folder: Path, settings: Settings, latency_ms: float, n: int, *,
                 grader_latency_ms: float | None = None, lease_s: float | None = None) -> Server:
    port = free_port()
    suffix = "" if n == 0 else f"-{n}"
    config = folder / f"server{suffix}.json"
    worker = f"bench-replica{n}-{secrets.token_hex(4)}"
    config.write_text(json.dumps({"settings": settings.model_dump(mode="json"),
                                  "latency_ms": latency_ms, "port": port, "worker": worker,
                                  "grader_latency_ms": grader_latency_ms, "lease_s": lease_s}))
    log = (folder / f"server{suffix}.log").open("wb")
    child = subprocess.Popen(  # noqa: S603 - our own interpreter and module
        [sys.executable, "-c", "import sys; from simulator.bench.load import _serve_child; "
         "_serve_child(sys.argv[1])", str(config)],
        stdout=log, stderr=subprocess.STDOUT,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"})
    sqlite_file = settings.db if isinstance(settings.db, Path) else None
    return Server(url=f"http://127.0.0.1:{port}", process=child, db=sqlite_file,
                  target=settings.db, worker=worker if latency_ms > 0 else None)


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
    resume: tuple[int, int] = (-1, -1)
    """"Resume" (``open_session``): a moved trainee reopens its session on the survivor."""
    retry: tuple[int, int] = (-1, -1)
    """"Ask the client again": a stored turn the killed replica did not answer."""
    page_load: list[tuple[tuple[int, int], list[Any]]] = field(default_factory=list)
    """The events a browser fires when the page opens (they fill the persona dropdown)."""
    api_prefix: str = "/gradio_api"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> Endpoints:
        by_name = {d.get("api_name"): d for d in config["dependencies"]}
        for name in ("start_fn", "send_fn"):
            if name not in by_name:
                raise RuntimeError(f"the web app has no {name} event (practice tab changed?)")
        initial = {c["id"]: (c.get("props") or {}).get("value") for c in config["components"]}
        loads = [((int(d["id"]), int(t[0])), [initial.get(i) for i in d.get("inputs", [])])
                 for d in config["dependencies"]
                 for t in d.get("targets", []) if t[1] == "load" and d.get("backend_fn")]
        def fn(name: str) -> tuple[int, int]:
            d = by_name.get(name)
            return (int(d["id"]), int(d["targets"][0][0])) if d else (-1, -1)

        return cls(start=fn("start_fn"), send=fn("send_fn"), resume=fn("open_session"),
                   retry=fn("retry_fn"), page_load=loads,
                   api_prefix=config.get("api_prefix", "/gradio_api"))


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    first_updates: list[float] = field(default_factory=list)
    sent: list[str] = field(default_factory=list)
    committed: list[str] = field(default_factory=list)
    """Turns the server said it stored (its first update: the turn shown, the box cleared)."""
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
                    data: list[Any], on_sent: Any = None, on_first: Any = None
                    ) -> tuple[Any, float | None]:
    """One click, as the browser does it: join the queue, read the event's SSE stream.

    ``on_sent()`` is called once the server took the event, ``on_first(data)`` with the first
    streamed update. Returns (the completed output data, seconds to the first update or None)."""
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
                if on_first is not None:
                    on_first((msg.get("output") or {}).get("data"))
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
                  request_timeout_s: float, arrive_s: float = 0.0,
                  failover: Failover | None = None) -> None:
    """One trainee's class: arrive, sign in, start a session, then ``turns`` turns with a think
    pause before each; on its sticky replica ``url`` (moved if ``failover`` kills it)."""
    rng = random.Random(i)
    await asyncio.sleep(arrive_s)
    me = SimTrainee(i, url, ep, tally, password, persona_id, request_timeout_s, failover)
    async with me:
        if not await me.open():
            return
        for t in range(turns):
            await asyncio.sleep(think_s * rng.uniform(0.5, 1.5))
            await me.turn(f"{TRAINEE_TURNS[(i + t) % len(TRAINEE_TURNS)]} {turn_tag(i, t)}")


class SignInRefused(EventFailed):
    """``POST /login`` answered, but not with the signed-in page."""


class SimTrainee:
    """One simulated trainee: a browser tab (cookies, a queue ``session_hash``) on its sticky
    replica, doing what the browser does. With a ``Failover``, a request that fails because that
    replica was killed sends it, as a proxy would, to the survivor (``_move``), where it goes on
    with the same session; any other failure is an error of the bench (``Tally.error``)."""

    def __init__(self, i: int, url: str, ep: Endpoints, tally: Tally, password: str,
                 persona_id: str, request_timeout_s: float, failover: Failover | None) -> None:
        self.i, self.url, self.ep, self.tally = i, url, ep, tally
        self.password, self.persona_id = password, persona_id
        self.request_timeout_s, self.failover = request_timeout_s, failover
        self.session_hash = ""
        self.session_id: str | None = None
        self.offered: str | None = None
        """The session the page offers under "Continue where you left off"."""
        self.signed_in = False
        self.committed: list[str] = []
        """This trainee's turns the server said it stored."""
        self.shown: Any = None
        """The conversation its session showed when reopened on the survivor."""
        self.client: Any = self._client()
        if failover is not None and failover.victim_url == url:
            failover.on_victim.add(i)

    def _client(self, cookies: Any = None) -> Any:
        import httpx

        # Idle connections are dropped before uvicorn's 5 s keep-alive timeout closes them (a
        # browser retries a request that meets a connection closed under it; httpx does not).
        limits = httpx.Limits(max_connections=4, max_keepalive_connections=2,
                              keepalive_expiry=3.0)
        return httpx.AsyncClient(base_url=self.url, timeout=self.request_timeout_s,
                                 limits=limits, cookies=cookies)

    async def __aenter__(self) -> SimTrainee:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.client.aclose()

    # -- the steps, as the browser takes them

    async def sign_in(self) -> None:
        r = await self.client.post("/login", data={"username": user_name(self.i),
                                                   "password": self.password})
        if r.status_code != 200:
            raise SignInRefused(f"login HTTP {r.status_code}")
        self.signed_in = True

    async def load_page(self) -> None:
        """The page's load events, on a new tab (a new queue ``session_hash``); notes the
        unfinished session the page offers to resume, if any."""
        self.session_hash = secrets.token_hex(6)
        self.offered = None
        for fn, values in self.ep.page_load:
            data, _ = await _with_one_retry(self.tally, self._event(fn, values),
                                            lambda fn=fn, values=values: self._event(fn, values))
            self.offered = self.offered or offered_session(data)

    async def start(self) -> None:
        data, _ = await self._event(self.ep.start, start_inputs(self.persona_id))
        self.session_id = session_shown(data)

    async def _event(self, fn: tuple[int, int], data: list[Any], **kw: Any) -> Any:
        return await run_event(self.client, self.ep, self.session_hash, fn, data, **kw)

    async def open(self) -> bool:
        """Sign in, open the page, start a session; False when that failed (an error)."""
        stage = "login"
        try:
            await self.sign_in()
            stage = "page load"
            await self.load_page()
            stage = "start"
            await self.start()
            return True
        except _step_errors() as exc:
            return await self._failed(f"{stage}: {type(exc).__name__}: {exc}")

    async def turn(self, text: str) -> None:
        """Send one turn; if the replica died under it, move and see the turn through there."""
        try:
            await self._send(text)
        except _step_errors() as exc:
            if await self._failed(f"turn: {type(exc).__name__}: {exc}"):
                await self._finish_cut_turn(text)

    async def _send(self, text: str) -> None:
        def first(data: Any) -> None:
            if stored_update(data, text):  # committed: only now did the server clear the box
                self.committed.append(text)
                self.tally.committed.append(text)
                if self.failover is not None and self.url == self.failover.victim_url:
                    self.failover.committed_before_kill += 1

        t0 = time.perf_counter()
        data, first_s = await self._event(self.ep.send, [None, text, None],
                                          on_sent=lambda: self.tally.sent.append(text),
                                          on_first=first)
        elapsed = time.perf_counter() - t0
        if not answered(chat_in(data), text):
            self.tally.error("turn: the conversation shown has no client reply after the turn")
            return
        self._answered(by_survivor=True)
        self.tally.latencies.append(elapsed)
        if first_s is not None:
            self.tally.first_updates.append(first_s)

    def _seen_stored(self, text: str) -> None:
        """A cut turn the reopened session shows was committed, whether or not the trainee
        saw the stored update before the kill."""
        if text not in self.committed:
            self.committed.append(text)
            self.tally.committed.append(text)

    def _answered(self, *, by_survivor: bool) -> None:
        """Count an answered turn; a moved trainee's answered by the survivor separately."""
        self.tally.ok += 1
        if by_survivor and self.failover is not None and self.i in self.failover.moved:
            self.failover.turns_after_move += 1

    # -- failover

    async def _failed(self, message: str) -> bool:
        """A step failed. If its replica was killed, move (True when the trainee is back in its
        session on the survivor); otherwise count the error (False)."""
        if self.failover is None or not self.failover.gone(self.url):
            self.tally.error(message)
            return False
        self.failover.saw_error(message)
        return await self._move()

    async def _move(self) -> bool:
        """Where a proxy sends a trainee whose replica died: the survivor, with the same cookie
        (a reloaded page; sign-ins are in the database). Signs in again only if the survivor
        refuses the cookie (counted: it should not), opens the page, and reopens its session
        ("Resume") checking that every turn it saw committed is there. If the kill came before
        it had seen its session start, it resumes the session the page offers (the start was
        committed, its answer lost), or starts one. False (an error) if the survivor fails too."""
        assert self.failover is not None
        fo = self.failover
        fo.moved.add(self.i)
        old, self.url = self.client, fo.survivor_url
        self.client = self._client(cookies=old.cookies)
        await old.aclose()
        try:
            if (await self.client.get("/")).status_code != 200:
                fo.signed_in_again += self.signed_in
                await self.sign_in()
            await self.load_page()
            if self.session_id is not None:
                fo.moved_with_session += 1
                await self._reopen()
            elif self.offered is not None:
                fo.resumed_offered += 1
                self.session_id = self.offered
                await self._reopen()
            else:
                fo.started_on_survivor += 1
                await self.start()
            return True
        except _step_errors() as exc:
            self.tally.error(f"moving to the survivor: {type(exc).__name__}: {exc}")
            return False

    async def _reopen(self) -> None:
        assert self.failover is not None and self.session_id is not None
        data, _ = await self._event(self.ep.resume, [self.session_id])
        self.shown = chat_in(data)
        said = said_in(self.shown)
        missing = [t for t in self.committed if not any(t in m for m in said)]
        self.failover.missing_on_resume += len(missing)
        if session_shown(data) == self.session_id and not missing:
            self.failover.continued += 1

    async def _finish_cut_turn(self, text: str) -> None:
        """The turn the kill cut off, as the trainee sees it in the reopened session: answered
        (the killed replica finished it: nothing to do), stored but unanswered ("Ask the client
        again"), or not there (it was never stored: send it again)."""
        assert self.failover is not None
        chat = self.shown
        try:
            if answered(chat, text):
                self._seen_stored(text)
                self._answered(by_survivor=False)
            elif said_in(chat) and text.strip() in said_in(chat)[-1] and last_is_trainee(chat):
                self._seen_stored(text)
                data, _ = await self._event(self.ep.retry, [None])
                if not answered(chat_in(data), text):
                    self.tally.error("ask again: the conversation shown has no client reply")
                    return
                self.failover.asked_again += 1
                self._answered(by_survivor=True)
            else:
                await self._send(text)
        except _step_errors() as exc:
            self.tally.error(f"turn after the move: {type(exc).__name__}: {exc}")


def _step_errors() -> tuple[type[BaseException], ...]:
    """What a trainee's step may fail with (httpx is imported only when the bench runs)."""
    import httpx

    return (EventFailed, httpx.HTTPError)


def session_shown(data: Any) -> str | None:
    """The session id a view shows (the brief's ``data-session``)."""
    for value in data or []:
        if isinstance(value, str):
            found = re.search(r'data-session="([^"]+)"', value)
            if found:
                return found.group(1)
    return None


def offered_session(data: Any) -> str | None:
    """The session a page-load event offers to resume: the resume picker's value (a session id;
    the other pickers' values are persona and rubric ids)."""
    for value in data or []:
        chosen = value.get("value") if isinstance(value, dict) else None
        if isinstance(chosen, str) and re.fullmatch(r"[0-9a-f]{32}", chosen):
            return chosen
    return None


def chat_in(data: Any) -> Any:
    """The conversation among an event's outputs (the first list)."""
    return next((v for v in data or [] if isinstance(v, list)), None)


def _content(m: Any) -> str:
    c = m.get("content") if isinstance(m, dict) else None
    if isinstance(c, list):
        return "".join(str(p.get("text", "")) for p in c if isinstance(p, dict))
    return str(c or "")


def said_in(chat: Any) -> list[str]:
    """The trainee's messages in a conversation, in order."""
    if not isinstance(chat, list):
        return []
    return [_content(m) for m in chat if isinstance(m, dict) and m.get("role") == "user"]


def last_is_trainee(chat: Any) -> bool:
    return isinstance(chat, list) and bool(chat) and isinstance(chat[-1], dict) \
        and chat[-1].get("role") == "user"


def stored_update(data: Any, text: str) -> bool:
    """A send's first update is the "stored" one (practice_ui.send_fn): the conversation with
    the turn in it and the box cleared (""). A refusal's update keeps the box as it was."""
    return (isinstance(data, list) and len(data) > 1 and data[1] == ""
            and any(text.strip() in m for m in said_in(data[0])))


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
    last, before = chat[-1], chat[-2]
    return (isinstance(last, dict) and last.get("role") == "assistant" and bool(_content(last))
            and isinstance(before, dict) and text.strip() in _content(before))


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
                request_timeout_s: float = 60.0, ramp_s: float = 0.0,
                failover: Failover | None = None) -> tuple[Tally, float, bool]:
    """Run the trainees; they arrive spread evenly over ``ramp_s`` (a class signing in). With
    several ``url`` (replicas), trainee i uses url i mod N for everything (sticky). With a
    ``failover``, its replica is killed during the run and its trainees move."""
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
                                           request_timeout_s, arrive_s=ramp_s * i / users,
                                           failover=failover))
             for i in range(users)]
    killer = asyncio.ensure_future(failover.kill_later(t0)) if failover is not None else None
    _done, late = await asyncio.wait(tasks, timeout=timeout_s)
    if killer is not None and not killer.done():  # the class ended before the kill
        killer.cancel()
        await asyncio.gather(killer, return_exceptions=True)
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
                   replicas: int = 1, kill_replica_after: float | None = None,
                   grader_latency_ms: float | None = None,
                   lease_s: float | None = None) -> LoadBench:
    """``bench load``. ``kill_replica_after``: SIGKILL replica 0 that many seconds into the load
    (bench/failover.py); ``grader_latency_ms`` (default twice ``latency_ms``) and ``lease_s``
    (default serve's 60 s) let a test hold grading jobs at the kill and see them taken over
    quickly."""
    _check_args(users, turns, latency_ms, think_ms, timeout_s, replicas, url,
                kill_replica_after)
    backend = "postgresql" if db is not None and str(db).startswith("postgres") else "sqlite"
    failover: Failover | None = None
    fo_report: FailoverReport | None = None
    with tempfile.TemporaryDirectory(prefix="counselsim-load-") as tmp:
        servers: list[Server] = []
        try:
            target: str | list[str]
            db_path: str | Path | None
            if url is None:
                servers, persona_id = start_servers(
                    Path(tmp), users, latency_ms, settings or defaults(), replicas=replicas,
                    db=None if db is None else str(db), grader_latency_ms=grader_latency_ms,
                    lease_s=lease_s)
                target, pw, db_path = [s.url for s in servers], PASSWORD, servers[0].target
            else:
                if not password or not persona:
                    raise ValueError("--url needs --password and --persona (accounts bench000.."
                                     " must exist on that server)")
                target, pw, db_path, persona_id = check_loopback(url), password, db, persona
            if kill_replica_after is not None:
                failover = _failover(servers, kill_replica_after)
            tally, duration, timed_out = asyncio.run(drive(
                target, users, turns, persona_id, think_ms / 1000, latency_ms / 1000,
                timeout_s, pw, ramp_s=ramp_ms / 1000, failover=failover))
            time.sleep(0.5)  # let the last replies' commits land
            lost = unanswered = lost_committed = None
            if db_path is not None and (not isinstance(db_path, Path) or db_path.exists()):
                lost, unanswered = count_lost(db_path, tally.sent)
                lost_committed = count_lost(db_path, tally.committed)[0]
            if failover is not None:  # before the survivor stops: it finishes the jobs
                fo_report = failover.report(_dead_replicas_jobs(failover, lease_s))
                if failover.store is not None:
                    drain_jobs(failover.store)
        finally:
            if failover is not None and failover.store is not None:
                failover.store.close()
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
        committed_turns=len(tally.committed), lost_committed_turns=lost_committed,
        turns_per_s=round(tally.ok / duration, 2) if duration else 0.0,
        latency_ms=summary(lat_ms, 1), beyond_model_ms=summary(beyond, 1),
        first_update_ms=summary([x * 1000 for x in tally.first_updates], 1),
        timed_out=timed_out, targets=targets,
        met={"users": users >= targets.users and tally.errors == 0,
             "beyond_model_p95": bool(beyond) and pct(beyond, 95) < targets.beyond_model_p95_ms,
             "lost_turns": lost == 0},
        failover=fo_report, machine=machine_info())


def _check_args(users: int, turns: int, latency_ms: float, think_ms: float, timeout_s: float,
                replicas: int, url: str | None, kill_replica_after: float | None) -> None:
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
    if kill_replica_after is not None:
        if replicas != 2 or url is not None:
            raise ValueError("--kill-replica-after needs --replicas 2 (one killed, one "
                             "taking over) and the bench's own app processes (not --url)")
        if not 0 < kill_replica_after < timeout_s:
            raise ValueError("--kill-replica-after must be more than 0 and less than "
                             "--timeout-s")


def _failover(servers: list[Server], after_s: float) -> Failover:
    """Replica 0 is killed, replica 1 takes over. The bench's own connection to the database
    is only opened when the replicas record grading jobs (fake models with an LLM grader)."""
    from simulator.bench.failover import open_job_store

    victim, survivor = servers[0], servers[1]
    assert victim.process is not None
    return Failover(victim=victim.process, victim_url=victim.url, survivor_url=survivor.url,
                    after_s=after_s, victim_worker=victim.worker,
                    survivor_worker=survivor.worker,
                    store=open_job_store(victim.target) if victim.worker else None)


def _dead_replicas_jobs(failover: Failover, lease_s: float | None) -> JobOutcome | None:
    """Wait for the jobs the killed replica held: the survivor claims them once their lease ran
    out (``lease_s``, serve's 60 s by default) and its worker polls; a minute more is allowed
    for the grading itself on a loaded machine."""
    if failover.store is None or not failover.killed:
        return None
    from simulator.service.grading_jobs import LEASE_S, POLL_S

    return wait_for_jobs(failover.store, failover.held, failover.survivor_worker,
                         timeout_s=(lease_s or LEASE_S) + POLL_S + 60.0)


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
            f"(target < {r.targets.beyond_model_p95_ms:g})\n"
            f"  committed turns: {r.committed_turns}, lost: {r.lost_committed_turns}"
            + ("" if r.failover is None else "\n" + format_failover(r.failover)))
