"""Shared fixtures. Browser tests drive Debian's /usr/bin/chromium through pytest-playwright.

Never ``playwright install``: the browser is the distribution's package (``make browser-deps``).
The web app for browser tests is started once per test session, in-process, on 127.0.0.1 with a
free port, a temporary database and temporary content folders (see ``web_harness``).
"""

from __future__ import annotations

import importlib.util
import os
import sys
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


PROVIDER_ENV = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_BASE_URL",
                "OPENAI_COMPATIBLE_API_KEY")


@pytest.fixture(autouse=True)
def no_developer_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never see the developer's own ``COUNSELSIM_*`` environment (a model, a database), a
    provider key or base URL, nor a ``counselsim.toml`` in the working directory: each test sets
    what it needs."""
    for key in list(os.environ):
        if key.startswith("COUNSELSIM_") or key in PROVIDER_ENV:
            monkeypatch.delenv(key)
    monkeypatch.setenv("COUNSELSIM_SETTINGS", os.devnull)
    providers = sys.modules.get("simulator.llm.providers")
    if providers is not None:  # "no key: offline" is announced once per process; per test here
        providers._announced.clear()


@pytest.fixture
def stub_llm() -> Iterator[Any]:
    """An OpenAI- and Anthropic-compatible stub server on 127.0.0.1 (``stub_llm_server``)."""
    from stub_llm_server import StubLLMServer

    with StubLLMServer(hang_max_s=10.0) as server:
        yield server


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
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run last, and ``train`` tests only where the training extra is installed.

    Playwright's sync API keeps an event loop running in the main thread once it has started, so
    an ``asyncio.run`` in a later test of the same process fails. Under pytest-xdist each worker
    keeps this order for the tests it is given, so the rule holds per worker too.

    The ``train`` tests fine-tune the transformer with PyTorch, which `make test` does not install
    (on most machines pip would fetch a multi-GB CUDA build); `make test-train` installs the
    ``train`` extra and runs them.
    """
    items.sort(key=lambda item: item.nodeid.split("::")[0].endswith("_browser.py"))
    if importlib.util.find_spec("torch") is None:
        skip = pytest.mark.skip(reason="needs the train extra (torch): run `make test-train`")
        for item in items:
            if "train" in item.keywords:
                item.add_marker(skip)
