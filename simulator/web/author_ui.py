"""Author tab (educators, admins): persona/rubric YAML with live validation, preview, self-play.

Every handler re-checks the role. File names come from a dropdown but are validated again on the
server (``content_edit.safe_path``): a crafted request cannot read or write outside the folders.
The preview chats with the persona *as it is in the editor*, without saving it and without
touching the session store.
"""

from __future__ import annotations

import asyncio
import html
from typing import Any

import gradio as gr

from simulator.content.loader import ContentErrors
from simulator.content.persona import Persona
from simulator.web import render
from simulator.web.access import AUTHOR, Denied, require
from simulator.web.content_edit import (
    EditError,
    check_text,
    list_files,
    read_file,
    save_new_version,
)
from simulator.web.context import WebContext
from simulator.web.practice_ui import literal

KINDS = {"Persona": "persona", "Rubric": "rubric"}
MAX_PREVIEW_TURNS = 30
MAX_TEXT = 200_000
SETTLE_S = 0.4
"""Live validation waits this long after a keystroke. With ``trigger_mode="always_last"`` the
browser sends no new check while one is waiting or running, only the last text after it: a fast
typist costs about two checks a second, not one per key."""


def _kind(label: str) -> str:
    if label not in KINDS:
        raise Denied("Unknown content kind.")
    return KINDS[label]


