"""Sign-in, sign-out and password change: CounselSim's own routes in front of the Gradio app.

Gradio's built-in login keeps its tokens in memory (lost on restart, never expiring), answers every
refusal with "Incorrect credentials" and offers sign-out as a GET. Here the Gradio app is mounted
with an ``auth_dependency`` that asks ``simulator.service.sign_in.SignIns`` who the cookie belongs
to, and these routes (registered on the outer FastAPI app, so they take precedence) do the rest:

* ``GET/POST /login``: a plain form; the answer says what happened (wrong password, "try again in
  N minutes", busy, disabled). Browsers are redirected; API clients (no ``text/html`` in Accept)
  get JSON, as Gradio's own route gave.
* ``GET/POST /password``: change one's own password; forced before the app loads after a first
  sign-in or an admin's reset.
* ``POST /logout`` ends the sign-in (``GET /logout`` only shows the button).
* Posts from another site are refused (``Origin`` / ``Sec-Fetch-Site``), and the cookie is
  ``HttpOnly``, ``SameSite=Lax`` and ``Secure`` whenever the request came over HTTPS.

``Gate`` (ASGI middleware) refuses oversized bodies before anything reads them and sends a
browser without a valid sign-in from ``/`` to the sign-in page. Gradio's upload route and API
schema are not served at all: the app uses no uploads.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlsplit

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from simulator.errors import InvalidInput
from simulator.service.accounts import POLICY_LENGTH
from simulator.service.sign_in import Outcome, SignIns
from simulator.web.sign_in_pages import password_page, sign_in_page, sign_out_page

COOKIE = "counselsim_session"
BLOCKED = ("/gradio_api/upload", "/gradio_api/upload_progress", "/gradio_api/openapi.json",
           "/upload", "/openapi.json")
"""Routes Gradio serves that this app has no use for (uploads, a public route list)."""


def cookie_token(request: Request) -> str | None:
    return request.cookies.get(COOKIE)


def make_auth_dependency(sign_ins: SignIns) -> Callable[[Request], Awaitable[str | None]]:
    """Gradio's ``auth_dependency``: the signed-in name, or None (Gradio answers 401)."""

    async def signed_in(request: Request) -> str | None:
        who = await sign_ins.resolve(cookie_token(request))
        return who.name if who is not None and not who.must_change else None

    return signed_in


def same_origin(request: Request) -> bool:
    """True unless the browser says the post comes from another site."""
    origin = request.headers.get("origin")
    if origin is None:
        return request.headers.get("sec-fetch-site", "same-origin") in (
            "same-origin", "none")
    host = request.headers.get("host", "")
    return urlsplit(origin).netloc.lower() == host.lower() and bool(host)


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def is_secure(request: Request, forced: bool | None) -> bool:
    return forced if forced is not None else request.url.scheme == "https"


