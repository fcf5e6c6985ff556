"""The nginx example of docs/deployment.md, run for real in front of two replicas.

The config is taken from the docs' ``nginx`` block itself, so what is tested is what the docs
show; only what cannot be used here is replaced, each replacement required to match exactly once
(a changed example fails here, naming the line): the replicas' ports, the listening address (a
free high port on 127.0.0.1 instead of 443) and the commented-out certificate (a throwaway
self-signed one, so the example's TLS and ``X-Forwarded-Proto`` are exercised too). Around it,
test-only settings: nginx's own files in a temporary folder, and an ``X-Upstream`` header saying
which replica answered. nginx runs unprivileged (as ``nobody`` when the tests run as root).

Checked: sign-in and a turn through the proxy (the cookie Secure over HTTPS), stickiness (the same
cookie always reaches the same replica, different cookies both), and after one replica is killed
the trainee goes on through the proxy on the other, in the same session. Needs Debian's nginx
(``make nginx-deps``); skipped, saying so, only when nginx cannot be found.
"""

from __future__ import annotations

import asyncio
import os
import re
import secrets
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.bench.load import (
    PASSWORD,
    Endpoints,
    Server,
    answered,
    chat_in,
    free_port,
    run_event,
    said_in,
    session_shown,
    start_inputs,
    start_servers,
    user_name,
)
from simulator.settings import defaults

DOCS = Path(__file__).resolve().parents[1] / "docs" / "deployment.md"
DOC_PORTS = ("127.0.0.1:7861", "127.0.0.1:7862")


def find_nginx() -> str | None:
    return shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)


NGINX = find_nginx()
pytestmark = pytest.mark.skipif(
    NGINX is None, reason="nginx not found (install Debian's nginx: `make nginx-deps`)")


def docs_example() -> str:
    """The ``nginx`` code block under "Reverse proxy (nginx)" in docs/deployment.md."""
    found = re.search(r"### Reverse proxy \(nginx\).*?```nginx\n(.*?)```", DOCS.read_text(),
                      re.DOTALL)
    assert found, "docs/deployment.md has no ```nginx block under '### Reverse proxy (nginx)'"
    return found.group(1)


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, (f"the nginx example in docs/deployment.md should contain "
                                  f"{old!r} once; update tests/test_nginx.py with the docs")
    return text.replace(old, new)


def render(example: str, *, listen: int, upstreams: tuple[str, str], cert: Path,
           key: Path) -> str:
    """The docs' example with only the machine-specific parts replaced."""
    for doc_port, real in zip(DOC_PORTS, upstreams, strict=True):
        example = replace_once(example, f"server {doc_port} ", f"server {real} ")
    example = replace_once(example, "listen 443 ssl;", f"listen 127.0.0.1:{listen} ssl;")
    return replace_once(example, "# ssl_certificate ...; ssl_certificate_key ...;",
                        f"ssl_certificate {cert}; ssl_certificate_key {key};")


def main_config(folder: Path, server_block: str) -> str:
    """nginx.conf around the example: files in ``folder``, and which replica answered."""
    temps = "\n".join(f"    {kind}_temp_path {folder / kind};"
                      for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"daemon off;\nworker_processes 1;\npid {folder / 'nginx.pid'};\n"
            f"error_log {folder / 'error.log'} info;\n"
            "events { worker_connections 256; }\n"
            "http {\n"
            f"    access_log {folder / 'access.log'};\n{temps}\n"
            "    add_header X-Upstream $upstream_addr always;   # test only: who answered\n"
            f"{server_block}\n}}\n")


@dataclass
class Proxy:
    url: str
    folder: Path
    ca: ssl.SSLContext


def unprivileged() -> tuple[list[str], tuple[int, int] | None]:
    """How to run nginx without root: as ``nobody`` when the tests run as root."""
    if os.geteuid() != 0:
        return [], None
    import pwd

    nobody = pwd.getpwnam("nobody")
    return ["runuser", "-u", "nobody", "--"], (nobody.pw_uid, nobody.pw_gid)


