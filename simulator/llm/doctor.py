"""``counselsim doctor``: check the configured client and grader models the way a session uses
them, and say what to fix, one line each.

Checks, per model string (client and grader; once when they are the same): the string parses;
the key is set (hosted providers); the server answers its model list and lists the model; a
short completion; a streamed reply within the trainee's time limits and with the reply cap; and,
for the grader, structured output validated against a small schema by the same means grading
uses. A check that cannot run because an earlier one failed is skipped, not failed twice.
"""

from __future__ import annotations

import asyncio
import os
import time
from typing import Any, Literal

from langchain_core.messages import HumanMessage, SystemMessage
from pydantic import BaseModel, ValidationError

from simulator.llm.availability import list_models, model_listed
from simulator.llm.limits import is_loopback, limits_for
from simulator.llm.providers import (
    BASE_URL_ENV,
    KEY_ENV,
    ModelUnavailable,
    chat_model,
    parse_spec,
    redact_spec,
    redact_url,
)
from simulator.llm.streaming import stream_reply
from simulator.llm.structured import method_for, structured_runnable
from simulator.settings import Settings

Outcome = Literal["ok", "fix", "skip", "note"]
HOSTED_BASE = {"openai": "https://api.openai.com/v1", "anthropic": "https://api.anthropic.com/v1"}


class Check(BaseModel):
    role: str
    spec: str
    name: str
    outcome: Outcome
    detail: str
    seconds: float | None = None

    def line(self) -> str:
        mark = {"ok": "ok  ", "fix": "FIX ", "skip": "skip", "note": "note"}[self.outcome]
        took = f" ({self.seconds:.2f} s)" if self.seconds is not None else ""
        return f"{mark} {self.role:<6} {self.name}: {self.detail}{took}"


class DoctorProbe(BaseModel):
    """A tiny structured answer: enough to see that the model keeps to a schema."""

    ok: bool
    word: str


def _hosted_models(provider: str) -> list[dict[str, Any]]:
    import httpx

    base = os.environ.get(BASE_URL_ENV[provider]) or HOSTED_BASE[provider]
    if provider == "anthropic" and not base.rstrip("/").endswith("/v1"):
        base = base.rstrip("/") + "/v1"
    key = os.environ[KEY_ENV[provider]]
    headers = ({"Authorization": f"Bearer {key}"} if provider == "openai"
               else {"x-api-key": key, "anthropic-version": "2023-06-01"})
    r = httpx.get(base.rstrip("/") + "/models", headers=headers, timeout=10.0)
    r.raise_for_status()
    data = r.json()
    return [e for e in data.get("data", []) if isinstance(e, dict)]


