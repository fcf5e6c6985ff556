"""One factory from a model string to a LangChain chat model; one clear error when a model fails.

Model strings (client and grader are configured separately, see ``Settings``):

* ``offline`` -> ``None``: callers use the offline realizer / offline grader;
* ``openai:<model>`` -> ``ChatOpenAI`` (key from ``OPENAI_API_KEY``; ``OPENAI_BASE_URL`` honoured);
* ``anthropic:<model>`` -> ``ChatAnthropic`` (key ``ANTHROPIC_API_KEY``; ``ANTHROPIC_BASE_URL``);
* ``openai-compatible:<model>@<base_url>`` -> ``ChatOpenAI`` at that server (Ollama, vLLM,
  llama.cpp); key from ``OPENAI_COMPATIBLE_API_KEY`` if the server wants one.

Keys come from the environment only, are handed straight to the SDK and are never logged or
returned. With no key (or, for a compatible server, nothing listening) the factory returns
``None`` and logs one warning per model string: the app runs offline and says so
(``describe_models`` gives the UI header its words).

Resilience: the SDKs' own retries are off (``max_retries=0``) so that every attempt is one we
count and can report truthfully. A client reply is retried by ``llm.streaming`` within the
trainee's time limits; a grade by the grader's own attempts. Each request has an HTTP timeout
(connect: ``Settings.connect_timeout_s``; reading: ``Settings.request_timeout_s``), a
client-side ``InMemoryRateLimiter`` is shared by every model on the same endpoint, and a failure
ends in ``ModelUnavailable``: one exception with a message a trainee can act on ("your turn is
saved, send it again or switch to offline") that says what happened and how many requests were
sent.
"""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import threading
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from langchain_core.language_models.chat_models import BaseChatModel
from langchain_core.rate_limiters import InMemoryRateLimiter
from pydantic import BaseModel

from simulator import errors
from simulator.settings import Settings, defaults

log = logging.getLogger("counselsim.providers")

Provider = Literal["offline", "openai", "anthropic", "openai-compatible"]
StructuredMethod = Literal["json_schema", "function_calling", "json_mode"]

KEY_ENV: dict[str, str] = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
                           "openai-compatible": "OPENAI_COMPATIBLE_API_KEY"}
BASE_URL_ENV: dict[str, str] = {"openai": "OPENAI_BASE_URL", "anthropic": "ANTHROPIC_BASE_URL"}
PROBE_TIMEOUT_S = 0.5
"""How long ``chat_model`` waits to see whether an OpenAI-compatible server is listening."""

_COMPAT = re.compile(r"^(?P<model>.+?)@(?P<url>https?://\S+)$")


class ModelSpec(BaseModel):
    """A parsed model string."""

    spec: str
    provider: Provider
    model: str = ""
    base_url: str | None = None


class ModelUnavailable(errors.ModelUnavailable):
    """A model could not give an answer after every retry. ``str(exc)`` is safe to show a trainee.

    ``kind`` is one of timeout, rate_limited, server_error, connection, auth, bad_request,
    malformed, empty, error: enough for a caller to decide whether to offer "try again".
    """

    def __init__(self, message: str, *, spec: str = "", kind: str = "error",
                 recoverable: bool = True) -> None:
        super().__init__(message)
        self.spec, self.kind, self.recoverable = spec, kind, recoverable


class ModelInfo(BaseModel):
    """What the UI header says about one configured model (no key, no credentials in URLs)."""

    role: str
    spec: str
    provider: Provider
    model: str
    base_url: str | None
    active: bool
    """False when the role runs offline (configured so, or fallen back)."""
    notice: str | None
    label: str


