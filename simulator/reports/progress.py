"""Progress over sessions: a trainee's summary scores over time, or a cohort's, aggregated.

Every session is scored with the exact rubric version it recorded (``grader.scores``), so a
trainee's old sessions keep their old numbers when the rubric file changes. Only sessions of one
rubric are compared (the one asked for, else the rubric most of the sessions used); sessions
without coded counselor turns are skipped.

A cohort view has one row per trainee (mean of each metric over their sessions, with the verdict
of that mean) and a curve of the cohort mean by session number (each trainee's 1st, 2nd, ...
session), which shows whether practice is paying off across the group.
"""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean
from typing import Any, Literal

from pydantic import BaseModel

from simulator.content.rubric import Rubric
from simulator.grader.scores import (
    Verdict,
    display_value,
    session_rubric,
    session_scores,
    verdict_for,
)
from simulator.store import Session, SessionFilter, Store

ProgressFormat = Literal["md", "html", "json"]


class MetricInfo(BaseModel):
    id: str
    name: str
    format: str
    fair: float | None = None
    good: float | None = None
    fair_display: str | None = None
    good_display: str | None = None
    higher_is_better: bool = True
    scale: float = 1.0


class Cell(BaseModel):
    value: float | None = None
    display: str = "n/a"
    verdict: Verdict | None = None


class SessionPoint(BaseModel):
    session_id: str
    trainee: str
    created: str
    persona_id: str
    status: str
    n_turns: int
    metrics: dict[str, Cell]
    estimated: bool = False


class TraineeRow(BaseModel):
    trainee: str
    sessions: int
    means: dict[str, Cell]
    latest: str


class Progress(BaseModel):
    scope: Literal["trainee", "cohort", "all"]
    name: str | None = None
    rubric_id: str
    rubric_title: str
    metrics: list[MetricInfo]
    sessions: list[SessionPoint]
    """Oldest first."""
    trainees: list[TraineeRow]
    by_session_number: list[dict[str, Cell]]
    """Index n: mean over trainees of their (n+1)-th session."""
    skipped_other_rubrics: int = 0
    generated: str


def _cell(rubric: Rubric, metric_id: str, value: float | None) -> Cell:
    m = next(x for x in rubric.metrics if x.id == metric_id)
    return Cell(value=value, display=display_value(m, value),
                verdict=verdict_for(value, m.thresholds, m.higher_is_better))


def _mean(values: list[float | None]) -> float | None:
    nums = [v for v in values if v is not None]
    return fmean(nums) if nums else None


def build_progress(store: Store, *, trainee: str | None = None, cohort: str | None = None,
                   rubric_id: str | None = None) -> Progress:
    sessions = store.list_sessions(SessionFilter(trainee=trainee, cohort=cohort))
    if not sessions:
        who = f"trainee {trainee!r}" if trainee else f"cohort {cohort!r}" if cohort else "anyone"
        raise ValueError(f"no sessions for {who}")
    rid = rubric_id or Counter(s.rubric_id for s in sessions).most_common(1)[0][0]
    same = sorted((s for s in sessions if s.rubric_id == rid), key=lambda s: s.created)
    if not same:
        raise ValueError(f"no sessions scored with rubric {rid!r}")
    latest = max(same, key=lambda s: s.created)
    rubric = session_rubric(store, latest)
    points: list[SessionPoint] = []
    for s in same:
        sc = session_scores(store, s.session_id, session_rubric(store, s))
        if sc.n_turns == 0:
            continue
        cells = {m.id: Cell(value=m.value, display=m.display, verdict=m.verdict)
                 for m in sc.metrics}
        points.append(SessionPoint(session_id=s.session_id, trainee=s.trainee, created=s.created,
                                   persona_id=s.persona_id, status=s.status, n_turns=sc.n_turns,
                                   metrics=cells, estimated=sc.estimated))
    infos = []
    for m in rubric.metrics:
        t = m.thresholds
        scale = 100.0 if (m.format == "percent" and t is not None
                          and max(abs(t.fair), abs(t.good)) <= 1) else 1.0
        infos.append(MetricInfo(id=m.id, name=m.name, format=m.format,
                                fair=t.fair if t else None, good=t.good if t else None,
                                fair_display=display_value(m, t.fair) if t else None,
                                good_display=display_value(m, t.good) if t else None,
                                higher_is_better=m.higher_is_better, scale=scale))
    ids = [m.id for m in rubric.metrics]
    per_trainee: dict[str, list[SessionPoint]] = {}
    for p in points:
        per_trainee.setdefault(p.trainee, []).append(p)
    rows = [TraineeRow(trainee=name, sessions=len(ps), latest=ps[-1].created,
                       means={i: _cell(rubric, i, _mean([p.metrics[i].value for p in ps
                                                         if i in p.metrics])) for i in ids})
            for name, ps in sorted(per_trainee.items())]
    longest = max((len(ps) for ps in per_trainee.values()), default=0)
    by_number = [{i: _cell(rubric, i, _mean([ps[n].metrics[i].value for ps in per_trainee.values()
                                             if len(ps) > n and i in ps[n].metrics]))
                  for i in ids} for n in range(longest)]
    scope: Literal["trainee", "cohort", "all"] = "trainee" if trainee else (
        "cohort" if cohort else "all")
    return Progress(scope=scope, name=trainee or cohort, rubric_id=rid,
                    rubric_title=rubric.title, metrics=infos, sessions=points, trainees=rows,
                    by_session_number=by_number,
                    skipped_other_rubrics=len(sessions) - len(same),
                    generated=datetime.now(UTC).isoformat(timespec="seconds"))