async def _check_model(spec: str, role: str, settings: Settings, structured: bool
                       ) -> list[Check]:
    shown = redact_spec(spec)
    out: list[Check] = []

    def add(name: str, outcome: Outcome, detail: str, seconds: float | None = None) -> None:
        out.append(Check(role=role, spec=shown, name=name, outcome=outcome, detail=detail,
                         seconds=seconds))

    try:
        ms = parse_spec(spec)
    except ValueError as exc:
        add("model string", "fix", str(exc))
        return out
    if ms.provider == "offline":
        add("model", "ok", "offline (authored lines / offline coder): nothing to check")
        return out
    if ms.provider in KEY_ENV and ms.provider != "openai-compatible" \
            and not os.environ.get(KEY_ENV[ms.provider]):
        add("key", "fix", f"set {KEY_ENV[ms.provider]} in the environment of counselsim")
        return out
    # reachable, and the model listed
    t0 = time.perf_counter()
    try:
        entries = (list_models(ms.base_url) if ms.base_url is not None
                   else _hosted_models(ms.provider))
    except Exception as exc:
        where = redact_url(ms.base_url) or ms.provider
        add("reachable", "fix", f"{where} did not answer GET /models ({type(exc).__name__}): "
            "start the server, or check the URL (it usually ends in /v1)")
        return out
    add("reachable", "ok", f"{redact_url(ms.base_url) or ms.provider} answers",
        time.perf_counter() - t0)
    served = [str(e.get("id") or e.get("name") or "") for e in entries]
    served = [s for s in served if s]
    if not served:
        add("model listed", "note", "the server lists no models: the name cannot be checked")
    elif model_listed(ms.model, served):
        add("model listed", "ok", f"{ms.model} is served")
    else:
        add("model listed", "fix", f"{ms.model} is not served here (it serves "
            f"{', '.join(served[:5])}): use that name in the model string, or start the server "
            "with this one (llama-cpp-python: --model_alias)")
        return out
    limits = limits_for(spec, settings)
    model = chat_model(spec, settings, probe=False)
    if model is None:
        add("model", "fix", "could not be built (see the warning above)")
        return out
    # a short completion
    t0 = time.perf_counter()
    try:
        capped = model.bind(max_tokens=16)
        answer = await asyncio.wait_for(capped.ainvoke([HumanMessage("Say: ready")]),
                                        limits.first_token_timeout_s + limits.chunk_timeout_s)
        text = answer.content if isinstance(answer.content, str) else str(answer.content)
        add("completion", "ok" if text.strip() else "fix",
            f"answered {text.strip()[:40]!r}" if text.strip() else "answered nothing",
            time.perf_counter() - t0)
    except Exception as exc:
        add("completion", "fix", f"{type(exc).__name__}: {str(exc)[:160]}",
            time.perf_counter() - t0)
        return out
    # streaming, within the reply limits (what a trainee waits for)
    t0 = time.perf_counter()
    first: float | None = None
    pieces: list[str] = []
    try:
        messages = [SystemMessage("You are a client in a counseling session. Answer in one short "
                                  "sentence."), HumanMessage("How has your week been?")]
        async for piece in stream_reply(model, messages, limits, spec=spec, role=role,
                                        max_tokens=min(64, limits.reply_max_tokens)):
            first = first if first is not None else time.perf_counter() - t0
            pieces.append(piece)
        add("streaming", "ok", f"first text after {first or 0:.2f} s, {len(pieces)} pieces "
            f"(limits: first token {limits.first_token_timeout_s:g} s, window "
            f"{limits.context_window} tokens, reply cap {limits.reply_max_tokens})",
            time.perf_counter() - t0)
    except ModelUnavailable as exc:
        add("streaming", "fix", str(exc).split(" Your turn is saved")[0],
            time.perf_counter() - t0)
    if structured:
        await _check_structured(model, spec, settings, add)
    if ms.provider == "openai-compatible" and is_loopback(ms.base_url):
        add("concurrency", "note", f"{limits.max_concurrency} request(s) at a time to this server "
            "(client replies first; set max_concurrency if it has more slots)")
    return out


async def _check_structured(model: Any, spec: str, settings: Settings, add: Any) -> None:
    method = method_for(spec, settings.model_settings(spec).structured_output)
    t0 = time.perf_counter()
    try:
        runnable = structured_runnable(model, DoctorProbe, spec, method)
        answer = await asyncio.wait_for(runnable.ainvoke([
            SystemMessage("Answer with JSON only."),
            HumanMessage("Set ok to true and word to the word 'yes'.")]), 60)
        if isinstance(answer, dict) and "raw" in answer and "parsed" in answer:
            answer = answer["parsed"]
        DoctorProbe.model_validate(answer)
        add("structured output", "ok", f"{method}: a valid answer", time.perf_counter() - t0)
    except ValidationError as exc:
        fields = ", ".join(".".join(map(str, e["loc"])) for e in exc.errors()) or "answer"
        add("structured output", "fix", f"{method}: the answer did not fit the schema "
            f"({fields}); try another structured_output for this model, or a stronger model",
            time.perf_counter() - t0)
    except Exception as exc:
        hint = (" (llama-cpp-python rejects json_schema: use json_mode)"
                if method == "json_schema" else "")
        add("structured output", "fix", f"{method}: {type(exc).__name__}: "
            f"{str(exc)[:140]}{hint}", time.perf_counter() - t0)


async def run_doctor(settings: Settings) -> list[Check]:
    """Every check for the configured client and grader models."""
    checks: list[Check] = []
    roles = [("client", settings.client_model, False), ("grader", settings.grader_model, True)]
    if settings.client_model == settings.grader_model:
        roles = [("both", settings.client_model, True)]
    for role, spec, structured in roles:
        checks += await _check_model(spec, role, settings, structured)
    return checks
