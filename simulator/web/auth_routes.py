"""Sign-in: Gradio's login form, checked against the hashed passwords in the store.

Gradio calls ``auth(username, password)`` on its ``/login`` route and then sets its own session
cookie; ``request.username`` is the name in every handler after that. Password hashing is slow by
design (argon2), so the check runs in a worker thread; repeated failures for one name are slowed
down so a class login page cannot be used to guess passwords.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request, Response
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint

MAX_FAILURES = 5
WINDOW_S = 300.0
"""At most MAX_FAILURES wrong passwords per name per WINDOW_S; more tries fail unchecked."""


class Throttle:
    def __init__(self, max_failures: int = MAX_FAILURES, window_s: float = WINDOW_S) -> None:
        self.max_failures, self.window_s = max_failures, window_s
        self._failures: dict[str, deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, name: str, now: float) -> deque[float]:
        q = self._failures[name]
        while q and now - q[0] > self.window_s:
            q.popleft()
        return q

    def blocked(self, name: str) -> bool:
        with self._lock:
            return len(self._recent(name, time.monotonic())) >= self.max_failures

    def failed(self, name: str) -> None:
        with self._lock:
            self._recent(name, time.monotonic()).append(time.monotonic())

    def succeeded(self, name: str) -> None:
        with self._lock:
            self._failures.pop(name, None)


def make_auth(store: Any,
              throttle: Throttle | None = None) -> Callable[[str, str], Awaitable[bool]]:
    """The ``auth=`` callable for ``gr.mount_gradio_app`` (argon2 check in a worker thread)."""
    from simulator.service.accounts import authenticate

    guard = throttle or Throttle()

    async def auth(username: str, password: str) -> bool:
        name = (username or "").strip()
        if not name or not password or len(name) > 64 or len(password) > 1024:
            return False
        if guard.blocked(name):
            return False
        ok = await asyncio.to_thread(authenticate, store, name, password)
        if ok:
            guard.succeeded(name)
            store.add_event(None, "login", {"user": name})
        else:
            guard.failed(name)
        return bool(ok)

    return auth


class SecurityHeaders(BaseHTTPMiddleware):
    """Headers every page gets: no sniffing, no framing by other sites, no referrer leaks."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("X-Frame-Options", "SAMEORIGIN")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        return response


def add_routes(app: FastAPI) -> None:
    """Plain routes outside Gradio (Gradio's auth does not cover them: nothing private here)."""
    app.add_middleware(SecurityHeaders)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}
