"""Build and serve the web app: one gr.Blocks with a tab per role, mounted on FastAPI with login.

Layout: a header (brand, client/grader models with OFFLINE said plainly, who is signed in) and
tabs shown by role: Practice and My progress (everyone), Review (supervisors, admins), Author
(educators, admins), Users (admins). Tabs are hidden for other roles, but hiding is cosmetic:
every handler checks the role again on the server (``access.require``).

Leaks switched off: analytics (package ``__init__``), run history, monitoring, MCP, PWA, the API
docs link; endpoints are private unless deliberately public (see ``PUBLIC_ENDPOINTS``).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
from fastapi import FastAPI

from simulator.service.practice import Practice
from simulator.service.sign_in import SignIns
from simulator.settings import Settings
from simulator.web import admin_ui, author_ui, practice_ui, progress_ui, render, review_ui
from simulator.web.access import ADMIN, EDUCATOR, SUPERVISOR, TRAINEE, current_user
from simulator.web.auth_routes import add_routes, make_auth_dependency
from simulator.web.context import WebContext
from simulator.web.known_events import KnownEvents
from simulator.web.report_download import add_report_route
from simulator.web.theme import CSS, PAGE_JS, theme

PUBLIC_ENDPOINTS = ("/open_session", "/report", "/transcript")
"""The only endpoints listed by ``view_api()``; each checks the caller's role and session access."""

REFRESH_ON_SELECT = ("progress", "review", "users")

TABS: dict[str, tuple[str, ...]] = {
    TRAINEE: ("practice", "progress"),
    SUPERVISOR: ("review", "practice", "progress"),
    EDUCATOR: ("author", "practice", "progress"),
    ADMIN: ("review", "author", "users", "practice", "progress"),
}


def build_blocks(ctx: WebContext) -> gr.Blocks:
    loads: list[tuple[str, dict[str, Any]]] = []
    with gr.Blocks(title="CounselSim", analytics_enabled=False, fill_width=True) as demo:
        header = gr.HTML(render.header("", "", ctx.models), elem_id="cs-header")
        with gr.Tabs(elem_id="cs-tabs") as tabs:
            with gr.Tab("Practice", id="practice", visible=False, elem_id="tab-practice") as t1:
                loads.append(("practice", practice_ui.build(ctx)))
            with gr.Tab("My progress", id="progress", visible=False,
                        elem_id="tab-progress") as t2:
                loads.append(("progress", progress_ui.build(ctx)))
            with gr.Tab("Review", id="review", visible=False, elem_id="tab-review") as t3:
                loads.append(("review", review_ui.build(ctx)))
            with gr.Tab("Author", id="author", visible=False, elem_id="tab-author") as t4:
                loads.append(("author", author_ui.build(ctx)))
            with gr.Tab("Users", id="users", visible=False, elem_id="tab-users") as t5:
                loads.append(("users", admin_ui.build(ctx)))
        tab_of = {"practice": t1, "progress": t2, "review": t3, "author": t4, "users": t5}

        def whoami(request: gr.Request) -> tuple[Any, ...]:
            user = current_user(ctx.store, request)
            allowed = TABS.get(user.role, ())
            updates = [gr.Tab(visible=name in allowed) for name in tab_of]
            first = allowed[0] if allowed else None
            return (render.header(user.name, user.role, ctx.live_models()),
                    gr.Tabs(selected=first), *updates)

        def live_header(request: gr.Request) -> str:
            user = current_user(ctx.store, request)
            return render.header(user.name, user.role, ctx.live_models())

        demo.load(whoami, None, [header, tabs, *tab_of.values()], api_visibility="private")
        # the models' status, as the background checks last saw it (a server that died or came up)
        gr.Timer(ctx.settings.availability_interval_s).tick(
            live_header, None, [header], api_visibility="private", show_progress="hidden")
        for area, spec in loads:
            fn, inputs, outputs = spec["load"]
            guarded = _only_for(ctx, area, fn, len(outputs))
            demo.load(guarded, inputs, outputs, api_visibility="private")
            if area in REFRESH_ON_SELECT:  # lists that others change: fresh whenever opened
                tab_of[area].select(guarded, inputs, outputs, api_visibility="private",
                                    show_progress="hidden")
    return demo


def _only_for(ctx: WebContext, area: str, fn: Any, n_out: int) -> Any:
    """Run a tab's load handler only for roles that see the tab (others get no update)."""
    import functools
    import inspect

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        request = kwargs.get("request") or next(
            (a for a in args if isinstance(a, gr.Request)), None)
        user = current_user(ctx.store, request)
        if area not in TABS.get(user.role, ()):
            return tuple(gr.skip() for _ in range(n_out)) if n_out > 1 else gr.skip()
        return fn(*args, **kwargs)

    wrapper.__signature__ = inspect.signature(fn)  # type: ignore[attr-defined]
    return wrapper


def make_context(settings: Settings, practice: Practice | None = None) -> WebContext:

    practice = practice or Practice.from_settings(settings)
    if practice.availability is not None:
        practice.availability.start()  # re-checks the models in the background
    return WebContext(practice=practice, models=practice.describe_models())


def quiet_queue_analytics(demo: gr.Blocks) -> None:
    """Gradio's queue summarises its last 10,000 events in a pandas DataFrame after every event
    (for a monitoring page this app turns off): under a class's load that was about a tenth of
    the server's time, growing as the server ran (py-spy on `counselsim bench load`). Keep one
    event and never recompute. Checked by tests/test_web_units.py, so an upgrade of Gradio that
    renames these is noticed."""
    queue = demo._queue
    queue.ANALYTICS_MAX_EVENTS = 1
    queue.ANAYLTICS_CACHE_FREQUENCY = 2**62  # sic: Gradio's spelling


def build_app(settings: Settings, practice: Practice | None = None) -> tuple[FastAPI, WebContext]:
    """The FastAPI app with the Gradio UI mounted at ``/`` behind CounselSim's own sign-in
    (``auth_routes``: stored, expiring sign-ins; throttled password checks in their own pool)."""
    ctx = make_context(settings, practice)
    demo = build_blocks(ctx)
    demo.queue(default_concurrency_limit=64, max_size=512)
    quiet_queue_analytics(demo)
    app = FastAPI(title="CounselSim", docs_url=None, redoc_url=None, openapi_url=None)
    sign_ins = SignIns(ctx.store, hours=settings.sign_in_hours,
                       idle_minutes=settings.sign_in_idle_minutes,
                       hash_workers=settings.login_hash_workers, hash_queue=settings.login_queue)
    app.add_middleware(KnownEvents, handlers=lambda: demo.fns)  # inside the size limit
    add_routes(app, sign_ins, secure_cookies=settings.secure_cookies,
               max_request_kb=settings.max_request_kb)
    add_report_route(app, ctx)  # before the mount at "/", which would otherwise take the path
    app = gr.mount_gradio_app(
        app, demo, path="/", auth_dependency=make_auth_dependency(sign_ins),
        footer_links=[], run_history=False, enable_monitoring=False, mcp_server=False,
        pwa=False, ssr_mode=False, theme=theme(), css=CSS, js=PAGE_JS, show_error=True,
    )
    app.state.counselsim = ctx
    app.state.sign_ins = sign_ins
    ctx.sign_ins = sign_ins
    app.state.blocks = demo
    return app, ctx
