"""``GET /reports/{session_id}.html``: a session's report as a download, for those who may read it.

The report used to be written to a temp file and handed to a Gradio ``DownloadButton``: each view
left a world-readable copy of the whole transcript in the temp folder, and Gradio's file link
worked for any signed-in user who had it. Here the report is rendered on request (with the latest
corrections), checked against the same rules as the report view (owner, the cohort's supervisor,
an admin), streamed, and never written to disk.
"""

from __future__ import annotations

import asyncio
import re

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse

from simulator.errors import NotFoundOrNoAccess
from simulator.service import access as rules
from simulator.store import UnknownRecord
from simulator.web.auth_routes import COOKIE
from simulator.web.context import WebContext, render_report_html

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")


def report_url(session_id: str) -> str:
    return f"/reports/{session_id}.html"


def add_report_route(app: FastAPI, ctx: WebContext) -> None:
    @app.get("/reports/{session_id}.html", include_in_schema=False)
    async def report(session_id: str, request: Request) -> Response:
        who = await ctx.sign_ins.resolve(request.cookies.get(COOKIE))
        if who is None or who.must_change:
            return JSONResponse({"detail": "Please sign in."}, status_code=401)
        refused = JSONResponse({"detail": NotFoundOrNoAccess().args[0]}, status_code=404)
        if not SESSION_ID.match(session_id):
            return refused
        try:
            user = ctx.store.get_user(who.name)
            if getattr(user, "disabled", False):
                return refused
            rules.session_for(ctx.store, session_id, user)
        except (NotFoundOrNoAccess, UnknownRecord):
            return refused
        html_doc = await asyncio.to_thread(render_report_html, ctx, session_id)
        return Response(html_doc, media_type="text/html; charset=utf-8", headers={
            "Content-Disposition":
                f'attachment; filename="counselsim-report-{session_id}.html"',
            "Cache-Control": "no-store, private",
        })


__all__ = ["add_report_route", "report_url"]
