"""One client engine step (client/engine.py) serves practice, self-play and the preview."""

from __future__ import annotations

import ast
import random
from pathlib import Path

from engine_fixtures import dana
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from test_session import make_settings

from simulator.client import engine
from simulator.service.practice import Practice
from simulator.settings import ROOT
from simulator.web.context import WebContext


def test_only_the_engine_calls_the_planner() -> None:
    callers = []
    for path in sorted((ROOT / "simulator").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "simulator.client.planner":
                names = {a.name for a in node.names}
                if names & {"plan_next", "opening_plan"}:
                    callers.append(path.relative_to(ROOT).as_posix())
    assert callers == ["simulator/client/engine.py"]


def test_a_step_is_pure_and_after_remembers_the_reply() -> None:
    p = dana()
    before = engine.after(engine.opening(p))
    a = engine.respond(p, before, ["Q", "OQ"], "How is work?", random.Random(1))
    b = engine.respond(p, before, ["Q", "OQ"], "How is work?", random.Random(1))
    assert a == b and a.state.turn == 1
    done = engine.after(a)
    assert done.recent_acts[-1] == a.plan.act


def _context(tmp_path: Path, model: FakeListChatModel | None) -> WebContext:
    practice = Practice.from_settings(make_settings(tmp_path))
    practice.client_model = model
    return WebContext(practice=practice)


def test_preview_uses_the_configured_client_model(tmp_path: Path) -> None:
    model = FakeListChatModel(responses=["From the model, then.", "Still the model."])
    ctx = _context(tmp_path, model)
    replies = ctx.preview(dana(), ["How have things been?", "It sounds like a lot."])
    assert replies[1:] == ["From the model, then.", "Still the model."]
    assert replies[0] in [dana().fill(t) for t in dana().lines.opening]  # authored opening
    ctx.practice.store.close()


def test_preview_offline_replays_the_same_words(tmp_path: Path) -> None:
    ctx = _context(tmp_path, None)
    said = ["How have things been?", "It sounds like a lot."]
    assert ctx.preview(dana(), said) == ctx.preview(dana(), said)
    assert len(ctx.preview(dana(), said)) == 3
    ctx.practice.store.close()
