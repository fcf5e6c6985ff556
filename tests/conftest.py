"""Shared fixtures. Browser tests drive Debian's /usr/bin/chromium through pytest-playwright.

Never ``playwright install``: the browser is the distribution's package (``make browser-deps``).
The web app for browser tests is started once per test session, in-process, on 127.0.0.1 with a
free port, a temporary database and temporary content folders (see ``web_harness``).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pg_fixtures import db_target, pg_cluster, pg_empty_url, pg_url  # noqa: F401  (fixtures: both backends)
from typer.testing import CliRunner, Result

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
VIEWPORT = {"width": 1366, "height": 768}
"""A common training-room laptop screen: every page must read well at this size."""


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    if not CHROMIUM.exists():
        pytest.fail("/usr/bin/chromium is missing: run `make browser-deps` "
                    "(apt-get install chromium); never `playwright install`")
    return {**browser_type_launch_args, "executable_path": str(CHROMIUM), "headless": True,
            "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {**browser_context_args, "viewport": VIEWPORT}


@pytest.fixture(scope="session")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The running app (one per test session): base URL, context, and a way to add users."""
    from web_harness import start_web

    server = start_web(tmp_path_factory.mktemp("web"))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(autouse=True)
def no_developer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own ``COUNSELSIM_*`` environment (a model, a database) nor
    a ``counselsim.toml`` in the working directory: each test sets what it needs."""
    for key in list(os.environ):
        if key.startswith("COUNSELSIM_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("COUNSELSIM_SETTINGS", os.devnull)


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``counselsim ARGS`` in-process (Typer's CliRunner): ``cli("sessions", "list",
    env={"COUNSELSIM_DB": ...}, input="...")``. Use a subprocess only where the process itself
    is the point (a killed child, the installed console script)."""
    from simulator.cli.main import app

    runner = CliRunner()

    def run(*args: str, env: dict[str, str] | None = None, input: str | None = None) -> Result:
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        return runner.invoke(app, list(args), input=input, catch_exceptions=False)

    return run


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Browser tests run last, the one with its own Playwright first among them.

    Playwright's sync API keeps an event loop running in the main thread once it has started, so
    an ``asyncio.run`` in a later test fails, and a second sync Playwright cannot start after it.
    """
    def rank(item: pytest.Item) -> int:
        path = item.nodeid.split("::")[0]
        if not path.endswith("_browser.py"):
            return 0
        return 1 if path.endswith("test_report_browser.py") else 2

    items.sort(key=rank)  # stable: each group keeps its order
