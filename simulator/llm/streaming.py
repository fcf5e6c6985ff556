"""Stream one client reply within its limits, and say exactly what went wrong when it fails.

Why a loop of our own rather than the SDK's retries: a trainee waits on this, so the waits are
bounded by the clock the trainee sees (``CallLimits``): the first text within
``first_token_timeout_s``, no silence longer than ``chunk_timeout_s``, the whole reply within
``reply_timeout_s``, every attempt included. Only failures that a second try can fix are retried
(rate limit, server error, dropped connection, a context overflow after shortening the history),
and only before any text reached the trainee. The attempts counted are the requests really sent,
and the message names what happened: a timeout and where, a context overflow, a stream the
server ended early (llama-cpp-python does this to a running reply when another request arrives),
the wrong model.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from langchain_core.messages import BaseMessage

from simulator.llm.budget import ContextTooSmall, fit_messages
from simulator.llm.gate import EndpointGate
from simulator.llm.limits import CallLimits, context_overflow, learn_window
from simulator.llm.providers import ModelUnavailable, classify, parse_spec, unavailable

log = logging.getLogger("counselsim.streaming")

RETRYABLE = frozenset({"rate_limited", "server_error", "connection", "context_overflow"})
MAX_BACKOFF_S = 4.0


class StreamProblem(Exception):
    """Something our own checks found (timeouts, a stream cut short). ``kind`` as in providers."""

    def __init__(self, kind: str, what: str) -> None:
        super().__init__(what)
        self.kind, self.what = kind, what


def content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    out: list[str] = []
    for part in content if isinstance(content, list) else []:
        if isinstance(part, str):
            out.append(part)
        elif isinstance(part, dict) and part.get("type", "text") in ("text", "text_delta"):
            out.append(str(part.get("text", "")))
    return "".join(out)


def bind_reply_cap(model: Any, spec: str, max_tokens: int) -> Any:
    """The model with ``max_tokens`` sent on every request. ChatOpenAI sends it as
    ``max_completion_tokens``; an OpenAI-compatible server (llama.cpp, Ollama) reads
    ``max_tokens``, so it gets both."""
    if not hasattr(model, "bind"):
        return model
    name = type(model).__name__
    if name not in ("ChatOpenAI", "ChatAnthropic"):
        return model  # fakes and wrappers take no such argument
    kwargs: dict[str, Any] = {"max_tokens": max_tokens}
    if name == "ChatOpenAI" and parse_spec(spec).provider == "openai-compatible":
        kwargs["extra_body"] = {"max_tokens": max_tokens}
    return model.bind(**kwargs)


def _retry_after(exc: BaseException) -> float | None:
    headers = getattr(getattr(exc, "response", None), "headers", None)
    if not headers:
        return None
    try:
        if headers.get("retry-after-ms"):
            return float(headers["retry-after-ms"]) / 1000
        if headers.get("retry-after"):
            return float(headers["retry-after"])
    except (TypeError, ValueError):
        return None
    return None


def kind_of(exc: BaseException) -> str:
    if isinstance(exc, StreamProblem):
        return exc.kind
    if "ContextOverflow" in "".join(type(c).__name__ for c in type(exc).__mro__):
        return "context_overflow"
    if context_overflow(str(exc))[0]:
        return "context_overflow"
    if "No generation chunks were returned" in str(exc):
        return "empty"
    if getattr(exc, "status_code", None) == 404 and "model" in str(exc).lower():
        return "wrong_model"  # OpenAI, vLLM: "The model `x` does not exist"
    return classify(exc)


async def _one_stream(model: Any, messages: list[BaseMessage], limits: CallLimits,
                      deadline: float, checks_finish: bool, info: dict[str, Any]
                      ) -> AsyncIterator[str]:
    """Yield text pieces of one request, enforcing the first-token, chunk and reply timeouts."""
    loop = asyncio.get_running_loop()
    stream = model.astream(messages).__aiter__()
    got_text = False
    finish: str | None = None
    try:
        while True:
            wait = limits.chunk_timeout_s if got_text else limits.first_token_timeout_s
            left = deadline - loop.time()
            try:
                chunk = await asyncio.wait_for(stream.__anext__(), max(0.001, min(wait, left)))
            except StopAsyncIteration:
                break
            except TimeoutError:
                if left <= wait:
                    raise StreamProblem("timeout", f"did not finish its reply within "
                                        f"{limits.reply_timeout_s:g} s") from None
                if got_text:
                    raise StreamProblem("timeout", f"stopped sending for {wait:g} s in the "
                                        "middle of its reply") from None
                raise StreamProblem("timeout", f"did not start answering within "
                                    f"{wait:g} s") from None
            meta = getattr(chunk, "response_metadata", None) or {}
            finish = meta.get("finish_reason") or meta.get("stop_reason") or finish
            piece = content_text(getattr(chunk, "content", ""))
            if piece:
                if not got_text:
                    piece = piece.lstrip()
                    if not piece:
                        continue
                got_text = True
                yield piece
    finally:
        with contextlib.suppress(Exception):
            await stream.aclose()
    info["finish"] = finish
    info["capped"] = finish in ("length", "max_tokens")
    if checks_finish and finish is None:
        raise StreamProblem("ended_early", "ended its reply early: the server closed the stream "
                            "(llama-cpp-python: start it with --interrupt_requests False)")
    if not got_text:
        raise StreamProblem("empty", "sent an empty reply")


async def stream_reply(model: Any, messages: Sequence[BaseMessage], limits: CallLimits,
                       *, spec: str, role: str = "client", max_tokens: int | None = None,
                       gate: EndpointGate | None = None,
                       on_failure: Callable[[str, str], None] | None = None,
                       info: dict[str, Any] | None = None) -> AsyncIterator[str]:
    """Yield the reply's text; raise ``ModelUnavailable`` naming what happened and the attempts.

    ``messages`` are fitted to ``limits.context_window`` (again, smaller, after an overflow the
    server reports). ``gate`` is the endpoint's gate (the reply holds a slot while it streams).
    ``on_failure(spec, kind)`` is told about a failure (the availability monitor re-checks).
    ``info``, when given, is filled in: ``finish`` (the finish reason) and ``capped`` (True when
    the reply hit ``max_tokens``: the caller may trim it to its last whole sentence).
    """
    info = info if info is not None else {}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limits.reply_timeout_s
    cap = min(max_tokens or limits.reply_max_tokens, limits.reply_max_tokens)
    bound = bind_reply_cap(model, spec, cap)
    checks_finish = type(model).__name__ in ("ChatOpenAI", "ChatAnthropic")
    window = limits.context_window
    attempt = 0
    while True:
        attempt += 1
        started = time.perf_counter()
        sent_text = False
        try:
            fitted = fit_messages(messages, window, cap)
        except ContextTooSmall as exc:
            raise ModelUnavailable(f"The {role} model's context window is too small: {exc}.",
                                   spec=spec, kind="context_overflow", recoverable=False) from exc
        try:
            async with gate.slot("reply") if gate is not None else contextlib.nullcontext():
                async for piece in _one_stream(bound, fitted, limits, deadline, checks_finish,
                                               info):
                    sent_text = True
                    yield piece
            return
        except ModelUnavailable:
            raise
        except Exception as exc:
            kind = kind_of(exc)
            log.info("%s reply attempt %d failed after %.2f s: %s", role, attempt,
                     time.perf_counter() - started, kind)
            if kind == "context_overflow":
                _, told = context_overflow(str(exc))
                learned = told or int(window * 0.75)
                learn_window(spec, learned)
                window = min(window, learned)
            left = deadline - loop.time()
            wait = min(MAX_BACKOFF_S, _retry_after(exc) or 0.25 * 2 ** (attempt - 1))
            if sent_text or kind not in RETRYABLE or attempt >= limits.attempts or left < wait + 1:
                if on_failure is not None:
                    with contextlib.suppress(Exception):
                        on_failure(spec, kind)
                raise failure(exc, kind, spec, role, attempt, window) from exc
            await asyncio.sleep(0 if kind == "context_overflow" else wait)


def failure(exc: BaseException, kind: str, spec: str, role: str, attempts: int,
            window: int) -> ModelUnavailable:
    """The trainee-facing error for a failed reply (real attempt count, what happened)."""
    what = None
    if isinstance(exc, StreamProblem):
        what = exc.what
    elif kind == "context_overflow":
        what = (f"could not fit the conversation into its context window (about {window} "
                "tokens, history shortened): set context_window to the server's real size")
    elif kind == "empty":
        what = "sent nothing: an empty reply, or a stream the server closed at once"
    elif kind == "wrong_model":
        what = ("is not known to the server (HTTP 404): check the model name "
                "(`counselsim doctor` lists what it serves)")
    return unavailable(exc, spec, role, attempts, kind=kind, what=what)