def parse_spec(spec: str) -> ModelSpec:
    """Parse a model string; a malformed one is a ``ValueError`` naming the accepted forms."""
    spec = spec.strip()
    if spec in ("", "offline"):
        return ModelSpec(spec="offline", provider="offline")
    provider, sep, rest = spec.partition(":")
    if sep and rest:
        if provider in ("openai", "anthropic"):
            return ModelSpec(spec=spec, provider=provider, model=rest)
        if provider == "openai-compatible":
            m = _COMPAT.match(rest)
            if m:
                return ModelSpec(spec=spec, provider="openai-compatible", model=m["model"],
                                 base_url=m["url"].rstrip("/"))
    raise ValueError(
        f"unknown model {spec!r}: use offline, openai:<model>, anthropic:<model> or "
        "openai-compatible:<model>@<base_url> (e.g. openai-compatible:llama3@http://127.0.0.1:11434/v1)")


def redact_url(url: str | None) -> str | None:
    """A base URL without user:password (for logs and the UI)."""
    if not url:
        return url
    parts = urlsplit(url)
    if parts.username or parts.password:
        host = parts.hostname or ""
        netloc = f"{host}:{parts.port}" if parts.port else host
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def redact_spec(spec: str) -> str:
    """A model string safe to show: credentials removed from a compatible server's URL."""
    try:
        ms = parse_spec(spec)
    except ValueError:
        return spec.split("@", 1)[0]
    if ms.provider == "openai-compatible":
        return f"openai-compatible:{ms.model}@{redact_url(ms.base_url)}"
    return ms.spec


