"""My progress: a trainee's own sessions, summary scores over time, self-rating gap, past reports.

Only the signed-in user's sessions are listed; opening a report by id goes through the same
access check as everywhere else (owner, their cohort's supervisor, or an admin).
"""

from __future__ import annotations

from typing import Any

import gradio as gr
import pandas as pd

from simulator.reports.progress import summaries_and_gaps
from simulator.web import render
from simulator.web.access import PRACTISE, check_session, require
from simulator.web.context import WebContext

COLUMNS = ["Date (UTC)", "Client", "Mode", "Status", "Turns", "Summary"]
COLUMN_CLASSES = ["cs-nowrap", "", "", "", "num", "cs-wide"]
"""A plain table, not a data grid: it wraps inside words' boundaries at any width, and the
summary (the widest column) takes the room that is left instead of being cut off."""
MAX_GAP_SESSIONS = 6
"""The self-rating table shows the latest sessions; older ones are in each session's report."""
GAP_COLUMNS = ["session", "item", "self", "grader", "gap"]


def progress_frames(ctx: WebContext, user_name: str) -> tuple[pd.DataFrame, pd.DataFrame,
                                                             list[Any]]:
    """(sessions table, self-rating gap points, ended sessions) for one trainee."""
    sessions = list(ctx.store.list_sessions(trainee=user_name, limit=200))
    lib = ctx.library()
    ended = [s for s in sessions if s.status == "ended"]
    summary, gaps = summaries_and_gaps(ctx.store, ended)
    rows = []
    for s in sessions:
        title = lib.personas[s.persona_id].title if s.persona_id in lib.personas else s.persona_id
        rows.append([s.created[:16].replace("T", " "), title, s.mode, s.status,
                     s.n_turns // 2, summary.get(s.session_id, "")])
    return (pd.DataFrame(rows, columns=COLUMNS),
            pd.DataFrame(gaps, columns=GAP_COLUMNS), ended)


def sessions_html(table_df: pd.DataFrame) -> str:
    """The trainee's sessions, newest first (escaped)."""
    e = render.e
    if table_df.empty:
        return ('<p class="cs-muted">No sessions yet: choose a client on the Practice tab.</p>')
    head = "".join(f'<th class="{c}">{e(name)}</th>'
                   for name, c in zip(COLUMNS, COLUMN_CLASSES, strict=True))
    rows = "".join(
        "<tr>" + "".join(f'<td class="{c}">{e(v)}</td>'
                         for v, c in zip(row, COLUMN_CLASSES, strict=True)) + "</tr>"
        for row in table_df.itertuples(index=False))
    return (f'<div class="cs-brief cs-kappa"><b>My sessions</b><table class="cs-sessions">'
            f"<tr>{head}</tr>{rows}</table></div>")


def gaps_html(gap_df: pd.DataFrame) -> str:
    """Self-rating minus the grader's score per item and session (positive: you rated higher).

    Each cell also shows the two numbers, as the session's report prints them."""
    e = render.e
    if gap_df.empty:
        return ('<div class="cs-brief"><b>Your self-rating against the grader</b><p class='
                '"cs-muted">Rate your session before reading its report to see how your own '
                "sense of it compares with the grader's, session by session.</p></div>")
    sessions = sorted(set(int(n) for n in gap_df["session"]))[-MAX_GAP_SESSIONS:]
    cell = {(str(r.item), int(r.session)): r for r in gap_df.itertuples()}
    # items down the side (their names are long), sessions across (their numbers are short)
    head = "".join(f'<th class="num">Session {n}</th>' for n in sessions)
    rows = []
    for item in dict.fromkeys(gap_df["item"]):
        cells = "".join(
            "<td></td>" if (item, n) not in cell else
            f'<td class="num"><b>{cell[item, n].gap:+.1f}</b><br><span class="cs-muted">'
            f"{_num(cell[item, n].self)} vs {_num(cell[item, n].grader)}</span></td>"
            for n in sessions)
        rows.append(f"<tr><th>{e(item)}</th>{cells}</tr>")
    return ('<div class="cs-brief cs-kappa"><b>Your self-rating minus the grader\'s score</b>'
            '<p class="cs-muted">Positive: you rated yourself higher than the grader did '
            "(you vs the grader, as the report shows them). A gap that shrinks over sessions "
            "means your self-assessment is calibrating.</p>"
            f'<table class="cs-gaps"><tr><th>Item</th>{head}</tr>{"".join(rows)}</table>'
            "</div>")


def _num(value: float) -> str:
    """1 decimal, without a trailing .0 (the report's way: 3 and 2.5)."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def progress_svg(ctx: WebContext, user_name: str) -> str:
    """The summary-score chart (SVG from ``reports.charts``, fair/good thresholds shown)."""
    from simulator.reports.progress import build_progress, progress_chart

    try:
        progress = build_progress(ctx.store, trainee=user_name)
    except ValueError:
        progress = None
    svg = _chart(progress, progress_chart) if progress is not None else None
    if not svg:
        return ('<p class="cs-muted">Your summary scores appear here after your first session '
                "with coded turns.</p>")
    return f'<div class="cs-brief"><b>Summary scores over your sessions</b>{svg}</div>'


_CHARTS: dict[str, str | None] = {}
MAX_CHARTS = 256


def _chart(progress: Any, draw: Any) -> str | None:
    """The chart of these figures, drawn once: matplotlib takes about a second for it, and the
    tab is rebuilt every time it is opened (nothing changed since, most times)."""
    import hashlib

    key = hashlib.sha256(progress.model_dump_json().encode()).hexdigest()
    if key not in _CHARTS:
        svg = draw(progress)
        if len(_CHARTS) >= MAX_CHARTS:
            _CHARTS.pop(next(iter(_CHARTS)))
        _CHARTS[key] = svg
    return _CHARTS[key]


def build(ctx: WebContext) -> dict[str, Any]:
    with gr.Row():
        refresh = gr.Button("Refresh", size="sm", scale=0, min_width=100, elem_id="pg-refresh")
        gr.Markdown("Your sessions and how your summary scores moved. Percent and ratio scores "
                    "are compared with the rubric's fair/good thresholds in each report.")
    with gr.Row(equal_height=False):
        # side by side on a laptop; stacked below about 1000 px, so the chart keeps its size
        with gr.Column(scale=3, min_width=520):
            metrics = gr.HTML(elem_id="pg-metrics")
        with gr.Column(scale=2, min_width=400):
            gaps = gr.HTML(elem_id="pg-gaps")
    table = gr.HTML(elem_id="pg-table")
    with gr.Row(equal_height=True):
        pick = gr.Dropdown(choices=[], label="Open the report of an ended session",
                           allow_custom_value=True, scale=4, elem_id="pg-pick")
        open_btn = gr.Button("Open report", scale=1, elem_id="pg-open")
        download = gr.HTML(scale=1, min_width=120, elem_id="pg-download")
    report = gr.HTML(elem_id="pg-report")

    def load(request: gr.Request) -> tuple[Any, ...]:
        user = require(ctx.store, request, PRACTISE)
        table_df, gap_df, ended = progress_frames(ctx, user.name)
        choices = [(f"{ctx.persona_title(s.persona_id)} · {s.created[:16].replace('T', ' ')} UTC",
                    s.session_id) for s in ended]
        return (sessions_html(table_df), progress_svg(ctx, user.name), gaps_html(gap_df),
                gr.Dropdown(choices=choices, value=choices[0][1] if choices else None))

    def open_report(session_id: str | None, request: gr.Request) -> tuple[Any, ...]:
        """Public API ``/report``: a session's report, if you may see that session."""
        user = require(ctx.store, request, PRACTISE)
        session_id = check_session(ctx.practice, session_id, user)
        html_doc, url = ctx.report(session_id)
        return render.report_frame(html_doc), render.download_link(url, "Download")

    outputs = [table, metrics, gaps, pick]
    refresh.click(load, None, outputs, api_visibility="private")
    open_btn.click(open_report, [pick], [report, download], api_name="report",
                   show_progress="hidden",
                   api_description="The feedback report of a session you may see.")
    return {"load": (load, None, outputs)}
