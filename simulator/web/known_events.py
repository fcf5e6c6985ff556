"""Refuse events the app does not have with a 404 before Gradio looks them up.

Gradio answers ``/gradio_api/queue/join`` with an ``fn_index`` it has no handler for by raising
``KeyError`` deep in its queue, and ``/gradio_api/call/NAME`` with an unknown name by raising
``FnIndexInferError``: a 500 and a traceback in the log for any signed-in user who posts a
made-up number or name. The body is already bounded by ``auth_routes.Gate`` (this middleware
sits inside it), read once here and handed on unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

JOIN_PATHS = ("/gradio_api/queue/join",)
NAMED_PREFIXES = ("/gradio_api/call/", "/gradio_api/run/", "/gradio_api/api/")
"""Routes that name their handler in the path (``/gradio_api/call/open_session``)."""


class KnownEvents:
    """ASGI middleware: a queue join whose ``fn_index`` is not one of the app's, or a named call
    to a name the app lacks, gets 404. ``handlers`` gives the Blocks' functions by index."""

    def __init__(self, app: ASGIApp, handlers: Callable[[], Mapping[int, Any]]) -> None:
        self.app, self.handlers = app, handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        named = next((path[len(p):] for p in NAMED_PREFIXES if path.startswith(p)), None)
        if named is not None:
            name = named.strip("/").split("/", 1)[0]
            if name not in {getattr(fn, "api_name", None) for fn in self.handlers().values()}:
                await _not_found(send)
                return
        if path.rstrip("/") not in JOIN_PATHS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        if not self._known(body):
            await _not_found(send)
            return
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    def _known(self, body: bytes) -> bool:
        """False only for a readable body naming an ``fn_index`` the app lacks (anything else
        malformed is left to Gradio's own validation, which answers 4xx)."""
        try:
            data = json.loads(body)
        except ValueError:
            return True
        fn_index = data.get("fn_index") if isinstance(data, dict) else None
        if fn_index is None or isinstance(fn_index, bool) or not isinstance(fn_index, int):
            return True
        return fn_index in self.handlers()


async def _not_found(send: Send) -> None:
    body = json.dumps({"detail": "No such event handler."}).encode()
    await send({"type": "http.response.start", "status": 404,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


__all__ = ["KnownEvents"]
