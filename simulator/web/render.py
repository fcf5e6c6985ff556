"""Small HTML fragments for the UI. Every value from a user, a file or a model is escaped here.

Gradio's HTML component shows what it is given, so nothing reaches it except through these
functions; a report (a whole document) goes into a sandboxed iframe's ``srcdoc``, escaped as an
attribute, so a script in a transcript can never run in the app's page.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from typing import Any

from simulator.content.loader import ContentError


def e(value: object) -> str:
    return escape("" if value is None else str(value), quote=True)


def stars(n: int, of: int = 5) -> str:
    n = max(0, min(of, int(n)))
    return f'<span class="cs-stars" title="difficulty {n} of {of}">{"★" * n}{"☆" * (of - n)}</span>'


def header(user_name: str, role: str, models: Sequence[Any]) -> str:
    """The bar on every page: brand, the models in use (offline said plainly), who is signed in."""
    parts = []
    for m in models:
        if m.active:
            what = f'<span class="cs-online">LIVE</span> {e(m.provider)} {e(m.model)}'
        else:
            how = "authored lines" if m.role == "client" else "rule-based coder"
            what = f'<span class="cs-offline">OFFLINE</span> {e(how)}'
        parts.append(f'<span title="{e(m.notice or m.label)}">{e(m.role.capitalize())}: '
                     f"{what}</span>")
    user = (f'<span class="cs-user">Signed in as <b>{e(user_name)}</b> ({e(role)})</span>'
            if user_name else "")
    signout = ('<a class="cs-signout" href="/password">Change password</a> '
               '<a class="cs-signout" href="/logout">Sign out</a>') if user_name else ""
    return (f'<div class="cs-bar"><div class="cs-brand" title="counseling skills practice">'
            f'CounselSim</div>'
            f'<div class="cs-models">{" &nbsp;&nbsp; ".join(parts)}</div>{user}{signout}</div>')


def persona_cards(cards: Iterable[Any], selected: str | None = None) -> str:
    """Cards show title, difficulty, tags and the trainee brief: nothing hidden about the client.

    Each card is a button (click, Enter or Space selects it); the selected one says so.
    """
    out = []
    for c in cards:
        tags = "".join(f'<span class="cs-tag">{e(t)}</span>' for t in c.tags)
        chosen = c.id == selected
        cls = "cs-card cs-selected" if chosen else "cs-card"
        b = c.trainee_brief
        mark = '<span class="cs-chosen">✓ Selected</span>' if chosen else ""
        out.append(
            f'<div class="{cls}" data-persona="{e(c.id)}" role="button" tabindex="0" '
            f'aria-pressed="{"true" if chosen else "false"}"><h3>{e(c.title)}{mark}</h3>'
            f'<div class="cs-meta">{stars(c.difficulty)} &nbsp;difficulty {int(c.difficulty)}/5 '
            f'· v{int(c.version)}</div><div>{tags}</div>'
            f'<p><span class="cs-label">Referral.</span> {e(b.referral)}</p>'
            f'<p><span class="cs-label">Setting.</span> {e(b.setting)}</p>'
            f'<p><span class="cs-label">Your goal.</span> {e(b.session_goal)}</p></div>')
    if not out:
        return '<p class="cs-muted">No client personas are available yet.</p>'
    return f'<div class="cs-cards">{"".join(out)}</div>'


def brief(card: Any, mode: str, *, rubric: str = "", session_id: str = "") -> str:
    """The session's header: who the client is, the mode, and the rubric it is scored with."""
    b = card.trainee_brief
    mode_text = ("Coach mode: feedback on each of your turns appears on the right."
                 if mode == "coach" else "Assessment mode: feedback comes at the end.")
    scored = f" · Scored with {e(rubric)}" if rubric else ""
    return (f'<div class="cs-brief" data-session="{e(session_id)}"><b>{e(card.title)}</b> '
            f'{stars(card.difficulty)} <span class="cs-muted">· {e(mode_text)}{scored}</span><br>'
            f'<span class="cs-label">Referral.</span> {e(b.referral)} '
            f'<span class="cs-label">Goal.</span> {e(b.session_goal)}</div>')


def content_errors(errors: Sequence[ContentError]) -> str:
    if not errors:
        return '<div class="cs-ok">✓ Valid. No errors.</div>'
    items = "".join(
        f"<li>line {int(err.line)}, column {int(err.column)}: "
        f"{e(err.key + ': ' if err.key else '')}{e(err.message)}</li>" for err in errors)
    n = len(errors)
    return (f'<div class="cs-errors"><b>{n} error{"s" if n != 1 else ""}</b>'
            f'<ul>{items}</ul></div>')


def ok(message: str) -> str:
    return f'<div class="cs-ok">{e(message)}</div>'


def problem(message: str) -> str:
    return f'<div class="cs-errors">{e(message)}</div>'


def notice(message: str, kind: str = "error") -> str:
    """A message under the text box: it never covers the conversation or the header.

    Errors are announced at once to screen readers (``role=alert``), information politely.
    """
    if not message:
        return ""
    role = "alert" if kind == "error" else "status"
    cls = "cs-notice cs-notice-error" if kind == "error" else "cs-notice cs-notice-info"
    return f'<div class="{cls}" role="{role}">{e(message)}</div>'


def download_link(url: str, label: str = "Download report (HTML)") -> str:
    """A link to the access-checked report download (``report_download``)."""
    return (f'<a class="cs-download" href="{e(url)}" download>{e(label)}</a>' if url else "")


def report_frame(html_document: str, title: str = "Feedback report") -> str:
    """A whole report document in a sandboxed iframe: no scripts, no same-origin access."""
    return (f'<iframe class="cs-report-frame" title="{e(title)}" sandbox="" '
            f'srcdoc="{escape(html_document, quote=True)}"></iframe>')