def build(ctx: WebContext) -> dict[str, Any]:
    """Build the tab's components inside the current Blocks; returns what the app's load updates."""
    with gr.Row(equal_height=False):
        with gr.Column(scale=3, min_width=520):
            with gr.Row():
                kind = gr.Radio(list(KINDS), value="Persona", label="Kind", scale=1,
                                elem_id="author-kind")
                file = gr.Dropdown(choices=[], label="File", scale=2, elem_id="author-file",
                                   allow_custom_value=False)
                new_btn = gr.Button("New from template", scale=1, size="sm",
                                    elem_id="author-new")
            editor = gr.Code(language="yaml", lines=19, max_lines=19, label="YAML",
                             interactive=True, wrap_lines=True, elem_id="author-editor")
            status = gr.HTML(elem_id="author-status")
            with gr.Row():
                save_btn = gr.Button("Save as new version", variant="primary",
                                     elem_id="author-save")
                selfplay_btn = gr.Button("Run self-play check", elem_id="author-selfplay")
            save_status = gr.HTML(elem_id="author-save-status")
        with gr.Column(scale=2, min_width=380):
            gr.Markdown("#### Preview\nChat with the persona exactly as it is in the editor "
                        "(nothing is saved).")
            preview = gr.Chatbot(height=330, label="Preview", show_label=False,
                                 elem_id="author-preview", buttons=[], feedback_options=None,
                                 layout="bubble", render_markdown=False)
            with gr.Row():
                preview_text = gr.Textbox(placeholder="Say something to the client...",
                                          show_label=False, scale=4, elem_id="author-preview-text",
                                          max_lines=3)
                preview_send = gr.Button("Send", scale=1, elem_id="author-preview-send")
            preview_restart = gr.Button("Restart preview", size="sm",
                                        elem_id="author-preview-restart")
            selfplay_out = gr.HTML(elem_id="author-selfplay-out")

    def folder(kind_label: str) -> Any:
        return ctx.settings.authoring_dir(_kind(kind_label))

    def files_for(kind_label: str, request: gr.Request) -> Any:
        require(ctx.store, request, AUTHOR)
        ctx.library()  # pick up files changed on disk
        names = list_files(folder(kind_label))
        return gr.Dropdown(choices=names, value=names[0] if names else None)

    def open_file(kind_label: str, name: str | None, request: gr.Request
                  ) -> tuple[str, str, list[Any]]:
        require(ctx.store, request, AUTHOR)
        if not name:
            return "", "", []
        try:
            text = read_file(folder(kind_label), name)
        except EditError as exc:
            raise Denied(str(exc)) from None
        return text, validate(kind_label, text, name, request), []

    async def validate_live(kind_label: str, text: str, name: str | None,
                            request: gr.Request) -> str:
        """The editor's check as the author types: after a pause, off the event loop."""
        require(ctx.store, request, AUTHOR)
        await asyncio.sleep(SETTLE_S)
        return await asyncio.to_thread(validate, kind_label, text, name, request)

    def validate(kind_label: str, text: str, name: str | None, request: gr.Request) -> str:
        require(ctx.store, request, AUTHOR)
        if not text or not text.strip():
            return render.problem("The editor is empty.")
        if len(text) > MAX_TEXT:
            return render.problem("This file is too large for the editor.")
        kind_name = _kind(kind_label)
        shown = f"{folder(kind_label).name}/{name or 'new.yaml'}"
        checked = check_text(kind_name, text, shown, ctx.library())
        return render.content_errors(checked.errors)

    def template(kind_label: str, request: gr.Request) -> tuple[str, Any, str]:
        require(ctx.store, request, AUTHOR)
        names = list_files(folder(kind_label))
        if not names:
            raise Denied("There is no file to copy yet.")
        text = read_file(folder(kind_label), names[0])
        text = _rename(text, "new-" + _kind(kind_label))
        return (text, gr.Dropdown(value=None),
                render.ok("A copy of the first file with id new-"
                          f"{_kind(kind_label)}: change the id, then save."))

    def save(kind_label: str, text: str, request: gr.Request) -> tuple[str, Any]:
        user = require(ctx.store, request, AUTHOR)
        kind_name = _kind(kind_label)
        if not text or len(text) > MAX_TEXT:
            return render.problem("Nothing to save."), gr.Dropdown()
        try:
            path, version = save_new_version(folder(kind_label), kind_name, text, ctx.library())
        except ContentErrors as exc:
            return render.content_errors(exc.errors), gr.Dropdown()
        except EditError as exc:
            return render.problem(str(exc)), gr.Dropdown()
        ctx.store.add_event(None, "content_saved", {"kind": kind_name, "file": path.name,
                                                    "version": version, "by": user.name})
        ctx.reload_library()
        names = list_files(folder(kind_label))
        return (render.ok(f"Saved {folder(kind_label).name}/{path.name} as version {version}. "
                          "Trainees see it from their next session."),
                gr.Dropdown(choices=names, value=path.name))

    async def preview_send_fn(kind_label: str, text: str, message: str, history: list[Any],
                              request: gr.Request) -> tuple[list[Any], str]:
        require(ctx.store, request, AUTHOR)
        if _kind(kind_label) != "persona":
            raise Denied("Preview works for personas; switch Kind to Persona.")
        checked = check_text("persona", text or "", "editor", ctx.library())
        if not checked.ok:
            raise gr.Error("Fix the errors in the editor before previewing.", print_exception=False)
        said = [_text_of(m) for m in (history or []) if _role_of(m) == "user"]
        message = (message or "").strip()[:2000]
        if message:
            said.append(message)
        said = said[-MAX_PREVIEW_TURNS:]
        assert isinstance(checked.model, Persona)
        replies = await asyncio.to_thread(ctx.preview, checked.model, said)
        out: list[dict[str, str]] = [{"role": "assistant", "content": literal(replies[0])}]
        for trainee, reply in zip(said, replies[1:], strict=False):
            out += [{"role": "user", "content": literal(trainee)},
                    {"role": "assistant", "content": literal(reply)}]
        return out, ""

    async def selfplay_fn(kind_label: str, text: str, request: gr.Request) -> str:
        require(ctx.store, request, AUTHOR)
        if _kind(kind_label) != "persona":
            return render.problem("Self-play checks personas; switch Kind to Persona.")
        checked = check_text("persona", text or "", "editor", ctx.library())
        if not checked.ok:
            return render.problem("Fix the errors in the editor first.")
        assert isinstance(checked.model, Persona)
        return await asyncio.to_thread(ctx.selfplay_check, checked.model)

    private: dict[str, Any] = {"api_visibility": "private"}
    kind.change(files_for, [kind], [file], **private)
    file.change(open_file, [kind, file], [editor, status, preview], **private)
    editor.input(validate_live, [kind, editor, file], [status], trigger_mode="always_last",
                 show_progress="hidden", concurrency_limit=4, concurrency_id="author-check",
                 **private)
    new_btn.click(template, [kind], [editor, file, save_status], **private)
    save_btn.click(save, [kind, editor], [save_status, file], **private)
    for trigger in (preview_send.click, preview_text.submit):
        trigger(preview_send_fn, [kind, editor, preview_text, preview], [preview, preview_text],
                **private)
    preview_restart.click(preview_send_fn, [kind, editor, gr.State(""), gr.State([])],
                          [preview, preview_text], **private)
    selfplay_btn.click(selfplay_fn, [kind, editor], [selfplay_out], **private)
    return {"load": (files_for, [kind], [file])}


def _rename(text: str, new_id: str) -> str:
    lines = text.splitlines(keepends=True)
    for i, line in enumerate(lines):
        if line.startswith("id:"):
            lines[i] = f"id: {new_id}\n"
            break
    return "".join(lines)


def _role_of(message: Any) -> str:
    return str(message.get("role", "")) if isinstance(message, dict) else ""


def _text_of(message: Any) -> str:
    """Plain text of a Gradio 6 message (content is a string or a list of typed parts)."""
    content = message.get("content", "") if isinstance(message, dict) else ""
    if isinstance(content, str):
        return html.unescape(content)  # shown escaped (``literal``), replayed as typed
    if isinstance(content, list):
        return " ".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
    return ""
