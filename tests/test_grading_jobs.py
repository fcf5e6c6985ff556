"""Grading jobs: an LLM grade a replica started is finished by another replica if the first one
dies (its lease runs out), on SQLite and PostgreSQL alike; a live replica ends its own jobs."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from test_session import make_settings
from test_session_end_grading import FAST, TURNS, Grader, play, use_grader

from simulator.grader import grade as grade_module
from simulator.service.grading_jobs import JobWorker
from simulator.service.practice import Practice
from simulator.settings import Settings
from simulator.store import open_store


class Killed(BaseException):
    """The process dies here: nothing after it runs (no handler catches a BaseException)."""


async def killed(*args: Any, **kwargs: Any) -> Any:
    raise Killed


def replica(settings: Settings, worker: str, grader: Grader) -> Practice:
    p = Practice.from_settings(settings)
    use_grader(p, grader)
    p.grade_options = FAST
    p.grading_worker = worker
    return p


def test_a_dead_replicas_grades_are_finished_by_another(
        tmp_path: Path, db_target: str | Path, monkeypatch: pytest.MonkeyPatch) -> None:
    a = replica(make_settings(tmp_path).model_copy(update={"db": db_target}), "replica-a",
                Grader())
    # replica A dies while its grader works on each grade (before anything is stored)
    monkeypatch.setattr(grade_module, "grade_turn", killed)
    monkeypatch.setattr(grade_module, "grade_session", killed)
    a.store.add_user("ana", "trainee", cohort="c1")

    async def session_then_killed() -> str:
        sid = a.start("ana", "test-dana")
        for text in TURNS:
            async for _ in a.turn(sid, "ana", text):
                pass
        await a.end_async(sid, "ana")
        await asyncio.gather(*a._grading, return_exceptions=True)  # each grade task "died"
        return sid

    sid = asyncio.run(session_then_killed())
    monkeypatch.undo()
    store = a.store
    jobs = store.jobs(status="queued")
    assert sorted((j.kind, j.claimed_by) for j in jobs) == [
        ("session", "replica-a"), ("turn", "replica-a"), ("turn", "replica-a")]
    assert store.grades(sid) == [] and store.session_grade(sid, "miti-4.2.1") is None

    b_store = open_store(db_target)  # replica B: its own connections to the same database
    b = JobWorker(b_store, a.settings, worker="replica-b", model=Grader())
    assert asyncio.run(b.run_once()) == 0  # A's leases still hold
    store.renew_jobs("replica-a", lease_s=0.0)  # ... A stopped renewing: time is up
    assert asyncio.run(b.run_once()) == 3
    grades = b_store.grades(sid)
    assert len(grades) == 2 and all(g.status == "ok" for g in grades)
    sg = b_store.session_grade(sid, "miti-4.2.1")
    assert sg is not None and sg.items["partnership"].score == 4
    done = b_store.jobs(session_id=sid)
    assert all(j.status == "done" and j.claimed_by == "replica-b" and j.attempts == 2
               for j in done)
    b_store.close()
    store.close()


def test_a_live_replica_ends_its_own_jobs(tmp_path: Path, db_target: str | Path) -> None:
    p = replica(make_settings(tmp_path).model_copy(update={"db": db_target}), "replica-a",
                Grader())
    p.store.add_user("ana", "trainee", cohort="c1")
    sid = play(p)
    jobs = p.store.jobs(session_id=sid)
    assert len(jobs) == 3 and all(j.status == "done" for j in jobs)
    assert p.store.claim_job("replica-b") is None
    p.store.close()
