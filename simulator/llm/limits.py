"""The limits one model call lives within: reply length, context window, timeouts, concurrency.

Why: a local model that is never told to stop talks until its context window is full, and a
history that only grows outgrows any window; a session then fails on every turn. So every client
reply carries a ``max_tokens`` cap (from the persona's verbosity, under a hard ceiling), and the
messages sent are budgeted to the model's window (``budget.fit_messages``). The numbers come from
settings: ``[models."<spec>"]`` first, then the global setting, then a default by provider.

The window can also be learned: when a server says how big its window really is (a context
overflow error names it, vLLM's model list has ``max_model_len``), ``learn_window`` remembers it
for the process, and the next budget uses it.
"""

from __future__ import annotations

import ipaddress
import math
import re
import threading
from urllib.parse import urlsplit

from pydantic import BaseModel

from simulator.llm.providers import parse_spec
from simulator.settings import Settings

DEFAULT_WINDOW = {"openai": 128_000, "anthropic": 200_000, "openai-compatible": 4096}
"""Context windows assumed when none is configured or learned. A local server's is unknown: 4096
is llama.cpp's and Ollama's usual size today (llama-cpp-python's own default is 2048: set
``context_window`` for such a server, or let the first overflow error teach it)."""
REMOTE_CONCURRENCY = 8
"""Requests at once to a hosted endpoint per process (the provider's rate limits still apply)."""
WORDS_TO_TOKENS = 1.4
"""English words per token is about 0.75; a little slack so a reply is rarely cut mid-thought."""

_learned: dict[str, int] = {}
_learned_lock = threading.Lock()


class CallLimits(BaseModel):
    """Everything a client reply needs to know about its model's limits."""

    spec: str
    context_window: int
    reply_max_tokens: int
    """Hard ceiling of a reply in tokens."""
    max_concurrency: int
    connect_timeout_s: float
    first_token_timeout_s: float
    chunk_timeout_s: float
    reply_timeout_s: float
    attempts: int
    """Model calls per reply at most (1 + retries), while no text has arrived yet."""


def is_loopback(base_url: str | None) -> bool:
    """True for a server on this machine (127.0.0.0/8, ::1, localhost)."""
    if not base_url:
        return False
    host = urlsplit(base_url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def endpoint_key(spec: str) -> str:
    """What two model strings share when they talk to the same server (client and grader)."""
    ms = parse_spec(spec)
    return f"{ms.provider}|{ms.base_url or ''}"


def learn_window(spec: str, tokens: int) -> None:
    """Remember the window a server reported for ``spec`` (smaller values win)."""
    if tokens < 256:
        return
    with _learned_lock:
        _learned[spec] = min(tokens, _learned.get(spec, tokens))


def forget_learned() -> None:
    """Tests: start from the configured windows again."""
    with _learned_lock:
        _learned.clear()


def limits_for(spec: str, settings: Settings) -> CallLimits:
    """The limits of ``spec``: per-model settings, then global settings, then provider defaults."""
    ms = parse_spec(spec)
    own = settings.model_settings(spec)
    provider = ms.provider if ms.provider != "offline" else "openai-compatible"
    window = own.context_window or settings.context_window or DEFAULT_WINDOW[provider]
    with _learned_lock:
        window = min(window, _learned.get(spec, window))
    local = ms.provider == "openai-compatible" and is_loopback(ms.base_url)
    concurrency = own.max_concurrency or (1 if local else REMOTE_CONCURRENCY)
    ceiling = own.reply_max_tokens or settings.reply_max_tokens
    return CallLimits(
        spec=spec, context_window=window, reply_max_tokens=min(ceiling, window // 4),
        max_concurrency=concurrency, connect_timeout_s=settings.connect_timeout_s,
        first_token_timeout_s=own.first_token_timeout_s or settings.first_token_timeout_s,
        chunk_timeout_s=own.chunk_timeout_s or settings.chunk_timeout_s,
        reply_timeout_s=own.reply_timeout_s or settings.reply_timeout_s,
        attempts=1 + max(0, settings.max_retries))


def reply_token_cap(max_words: int, ceiling: int) -> int:
    """``max_tokens`` for a reply the planner wants in about ``max_words`` words.

    The prompt asks for the length in words; the cap is a backstop some way above it, so a model
    that keeps to the instruction is never cut, and one that does not stops within a few
    sentences instead of filling the window.
    """
    return max(16, min(ceiling, math.ceil(max_words * WORDS_TO_TOKENS * 1.25) + 16))


def words_for_verbosity(verbosity: float) -> int:
    """A reply length in words for a persona's verbosity (0..1) when no plan gives one."""
    return round(20 + 50 * min(1.0, max(0.0, verbosity)))


_OVERFLOW = [
    re.compile(r"context window of (\d+)", re.I),                     # llama.cpp / llama-cpp-python
    re.compile(r"maximum context length is (\d+)", re.I),             # OpenAI, vLLM
    re.compile(r"context (?:length|size|window)[^\d]{0,30}(\d{3,7})", re.I),
]
_OVERFLOW_WORDS = re.compile(
    r"exceed(?:s|ed)? (?:the )?(?:context|max(?:imum)? context)|context (?:length|window) "
    r"exceeded|maximum context length|prompt is too long|too many tokens|context_length_exceeded",
    re.I)


def context_overflow(text: str) -> tuple[bool, int | None]:
    """Does an error message say the prompt did not fit? And the window it names, if any."""
    if not _OVERFLOW_WORDS.search(text):
        return False, None
    for pattern in _OVERFLOW:
        m = pattern.search(text)
        if m:
            return True, int(m.group(1))
    return True, None


_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*(?=\s|$)")


def trim_to_words(text: str, max_words: int) -> str:
    """The leading whole sentences of ``text`` that fit in ``max_words`` words (the first
    sentence cut at ``max_words`` when even it is longer): a capped reply is shortened rather
    than sent back to the model, which would cost the trainee a second wait."""
    if len(text.split()) <= max_words:
        return text
    kept, count, start = "", 0, 0
    for end in _SENTENCE_END.finditer(text):
        sentence = text[start:end.end()]
        words = len(sentence.split())
        if count + words > max_words:
            break
        kept, count, start = text[:end.end()], count + words, end.end()
    return kept.strip() or " ".join(text.split()[:max_words])


def trim_to_sentence(text: str) -> str:
    """A reply cut off by ``max_tokens``, back to its last whole sentence (as it is when there
    is none: a fragment is better than nothing)."""
    ends = list(_SENTENCE_END.finditer(text))
    if not ends:
        return text.strip()
    return text[: ends[-1].end()].strip()