def _server_listening(base_url: str) -> bool:
    parts = urlsplit(base_url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", port), PROBE_TIMEOUT_S):
            return True
    except OSError:
        return False


def offline_reason(ms: ModelSpec, *, probe: bool = True) -> str | None:
    """Why this model cannot be used right now (``None``: it can). Never mentions a key's value."""
    if ms.provider == "offline":
        return "configured offline"
    if ms.provider in ("openai", "anthropic") and not os.environ.get(KEY_ENV[ms.provider]):
        return f"{KEY_ENV[ms.provider]} is not set"
    if ms.provider == "openai-compatible" and probe and ms.base_url \
            and not _server_listening(ms.base_url):
        return f"no server is listening at {redact_url(ms.base_url)}"
    return None


_announced: set[str] = set()
_announce_lock = threading.Lock()


def _announce_offline(ms: ModelSpec, reason: str) -> None:
    with _announce_lock:
        if ms.spec in _announced:
            return
        _announced.add(ms.spec)
    log.warning("model %s is unavailable (%s): running offline", redact_spec(ms.spec), reason)


_limiters: dict[tuple[str, str, float], InMemoryRateLimiter] = {}
_limiters_lock = threading.Lock()


def rate_limiter_for(ms: ModelSpec, requests_per_second: float) -> InMemoryRateLimiter:
    """One limiter per endpoint, shared by client and grader models that use it."""
    key = (ms.provider, ms.base_url or "", requests_per_second)
    with _limiters_lock:
        if key not in _limiters:
            _limiters[key] = InMemoryRateLimiter(
                requests_per_second=requests_per_second, check_every_n_seconds=0.02,
                max_bucket_size=max(1.0, requests_per_second))
        return _limiters[key]


def chat_model(spec: str, settings: Settings | None = None, *, max_tokens: int | None = None,
               temperature: float | None = None, probe: bool = True) -> BaseChatModel | None:
    """The LangChain chat model for ``spec``, or ``None`` for offline (configured or fallen back).

    ``probe`` checks that an OpenAI-compatible server is listening before handing it out.
    Raises ``ValueError`` for a malformed model string.
    """
    ms = parse_spec(spec)
    reason = offline_reason(ms, probe=probe)
    if reason is not None:
        if ms.provider != "offline":
            _announce_offline(ms, reason)
        return None
    s = settings or defaults()
    import httpx

    common: dict[str, Any] = {
        "max_retries": 0,
        "rate_limiter": rate_limiter_for(ms, s.requests_per_second),
    }
    timeout = httpx.Timeout(s.request_timeout_s, connect=min(s.connect_timeout_s,
                                                             s.request_timeout_s))
    if temperature is not None:
        common["temperature"] = temperature
    if ms.provider == "anthropic":
        from langchain_anthropic import ChatAnthropic

        kwargs: dict[str, Any] = {**common, "model": ms.model,
                                  "api_key": os.environ[KEY_ENV["anthropic"]],
                                  "max_tokens": max_tokens or 1024,
                                  "default_request_timeout": s.request_timeout_s}
        if os.environ.get(BASE_URL_ENV["anthropic"]):
            kwargs["base_url"] = os.environ[BASE_URL_ENV["anthropic"]]
        return ChatAnthropic(**kwargs)

    from langchain_openai import ChatOpenAI

    kwargs = {**common, "model": ms.model, "timeout": timeout}
    if max_tokens is not None:
        kwargs["max_tokens"] = max_tokens
    if ms.provider == "openai":
        kwargs["api_key"] = os.environ[KEY_ENV["openai"]]
        if os.environ.get(BASE_URL_ENV["openai"]):
            kwargs["base_url"] = os.environ[BASE_URL_ENV["openai"]]
    else:
        kwargs["api_key"] = os.environ.get(KEY_ENV["openai-compatible"]) or "unused"
        kwargs["base_url"] = ms.base_url
        kwargs["stream_usage"] = True
    return ChatOpenAI(**kwargs)


def structured_output_method(spec: str) -> StructuredMethod:
    """The ``with_structured_output(method=...)`` each provider accepts reliably.

    OpenAI: ``json_schema`` (strict schemas). Anthropic: ``function_calling`` (tool use).
    OpenAI-compatible servers: ``json_mode`` (``response_format={"type": "json_object"}``), because
    llama.cpp rejects ``json_schema`` with HTTP 500. Validate the result with pydantic either way.
    """
    provider = parse_spec(spec).provider
    if provider == "openai":
        return "json_schema"
    if provider == "anthropic":
        return "function_calling"
    if provider == "openai-compatible":
        return "json_mode"
    raise ValueError("the offline model has no structured output")


def describe_model(spec: str, role: str, *, probe: bool = True) -> ModelInfo:
    ms = parse_spec(spec)
    reason = offline_reason(ms, probe=probe)
    where = f" at {redact_url(ms.base_url)}" if ms.base_url else ""
    if ms.provider == "offline":
        label, notice = f"{role}: offline", None
    elif reason is not None:
        label = f"{role}: offline ({redact_spec(ms.spec)} unavailable)"
        notice = (f"The {role} model {redact_spec(ms.spec)} is unavailable ({reason}); "
                  "running offline.")
    else:
        label, notice = f"{role}: {ms.provider} {ms.model}{where}", None
    return ModelInfo(role=role, spec=redact_spec(ms.spec), provider=ms.provider,
                     model=ms.model, base_url=redact_url(ms.base_url), active=reason is None,
                     notice=notice, label=label)


def describe_models(settings: Settings | None = None, *, probe: bool = True) -> list[ModelInfo]:
    """The client and grader models as the UI header shows them, offline fallbacks announced."""
    s = settings or defaults()
    return [describe_model(s.client_model, "client", probe=probe),
            describe_model(s.grader_model, "grader", probe=probe)]


# --- errors -----------------------------------------------------------------------------------

def _status_of(exc: BaseException) -> int | None:
    status = getattr(exc, "status_code", None)
    if isinstance(status, int):
        return status
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    return status if isinstance(status, int) else None


def classify(exc: BaseException) -> str:
    """The ``ModelUnavailable.kind`` for an exception raised by an SDK, httpx or asyncio."""
    import asyncio

    import anthropic
    import httpx
    import openai

    timeouts = (openai.APITimeoutError, anthropic.APITimeoutError, httpx.TimeoutException,
                asyncio.TimeoutError, TimeoutError)
    if isinstance(exc, timeouts) or "Timeout" in type(exc).__name__:  # also httpcore's
        return "timeout"
    if isinstance(exc, openai.APIResponseValidationError | anthropic.APIResponseValidationError
                  | json.JSONDecodeError):
        return "malformed"
    status = _status_of(exc)
    if status == 429:
        return "rate_limited"
    if status in (401, 403):
        return "auth"
    if status is not None and status >= 500:
        return "server_error"
    if status is not None and status >= 400:
        return "bad_request"
    if isinstance(exc, openai.APIConnectionError | anthropic.APIConnectionError
                  | httpx.TransportError | ConnectionError):
        return "connection"
    if isinstance(exc, ValueError | KeyError | TypeError) and "json" in str(exc).lower():
        return "malformed"
    return "error"


_WHAT = {
    "timeout": "did not answer in time",
    "rate_limited": "is rate-limited by the provider (HTTP 429)",
    "server_error": "had a server error",
    "connection": "could not be reached",
    "auth": "refused the API key (check the key in the environment)",
    "bad_request": "rejected the request",
    "malformed": "sent a reply that could not be read",
    "empty": "sent an empty reply",
    "context_overflow": "could not fit the conversation into its context window",
    "ended_early": "ended its reply before finishing (the server closed the stream)",
    "wrong_model": "is not the model the server serves",
    "error": "failed",
}


def unavailable(exc: BaseException, spec: str, role: str = "client",
                attempts: int | None = None, *, kind: str | None = None,
                what: str | None = None) -> ModelUnavailable:
    """Turn whatever a model call raised into one clear, recoverable ``ModelUnavailable``.

    ``attempts`` is the number of requests really sent (quoted in the message when given);
    ``kind`` and ``what`` override the classification and its words (``llm.streaming`` knows
    more than the exception says: which timeout, a stream cut short).
    """
    if isinstance(exc, ModelUnavailable):
        return exc
    kind = kind or classify(exc)
    tries = ""
    if attempts:
        tries = f" ({attempts} request{'s' if attempts != 1 else ''} sent)"
    status = _status_of(exc)
    code = f" (HTTP {status})" if status and kind in ("server_error", "bad_request") else ""
    shown = redact_spec(spec)
    again = ("Your turn is saved: send it again in a moment, or switch the "
             f"{role} model to offline.")
    if kind == "auth":
        again = f"Your turn is saved. Fix the key or switch the {role} model to offline."
    elif kind == "wrong_model":
        again = (f"Your turn is saved. Fix the model name or switch the {role} model to "
                 "offline.")
    said = what or _WHAT.get(kind, _WHAT["error"])
    msg = f"The {role} model {shown} {said}{code}{tries}. {again}"
    log.warning("%s model %s unavailable: %s (%s)", role, shown, kind, type(exc).__name__)
    return ModelUnavailable(msg, spec=spec, kind=kind,
                            recoverable=kind not in ("auth", "wrong_model"))


def empty_reply(spec: str, role: str = "client") -> ModelUnavailable:
    return ModelUnavailable(
        f"The {role} model {redact_spec(spec)} sent an empty reply. Your turn is saved: send it "
        f"again, or switch the {role} model to offline.", spec=spec, kind="empty")


def attempts_of(model: Any) -> int | None:
    """1 + the SDK retries a LangChain chat model is configured with (None if it does not say)."""
    retries = getattr(model, "max_retries", None)
    return 1 + retries if isinstance(retries, int) else None


def spec_of(model: Any) -> str:
    """Best-effort model string for a LangChain chat model (for messages, never with keys)."""
    name = type(model).__name__
    model_name = getattr(model, "model_name", None) or getattr(model, "model", None) or name
    if name == "ChatAnthropic":
        return f"anthropic:{model_name}"
    if name == "ChatOpenAI":
        base = getattr(model, "openai_api_base", None)
        if base and "api.openai.com" not in base:
            return f"openai-compatible:{model_name}@{redact_url(base)}"
        return f"openai:{model_name}"
    return str(model_name)
