"""Users tab (admins only): list accounts, add one with a one-time password shown once.

There are no default passwords: a new account gets a random password that is shown to the admin
once, for them to hand over; only its argon2 hash is stored.
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from simulator.errors import InvalidInput
from simulator.service.users import add_user
from simulator.web import render
from simulator.web.access import ADMIN, ROLES, require
from simulator.web.context import WebContext

COLUMNS = ["Name", "Role", "Cohort", "Created (UTC)"]


def build(ctx: WebContext) -> dict[str, Any]:
    users = gr.Dataframe(headers=COLUMNS, interactive=False, max_height=300, elem_id="ad-users",
                         label="Accounts")
    gr.Markdown("#### Add an account")
    with gr.Row(equal_height=True):
        name = gr.Textbox(label="User name", elem_id="ad-name")
        role = gr.Dropdown(list(ROLES), value="trainee", label="Role", elem_id="ad-role")
        cohort = gr.Textbox(label="Cohort (trainees and their supervisors)", elem_id="ad-cohort")
        add = gr.Button("Add account", variant="primary", elem_id="ad-add")
    result = gr.HTML(elem_id="ad-result")

    def table() -> pd.DataFrame:
        rows = [[u.name, u.role, u.cohort or "", u.created[:16].replace("T", " ")]
                for u in ctx.store.list_users()]
        return pd.DataFrame(rows, columns=COLUMNS)

    def load(request: gr.Request) -> pd.DataFrame:
        require(ctx.store, request, (ADMIN,))
        return table()

    def add_fn(name_value: str, role_value: str, cohort_value: str,
               request: gr.Request) -> tuple[Any, ...]:
        admin = require(ctx.store, request, (ADMIN,))
        try:
            user, password = add_user(ctx.store, name_value, role_value, cohort=cohort_value,
                                      by=admin.name)
        except InvalidInput as exc:
            return table(), render.problem(str(exc))
        return table(), (f'<div class="cs-ok">Account <b>{render.e(user.name)}</b> created. '
                         f"One-time password (shown once, hand it over privately): "
                         f"<code>{render.e(password or '')}</code></div>")

    add.click(add_fn, [name, role, cohort], [users, result], api_visibility="private")
    return {"load": (load, None, [users])}
