"""Is each configured model usable right now? Checked at start, after a failure, and every few
seconds in the background, so a server started after the app is used, and a server that died is
shown as down (the web header reads ``Availability.describe``).

What a check does (cheap, no completion): an API key is present for a hosted provider; for an
OpenAI-compatible server, ``GET <base_url>/models`` answers within ``CHECK_TIMEOUT_S`` and, when
it lists models, lists the configured one (a llama.cpp server answers with whatever it loaded, so
a wrong name would otherwise go unnoticed and be recorded in every session). vLLM's list also
says the model's context size (``max_model_len``), which is then used for the budget. Hosted
providers are not called here: ``counselsim doctor`` makes a real request.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any, Literal

from pydantic import BaseModel

from simulator.llm.limits import learn_window
from simulator.llm.providers import KEY_ENV, ModelInfo, parse_spec, redact_spec, redact_url

log = logging.getLogger("counselsim.availability")

CHECK_TIMEOUT_S = 2.0
State = Literal["offline", "ok", "down", "wrong_model", "no_key"]


class ModelStatus(BaseModel):
    spec: str
    """Redacted model string."""
    state: State
    reason: str | None = None
    served: list[str] = []
    """Model ids the server lists (empty when it has no list)."""
    checked_at: float = 0.0

    @property
    def usable(self) -> bool:
        return self.state == "ok"


def model_listed(model: str, served: list[str]) -> bool:
    """Is ``model`` among the server's ids? Ollama adds ``:latest``; llama.cpp may list a path."""
    if not served:
        return True
    names = set(served)
    names |= {s.removesuffix(":latest") for s in served}
    names |= {s.rsplit("/", 1)[-1] for s in served}
    return model in names or model.removesuffix(":latest") in names


def list_models(base_url: str, timeout_s: float = CHECK_TIMEOUT_S) -> list[dict[str, Any]]:
    """The entries of ``GET base_url/models``; raises ``httpx`` errors when it cannot."""
    import httpx

    headers = {}
    key = os.environ.get(KEY_ENV["openai-compatible"])
    if key:
        headers["Authorization"] = f"Bearer {key}"
    response = httpx.get(base_url.rstrip("/") + "/models", timeout=timeout_s, headers=headers)
    if response.status_code == 404:
        return []
    response.raise_for_status()
    data = response.json()
    entries = data.get("data") if isinstance(data, dict) else data
    if isinstance(data, dict) and entries is None:
        entries = data.get("models", [])  # Ollama's native shape
    return [e for e in entries or [] if isinstance(e, dict)]


def check_model(spec: str) -> ModelStatus:
    """One check of ``spec`` now (see the module docstring)."""
    ms = parse_spec(spec)
    shown = redact_spec(spec)
    now = time.time()
    if ms.provider == "offline":
        return ModelStatus(spec=shown, state="offline", checked_at=now)
    if ms.provider in ("openai", "anthropic"):
        if not os.environ.get(KEY_ENV[ms.provider]):
            return ModelStatus(spec=shown, state="no_key", checked_at=now,
                               reason=f"{KEY_ENV[ms.provider]} is not set")
        return ModelStatus(spec=shown, state="ok", checked_at=now)
    assert ms.base_url is not None
    try:
        entries = list_models(ms.base_url)
    except Exception as exc:
        from simulator.llm.providers import classify

        kind = classify(exc)
        why = ("is not answering" if kind == "timeout" else "could not be reached"
               if kind == "connection" else f"answered its model list with an error ({kind})")
        return ModelStatus(spec=shown, state="down", checked_at=now,
                           reason=f"the server at {redact_url(ms.base_url)} {why}")
    served = [str(e.get("id") or e.get("name") or e.get("model") or "") for e in entries]
    served = [s for s in served if s]
    if not model_listed(ms.model, served):
        return ModelStatus(spec=shown, state="wrong_model", served=served, checked_at=now,
                           reason=f"the server at {redact_url(ms.base_url)} serves "
                                  f"{', '.join(served[:5])}, not {ms.model}")
    for e in entries:
        size = e.get("max_model_len")
        if isinstance(size, int) and model_listed(ms.model, [str(e.get("id", ""))]):
            learn_window(spec, size)
    return ModelStatus(spec=shown, state="ok", served=served, checked_at=now)


