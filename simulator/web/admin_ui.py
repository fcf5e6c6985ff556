"""Users tab (admins only): list accounts, add one, and reset, disable, enable or delete one.

Every rule is the service's (``simulator.service.users``); this tab only parses, calls and
renders. A new account or a reset gets a random one-time password shown to the admin once, to
hand over; the person chooses their own at first sign-in. Deleting asks what happens to the
person's practice sessions (kept under a pseudonym, or deleted) and for the name typed again.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from simulator.errors import InvalidInput, NotFoundOrNoAccess
from simulator.service import users as accounts
from simulator.web import render
from simulator.web.access import ADMIN, ROLES, require
from simulator.web.context import WebContext

COLUMNS = ["Name", "Role", "Cohort", "Status", "Created (UTC)"]
KEEP, DELETE = ("Keep them, under a pseudonym (for the program's records)",
                "Delete them with their codes, grades and reviews")


def status_of(user: Any) -> str:
    if user.disabled:
        return "disabled"
    if user.must_change_password:
        return "must choose a password"
    return "active"


def build(ctx: WebContext) -> dict[str, Any]:
    users = gr.Dataframe(headers=COLUMNS, interactive=False, max_height=300, elem_id="ad-users",
                         column_widths=["180px", "110px", "130px", "200px", "170px"], wrap=True,
                         show_search="search",
                         label="Accounts")
    gr.Markdown("#### Add an account")
    with gr.Row(equal_height=True):
        name = gr.Textbox(label="User name", elem_id="ad-name")
        role = gr.Dropdown(list(ROLES), value="trainee", label="Role", elem_id="ad-role")
        cohort = gr.Textbox(label="Cohort (trainees and their supervisors)", elem_id="ad-cohort")
        add = gr.Button("Add account", variant="primary", elem_id="ad-add")
    gr.Markdown("#### Manage an account")
    with gr.Row(equal_height=True):
        who = gr.Dropdown(choices=[], label="Account", elem_id="ad-who", scale=2)
        reset = gr.Button("Reset password", elem_id="ad-reset")
        disable = gr.Button("Disable", elem_id="ad-disable")
        enable = gr.Button("Enable", elem_id="ad-enable")
    with gr.Accordion("Delete the account", open=False, elem_id="ad-delete-box"):
        sessions = gr.Radio([KEEP, DELETE], value=KEEP, label="Their practice sessions",
                            elem_id="ad-sessions")
        confirm = gr.Textbox(label="Type the user name again to confirm", elem_id="ad-confirm")
        delete = gr.Button("Delete account", variant="stop", elem_id="ad-delete")
    result = gr.HTML(elem_id="ad-result")

    def table(keep: str | None = None) -> tuple[pd.DataFrame, Any]:
        listed = ctx.store.list_users()
        rows = [[u.name, u.role, u.cohort or "", status_of(u), u.created[:16].replace("T", " ")]
                for u in listed]
        names = [u.name for u in listed]
        return (pd.DataFrame(rows, columns=COLUMNS),
                gr.Dropdown(choices=names, value=keep if keep in names else None))

    def load(request: gr.Request) -> tuple[Any, ...]:
        require(ctx.store, request, (ADMIN,))
        return table()

    def act(request: gr.Request, call: Any, keep: str | None = None) -> tuple[Any, ...]:
        """Run a service call as the signed-in admin; the chosen account stays chosen."""
        admin = require(ctx.store, request, (ADMIN,))
        try:
            message = call(admin.name)
        except (InvalidInput, NotFoundOrNoAccess) as exc:
            return (*table(keep), render.problem(str(exc)))
        finally:
            if keep and ctx.sign_ins is not None:  # ended sign-ins end now, not in seconds
                ctx.sign_ins.forget(name=keep)
        return (*table(keep), f'<div class="cs-ok">{message}</div>')

    def one_time(user_name: str, password: str, what: str) -> str:
        return (f"{what} <b>{render.e(user_name)}</b>. One-time password (shown once, hand it "
                f"over privately; they choose their own at first sign-in): "
                f"<code>{render.e(password)}</code>")

    def add_fn(name_value: str, role_value: str, cohort_value: str,
               request: gr.Request) -> tuple[Any, ...]:
        def call(by: str) -> str:
            user, password = accounts.add_user(ctx.store, name_value, role_value,
                                               cohort=cohort_value, by=by)
            return one_time(user.name, password or "", "Account created:")
        return act(request, call)

    def chosen(value: str | None) -> str:
        if not value:
            raise InvalidInput("Choose an account first.")
        return value

    def reset_fn(value: str | None, request: gr.Request) -> tuple[Any, ...]:
        def call(by: str) -> str:
            target = chosen(value)
            return one_time(target, accounts.reset_password(ctx.store, target, by=by),
                            "Password reset for")
        return act(request, call, value)

    def disable_fn(value: str | None, request: gr.Request) -> tuple[Any, ...]:
        def call(by: str) -> str:
            user = accounts.set_disabled(ctx.store, chosen(value), True, by=by)
            return f"<b>{render.e(user.name)}</b> is disabled; their sign-ins have ended."
        return act(request, call, value)

    def enable_fn(value: str | None, request: gr.Request) -> tuple[Any, ...]:
        def call(by: str) -> str:
            user = accounts.set_disabled(ctx.store, chosen(value), False, by=by)
            return f"<b>{render.e(user.name)}</b> can sign in again."
        return act(request, call, value)

    def delete_fn(value: str | None, keep: str, typed: str,
                  request: gr.Request) -> tuple[Any, ...]:
        def call(by: str) -> str:
            target = chosen(value)
            if (typed or "").strip() != target:
                raise InvalidInput("Type the user name again to confirm the deletion.")
            pseudonym, n = accounts.delete_user(ctx.store, target, keep_sessions=keep == KEEP,
                                                by=by)
            what = (f"{n} session(s) kept as <code>{render.e(pseudonym)}</code>" if pseudonym
                    else f"{n} session(s) deleted")
            return f"Deleted <b>{render.e(target)}</b>; {what}."
        return act(request, call, value)

    private: dict[str, Any] = {"api_visibility": "private"}
    outs = [users, who, result]
    add.click(add_fn, [name, role, cohort], outs, **private)
    reset.click(reset_fn, [who], outs, **private)
    disable.click(disable_fn, [who], outs, **private)
    enable.click(enable_fn, [who], outs, **private)
    delete.click(delete_fn, [who, sessions, confirm], outs, **private)
    return {"load": (load, None, [users, who])}