def _client(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def add_routes(app: FastAPI, sign_ins: SignIns, *, secure_cookies: bool | None = None,
               max_request_kb: int = 1024) -> None:
    """Register the sign-in routes, the gate and the health check on the outer app (before
    Gradio is mounted, so these win over Gradio's routes of the same path)."""
    app.add_middleware(SecurityHeaders)
    app.add_middleware(Gate, sign_ins=sign_ins, max_bytes=max_request_kb * 1024)
    lifetime_s = int(sign_ins.lifetime.total_seconds())

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    for path in BLOCKED:
        app.add_api_route(path, _not_here, methods=["GET", "POST"], include_in_schema=False)

    @app.get("/login", include_in_schema=False)
    async def login_form(request: Request) -> Response:
        who = await sign_ins.resolve(cookie_token(request))
        if who is not None:
            return RedirectResponse("/password" if who.must_change else "/", status_code=303)
        return HTMLResponse(sign_in_page())

    @app.post("/login", include_in_schema=False)
    async def login(request: Request) -> Response:
        if not same_origin(request):
            return _refuse(request, 403, "Sign in from CounselSim's own page.")
        form = await request.form()
        name = str(form.get("username") or "")
        outcome = await sign_ins.sign_in(name, str(form.get("password") or ""),
                                         _client(request))
        if outcome.token is None:
            return _refused_login(request, outcome, name)
        target = "/password" if outcome.must_change else "/"
        response: Response = (RedirectResponse(target, status_code=303) if wants_html(request)
                              else JSONResponse({"success": True,
                                                 "must_change_password": outcome.must_change}))
        response.set_cookie(COOKIE, outcome.token, max_age=lifetime_s, path="/", httponly=True,
                            samesite="lax", secure=is_secure(request, secure_cookies))
        return response

    @app.get("/logout", include_in_schema=False)
    def logout_form() -> Response:
        return HTMLResponse(sign_out_page())

    @app.post("/logout", include_in_schema=False)
    async def logout(request: Request) -> Response:
        if not same_origin(request):
            return _refuse(request, 403, "Sign out from CounselSim's own page.")
        await sign_ins.sign_out(cookie_token(request))
        response: Response = (
            HTMLResponse(sign_in_page(ok="You are signed out.")) if wants_html(request)
            else JSONResponse({"success": True}))
        response.delete_cookie(COOKIE, path="/")
        return response

    @app.get("/password", include_in_schema=False)
    async def password_form(request: Request) -> Response:
        who = await sign_ins.resolve(cookie_token(request))
        if who is None:
            return RedirectResponse("/login", status_code=303)
        return HTMLResponse(password_page(forced=who.must_change, min_length=POLICY_LENGTH))

    @app.post("/password", include_in_schema=False)
    async def change_password(request: Request) -> Response:
        if not same_origin(request):
            return _refuse(request, 403, "Change your password from CounselSim's own page.")
        who = await sign_ins.resolve(cookie_token(request))
        if who is None:
            return _refuse(request, 401, "Please sign in.")
        form = await request.form()
        try:
            said = await sign_ins.change_password(
                who, str(form.get("current") or ""), str(form.get("new") or ""),
                str(form.get("repeat") or ""))
        except InvalidInput as exc:
            if wants_html(request):
                return HTMLResponse(password_page(forced=who.must_change, problem=str(exc),
                                                  min_length=POLICY_LENGTH), status_code=400)
            return JSONResponse({"detail": str(exc)}, status_code=400)
        if wants_html(request):
            return RedirectResponse("/", status_code=303)
        return JSONResponse({"success": True, "message": said})


def _not_here() -> Response:
    return JSONResponse({"detail": "Not Found"}, status_code=404)


def _refuse(request: Request, status: int, message: str) -> Response:
    if wants_html(request):
        return HTMLResponse(sign_in_page(problem=message), status_code=status)
    return JSONResponse({"detail": message}, status_code=status)


def _refused_login(request: Request, outcome: Outcome, name: str) -> Response:
    headers = ({"Retry-After": str(outcome.retry_after_s)} if outcome.retry_after_s else None)
    if wants_html(request):
        return HTMLResponse(sign_in_page(problem=outcome.message, name=name[:64]),
                            status_code=outcome.status, headers=headers)
    return JSONResponse({"detail": outcome.message}, status_code=outcome.status, headers=headers)


class Gate:
    """ASGI middleware: body-size limit first, then the sign-in check for the app's page."""

    def __init__(self, app: ASGIApp, sign_ins: SignIns, max_bytes: int) -> None:
        self.app, self.sign_ins, self.max_bytes = app, sign_ins, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        if method in ("POST", "PUT", "PATCH"):
            length = headers.get(b"content-length")
            if length is None and b"chunked" in headers.get(b"transfer-encoding", b""):
                await _plain(411, "Send a Content-Length.")(scope, receive, send)
                return
            try:
                too_big = length is not None and int(length) > self.max_bytes
            except ValueError:
                too_big = True
            if too_big:
                await _plain(413, f"The request is larger than {self.max_bytes // 1024} KB."
                             )(scope, receive, send)
                return
        if method in ("GET", "HEAD") and path == "/":
            who = await self.sign_ins.resolve(Request(scope).cookies.get(COOKIE))
            if who is None or who.must_change:
                target = "/login" if who is None else "/password"
                await RedirectResponse(target, status_code=303)(scope, receive, send)
                return
        await self.app(scope, receive, send)


def _plain(status: int, message: str) -> Response:
    return Response(json.dumps({"detail": message}), status_code=status,
                    media_type="application/json")


class SecurityHeaders:
    """Headers every response gets: no sniffing, no framing by other sites, no referrer leaks."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                have = {k.lower() for k, _ in message.get("headers", [])}
                extra = [(b"x-content-type-options", b"nosniff"),
                         (b"x-frame-options", b"SAMEORIGIN"),
                         (b"referrer-policy", b"same-origin")]
                message["headers"] = [*message.get("headers", []),
                                      *[(k, v) for k, v in extra if k not in have]]
            await send(message)

        await self.app(scope, receive, with_headers)


__all__ = ["BLOCKED", "COOKIE", "Gate", "SecurityHeaders", "add_routes", "make_auth_dependency",
           "same_origin"]