def self_signed(folder: Path) -> tuple[Path, Path]:
    openssl = shutil.which("openssl")
    if openssl is None:
        pytest.fail("openssl not found: `make nginx-deps` installs it with nginx")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                    "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1", "-subj",
                    "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True, timeout=60)
    return cert, key


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[tuple[list[Server], str]]:
    """Two app processes on one SQLite database, with bench000 as a trainee (bench/load.py)."""
    servers, persona_id = start_servers(tmp_path, 1, 50.0, defaults(), replicas=2)
    try:
        yield servers, persona_id
    finally:
        for server in servers:
            server.stop()


@pytest.fixture
def proxy(replicas: tuple[list[Server], str]) -> Iterator[Proxy]:
    assert NGINX is not None
    as_user, owner = unprivileged()
    folder = Path(tempfile.mkdtemp(prefix="counselsim-nginx-"))
    try:
        cert, key = self_signed(folder)
        port = free_port()
        upstreams = tuple(s.url.removeprefix("http://") for s in replicas[0])
        conf = folder / "nginx.conf"
        conf.write_text(main_config(folder, render(docs_example(), listen=port,
                                                   upstreams=(upstreams[0], upstreams[1]),
                                                   cert=cert, key=key)))
        if owner is not None:
            for path in (folder, *folder.iterdir()):
                os.chown(path, *owner)
        cmd = [*as_user, NGINX, "-p", str(folder), "-e", str(folder / "error.log"), "-c",
               str(conf)]
        checked = subprocess.run([*cmd, "-t"], capture_output=True, text=True, timeout=30)
        assert checked.returncode == 0, f"nginx -t refused the docs' example:\n{checked.stderr}"
        nginx = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_listening(nginx, port, folder)
            yield Proxy(url=f"https://127.0.0.1:{port}", folder=folder,
                        ca=ssl.create_default_context(cafile=str(cert)))
        finally:
            stop_nginx(nginx, folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def wait_listening(nginx: subprocess.Popen[bytes], port: int, folder: Path) -> None:
    import socket

    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if nginx.poll() is not None:
            log = (folder / "error.log").read_text(errors="replace")[-2000:]
            pytest.fail(f"nginx exited ({nginx.returncode}): {log}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    pytest.fail("nginx did not listen within 20 s")


def stop_nginx(nginx: subprocess.Popen[bytes], folder: Path) -> None:
    """Stop the nginx master this test started (its pid file; the Popen may be runuser)."""
    pid_file = folder / "nginx.pid"
    if pid_file.exists():
        os.kill(int(pid_file.read_text().strip()), signal.SIGTERM)
    else:
        nginx.terminate()
    try:
        nginx.wait(timeout=10)
    except subprocess.TimeoutExpired:
        nginx.kill()
        nginx.wait(timeout=10)


# ------------------------------------------------------------------------- the checks


class Trainee:
    """bench000 through the proxy, noting which replica answered each request."""

    def __init__(self, proxy: Proxy) -> None:
        self.upstreams: list[str] = []
        self.client = httpx.AsyncClient(base_url=proxy.url, verify=proxy.ca, timeout=60,
                                        event_hooks={"response": [self._note]})
        self.session_hash = secrets.token_hex(6)

    async def _note(self, response: httpx.Response) -> None:
        # after a failed try nginx lists every replica it tried: the last one answered
        tried = response.headers.get("x-upstream", "")
        self.upstreams.append(tried.split(",")[-1].strip())

    def answered_by(self, since: int = 0) -> set[str]:
        return set(self.upstreams[since:])

    async def event(self, ep: Endpoints, fn: tuple[int, int], data: list[Any]) -> Any:
        out, _ = await run_event(self.client, ep, self.session_hash, fn, data)
        return out

    async def open_page(self, ep: Endpoints) -> None:
        self.session_hash = secrets.token_hex(6)  # a reload: a new tab
        r = await self.client.get("/")
        assert r.status_code == 200, f"GET / through the proxy: {r.status_code}"
        for fn, values in ep.page_load:
            await self.event(ep, fn, values)


async def sticky_check(proxy: Proxy) -> None:
    """Any cookie value always reaches the same replica, and different values reach both."""
    async with httpx.AsyncClient(base_url=proxy.url, verify=proxy.ca, timeout=30) as client:
        seen: dict[str, set[str]] = {}
        for _ in range(16):
            value = secrets.token_urlsafe(32)
            for _ in range(3):
                r = await client.get("/healthz",
                                     headers={"Cookie": f"counselsim_session={value}"})
                assert r.status_code == 200
                seen.setdefault(value, set()).add(r.headers["x-upstream"])
    assert all(len(upstreams) == 1 for upstreams in seen.values()), seen
    assert len(set().union(*seen.values())) == 2, "every cookie went to one replica"


async def practise_through(proxy: Proxy, servers: list[Server], persona_id: str) -> None:
    me = Trainee(proxy)
    try:
        # as a browser posts the form: its Origin names the proxy's host *and port*, which the
        # app compares with the Host the proxy passes on (a Host without the port was refused)
        r = await me.client.post("/login", data={"username": user_name(0),
                                                 "password": PASSWORD},
                                 headers={"Origin": proxy.url.rstrip("/")})
        assert r.status_code == 200, r.text[:300]
        assert "secure" in r.headers["set-cookie"].lower(), "cookie not Secure over HTTPS"
        ep = Endpoints.from_config((await me.client.get("/config")).json())
        since = len(me.upstreams)
        await me.open_page(ep)
        session_id = session_shown(await me.event(ep, ep.start, start_inputs(persona_id)))
        first = "What brings you in today? (through nginx)"
        out = await me.event(ep, ep.send, [None, first, None])
        assert answered(chat_in(out), first)
        sticky = me.answered_by(since)
        assert len(sticky) == 1, f"one trainee's requests reached {sticky}"

        # the replica this trainee is on dies; the same cookie now reaches the other one
        home = sticky.pop()
        victim = next(s for s in servers if s.url.endswith(home))
        assert victim.process is not None
        victim.process.kill()
        victim.process.wait(timeout=10)
        since = len(me.upstreams)
        await me.open_page(ep)
        reopened = await me.event(ep, ep.resume, [session_id])
        assert session_shown(reopened) == session_id
        assert any(first in said for said in said_in(chat_in(reopened)))
        second = "It sounds like coming here was not your idea. (after the failover)"
        out = await me.event(ep, ep.send, [None, second, None])
        assert answered(chat_in(out), second)
        after = me.answered_by(since)
        assert after and home not in after, f"after the kill answered by {after}"
    finally:
        await me.client.aclose()


def test_the_docs_nginx_example_keeps_trainees_on_a_replica_and_moves_them_when_it_dies(
        proxy: Proxy, replicas: tuple[list[Server], str]) -> None:
    servers, persona_id = replicas
    asyncio.run(sticky_check(proxy))
    asyncio.run(practise_through(proxy, servers, persona_id))


def test_the_example_is_rendered_with_only_the_machine_specific_lines_replaced() -> None:
    example = docs_example()
    out = render(example, listen=18443, upstreams=("127.0.0.1:1", "127.0.0.1:2"),
                 cert=Path("/c.pem"), key=Path("/k.pem"))
    changed = [line for line in out.splitlines() if line not in example.splitlines()]
    assert len(changed) == 4, changed
    assert "hash $cookie_counselsim_session consistent;" in out
    with pytest.raises(AssertionError, match="listen 443 ssl"):
        render(example.replace("listen 443 ssl;", "listen 80;"), listen=1,
               upstreams=("a", "b"), cert=Path("c"), key=Path("k"))
