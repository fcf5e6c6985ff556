"""Start the CounselSim web app in-process for tests: temp DB and folders, free port, real uvicorn.

Used by the browser tests (``conftest.web``) and the HTTP API tests. Users are created with random
passwords (no fixed test password can leak into a deployment).
"""

from __future__ import annotations

import secrets
import shutil
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
CONTENT = Path(__file__).resolve().parent / "web_content"
ARTIFACTS = ROOT / "test-artifacts"
PERSONA_ID = "dana-alcohol"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class WebServer:
    url: str
    ctx: Any
    folder: Path
    server: Any
    thread: threading.Thread
    passwords: dict[str, str] = field(default_factory=dict)

    def user(self, name: str, role: str, cohort: str | None = None) -> tuple[str, str]:
        """Create a user (once) and return (name, password)."""
        from simulator.service.accounts import hash_password

        if name not in self.passwords:
            password = secrets.token_urlsafe(12)
            self.ctx.store.add_user(name, role, cohort=cohort,
                                    password_hash=hash_password(password))
            self.passwords[name] = password
        return name, self.passwords[name]

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def start_web(folder: Path, personas_from: Path = CONTENT / "personas",
              rubric_files: tuple[str, ...] = ("miti-4.2.1.yaml",)) -> WebServer:
    """The app on a free port; content copied from ``personas_from`` and ``rubrics/``."""
    import uvicorn

    from simulator.settings import Settings
    from simulator.web.app import build_app

    personas, rubrics = folder / "personas", folder / "rubrics"
    shutil.copytree(personas_from, personas)
    rubrics.mkdir()
    for name in rubric_files:
        shutil.copy(ROOT / "rubrics" / name, rubrics)
    port = free_port()
    settings = Settings(db=folder / "counselsim.db", personas=personas, rubrics=rubrics,
                        feedback=ROOT / "feedback", client_model="offline",
                        grader_model="offline", host="127.0.0.1", port=port)
    app, ctx = build_app(settings)
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning",
                            lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True, name="counselsim-web")
    thread.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    else:
        server.should_exit = True
        raise RuntimeError("the web app did not start within 60 s")
    return WebServer(url=url, ctx=ctx, folder=folder, server=server, thread=thread)


def sign_in_form(page: Any, url: str, name: str, password: str) -> None:
    """Fill and send CounselSim's sign-in page (``/`` redirects there when signed out)."""
    page.goto(url + "/")
    page.locator("#username").fill(name)
    page.locator("#password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def login(page: Any, url: str, name: str, password: str) -> None:
    """Sign in and wait until the app shows the user's name."""
    sign_in_form(page, url, name, password)
    page.locator("#cs-header").get_by_text(f"Signed in as {name}").wait_for(timeout=60_000)


def shot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"web-{name}.png"
    page.screenshot(path=str(path))
    return path


def axe_problems(page: Any) -> list[str]:
    """The serious and critical axe-core violations on the page as it is now (WCAG rules shipped
    in the ``axe-playwright-python`` package's axe.min.js; nothing is fetched)."""
    from axe_playwright_python.base import AXE_SCRIPT

    if not page.evaluate("() => typeof window.axe !== 'undefined'"):
        page.evaluate(AXE_SCRIPT)
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    return [f"{v['id']} ({v['impact']}): {v['help']} at "
            f"{[n['target'] for n in v['nodes']][:4]}"
            for v in result["violations"] if v["impact"] in ("serious", "critical")]


def assert_accessible(page: Any, where: str) -> None:
    problems = axe_problems(page)
    assert not problems, f"{where}: " + "; ".join(problems)


def tab_to(page: Any, selector: str, limit: int = 80) -> int:
    """Press Tab until the element ``selector`` has the keyboard focus; the number of presses.

    Starts from the top of the document, as a keyboard user arriving on the page does."""
    page.evaluate("() => { document.activeElement?.blur(); window.scrollTo(0, 0); }")
    for n in range(1, limit + 1):
        page.keyboard.press("Tab")
        if page.evaluate("(sel) => document.activeElement === document.querySelector(sel)",
                         selector):
            return n
    raise AssertionError(f"{selector} was not reached in {limit} presses of Tab")