class Availability:
    """The last known status of each model string; re-checked when stale, after a failure, and
    by a background thread (``start``). Thread-safe: the web app's workers read it."""

    def __init__(self, specs: list[str], interval_s: float = 15.0) -> None:
        self.specs = [s for s in dict.fromkeys(specs) if parse_spec(s).provider != "offline"]
        self.interval_s = interval_s
        self._status: dict[str, ModelStatus] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def status(self, spec: str, *, max_age_s: float | None = None) -> ModelStatus:
        """The status of ``spec``, checked again when older than ``max_age_s`` (default: the
        interval) or marked failed."""
        if parse_spec(spec).provider == "offline":
            return ModelStatus(spec="offline", state="offline", checked_at=time.time())
        age = self.interval_s if max_age_s is None else max_age_s
        with self._lock:
            known = self._status.get(spec)
        if known is None or time.time() - known.checked_at > age:
            return self.refresh(spec)
        return known

    def fresh(self, spec: str) -> ModelStatus | None:
        """The last status if it needs no new check (never blocks: for the event loop)."""
        with self._lock:
            known = self._status.get(spec)
        if known is None or time.time() - known.checked_at > self.interval_s:
            return None
        return known

    def refresh(self, spec: str) -> ModelStatus:
        status = check_model(spec)
        with self._lock:
            before = self._status.get(spec)
            self._status[spec] = status
        if before is None or before.state != status.state:
            log.warning("model %s: %s%s", status.spec, status.state,
                        f" ({status.reason})" if status.reason else "")
        return status

    def usable(self, spec: str) -> bool:
        return self.status(spec).usable

    def report_failure(self, spec: str, kind: str = "") -> None:
        """A call failed: make the next ``status`` check again (and the background thread now)."""
        with self._lock:
            known = self._status.get(spec)
            if known is not None:
                self._status[spec] = known.model_copy(update={"checked_at": 0.0})
        if self._thread is not None:
            threading.Thread(target=self._refresh_quietly, args=(spec,), daemon=True,
                             name="counselsim-recheck").start()

    def describe(self, spec: str, role: str) -> ModelInfo:
        """The header's words for ``spec`` from the last check (no request unless none yet)."""
        return describe_status(self.status(spec, max_age_s=max(60.0, 3 * self.interval_s)),
                               role)

    def _refresh_quietly(self, spec: str) -> None:
        try:
            self.refresh(spec)
        except Exception:  # a check must never take the app down
            log.exception("availability check of %s failed", redact_spec(spec))

    def start(self) -> Availability:
        """Check every ``interval_s`` seconds in a daemon thread until ``stop``."""
        if self._thread is None and self.specs:
            self._thread = threading.Thread(target=self._loop, daemon=True,
                                            name="counselsim-availability")
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=CHECK_TIMEOUT_S + 1)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.is_set():
            for spec in self.specs:
                self._refresh_quietly(spec)
            self._stop.wait(self.interval_s)


def describe_status(status: ModelStatus, role: str) -> ModelInfo:
    """What the header says about a model given its last known status."""
    ms = parse_spec(status.spec)
    where = f" at {redact_url(ms.base_url)}" if ms.base_url else ""
    if status.state == "offline":
        label, notice = f"{role}: offline", None
    elif status.usable:
        label, notice = f"{role}: {ms.provider} {ms.model}{where}", None
    else:
        label = f"{role}: offline ({status.spec} unavailable)"
        notice = (f"The {role} model {status.spec} is unavailable ({status.reason}); "
                  "its turns run offline until it is back.")
    return ModelInfo(role=role, spec=status.spec, provider=ms.provider, model=ms.model,
                     base_url=redact_url(ms.base_url), active=status.usable, notice=notice,
                     label=label)