def summaries_and_gaps(store: Store, ended: list[Session]
                       ) -> tuple[dict[str, str], list[dict[str, Any]]]:
    """For a trainee's ended sessions (newest first): a one-line summary of each (its first three
    metrics), and the self-rating gaps (own rating minus the grader's score, per item), numbered
    oldest first."""
    summary: dict[str, str] = {}
    gaps: list[dict[str, Any]] = []
    for n, s in enumerate(reversed(ended), start=1):
        try:
            sc = session_scores(store, s.session_id)
        except (ValueError, KeyError):
            continue
        summary[s.session_id] = " · ".join(f"{m.name}: {m.display}" for m in sc.metrics[:3])
        rating = s.self_rating or {}
        for it in sc.session_items:
            mine = rating.get(it.id)
            if isinstance(mine, int | float) and it.score is not None:
                # the grader's score as the report prints it (one decimal), so the gap is the
                # difference the trainee sees there: 3 against 2.5 is +0.5, never +0.6
                grader = float(f"{float(it.score):.1f}")
                gaps.append({"session": n, "item": it.title, "self": float(mine),
                             "grader": grader, "gap": round(float(mine) - grader, 2)})
    return summary, gaps


def progress_chart(progress: Progress) -> str | None:
    """SVG: each thresholded metric per session (trainee) or by session number (cohort/all)."""
    from simulator.reports.charts import MetricBar, progress_lines

    shown = [m for m in progress.metrics if m.fair is not None and m.good is not None]
    if not shown or not progress.sessions:
        return None
    if progress.scope == "trainee":
        labels = [f"{n + 1}\n{p.created[5:10]}" for n, p in enumerate(progress.sessions)]
        columns = [{k: c.value for k, c in p.metrics.items()} for p in progress.sessions]
    else:
        labels = [f"#{n + 1}" for n in range(len(progress.by_session_number))]
        columns = [{k: c.value for k, c in col.items()} for col in progress.by_session_number]
    series = []
    for m in shown:
        assert m.fair is not None and m.good is not None
        bar = MetricBar(m.name, None, "", m.fair, m.good, m.higher_is_better, None, m.scale)
        series.append((bar, [col.get(m.id) for col in columns]))
    return progress_lines(labels, series)


def render_progress(progress: Progress, fmt: ProgressFormat, *,
                    feedback_dir: Path | None = None) -> str:
    if fmt == "json":
        return progress.model_dump_json(indent=2) + "\n"
    from markupsafe import Markup

    from simulator.reports.render import environment, shipped_feedback

    env = environment(feedback_dir or shipped_feedback())
    chart = progress_chart(progress) if fmt == "html" else None
    return env.get_template(f"progress.{fmt}.j2").render(
        p=progress, chart=Markup(chart) if chart else None)  # noqa: S704 - our own SVG
