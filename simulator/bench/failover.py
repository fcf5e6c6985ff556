"""``bench load --kill-replica-after S``: one replica dies in the middle of a class.

docs/deployment.md promises what happens when a replica dies: its trainees reload, the proxy sends
them to another replica where their sign-in is valid, their session resumes from its stored turns
(a turn stored but not answered is answered by "Ask again"), and the grades the dead replica was
working on are finished by another replica once their lease runs out. This module is the bench's
side of checking that under load: it kills replica 0 with SIGKILL (no clean shutdown, as a crash or
an OOM kill), records which grading jobs that replica held at its death, keeps the counts of what
its trainees saw while they moved (``bench.load.SimTrainee`` does the moving), and after the load
waits for the dead replica's jobs and says who finished them.

Nothing here talks HTTP: the trainees do. The figures are a ``FailoverReport`` in the bench's JSON.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel

MAX_SAMPLES = 5


class FailoverReport(BaseModel):
    """What ``bench load --kill-replica-after`` adds to its JSON (``failover``)."""

    killed_replica: int
    """Index of the replica killed (0: the one trainees 0, N, 2N, ... were sticky to)."""
    kill_after_s: float
    """When the kill was asked for, in seconds from the start of the load."""
    killed_at_s: float | None
    """When it happened (None: the load ended first and nothing was killed)."""
    trainees_on_killed: int
    """Trainees sticky to the killed replica."""
    committed_before_kill: int
    """Turns the killed replica's trainees had seen it commit before it died: the turns their
    reopened sessions must show."""
    trainees_moved: int
    """Of those trainees, the ones that met the dead replica and moved to the survivor."""
    moved_with_session: int
    """Moved trainees that had a session going when they moved."""
    sessions_continued: int
    """Moved trainees whose session reopened on the survivor under the same session id with every
    turn they had seen committed on the killed replica (those with a session, and those below
    that resumed the session the page offered)."""
    resumed_offered: int
    """Moved before they had seen their session start (its answer lost in the kill), these
    resumed the session the page offered under "Continue where you left off"."""
    started_on_survivor: int
    """Moved before any session of theirs existed (still signing in or opening the page)."""
    committed_missing_on_resume: int
    """Turns a moved trainee had seen committed that its reopened session did not show."""
    signed_in_again: int
    """Moved trainees whose cookie the survivor refused, so that they had to sign in again
    (sign-ins are in the database: expected 0)."""
    turns_answered_after_move: int
    """Turns of moved trainees answered by the survivor (a turn cut off by the kill included)."""
    turns_asked_again: int
    """Turns stored before the kill but not answered, answered on the survivor by "Ask again"."""
    errors_seen: int
    """Requests of the killed replica's trainees that failed because it died (not counted in the
    bench's ``errors``: each is followed by the move)."""
    error_samples: list[str]
    jobs_held: int | None
    """Grading jobs the killed replica held when it died (None: no LLM grader, so no jobs)."""
    jobs_finished: int | None
    """Of those, the ones done afterwards without an error, with an ok grade stored."""
    jobs_taken_over: int | None
    """Of those, the ones the survivor's job worker claimed once the lease ran out (the others
    were ended by a grade the survivor stored while answering "Ask again")."""
    jobs_wait_s: float | None
    """How long after the load the bench waited for the held jobs to be done."""


@dataclass
class Failover:
    """The kill of one replica during ``drive``: who dies, when, and what its trainees met.

    Shared by the killer task and every trainee task of one event loop: the counters are only
    touched from that loop, so they need no lock."""

    victim: subprocess.Popen[bytes]
    victim_url: str
    survivor_url: str
    after_s: float
    store: Any = None
    """An open store on the replicas' database (for the jobs); None when there is no grader."""
    victim_worker: str | None = None
    survivor_worker: str | None = None
    victim_index: int = 0
    killed_at_s: float | None = None
    held: list[int] = field(default_factory=list)
    on_victim: set[int] = field(default_factory=set)
    committed_before_kill: int = 0
    moved: set[int] = field(default_factory=set)
    continued: int = 0
    moved_with_session: int = 0
    resumed_offered: int = 0
    started_on_survivor: int = 0
    missing_on_resume: int = 0
    signed_in_again: int = 0
    turns_after_move: int = 0
    asked_again: int = 0
    errors: int = 0
    samples: list[str] = field(default_factory=list)

    @property
    def killed(self) -> bool:
        return self.killed_at_s is not None

    def gone(self, url: str) -> bool:
        """A trainee's request to ``url`` failed because of the kill (not for another reason)."""
        return self.killed and url == self.victim_url

    def saw_error(self, message: str) -> None:
        self.errors += 1
        if len(self.samples) < MAX_SAMPLES:
            self.samples.append(message[:300])

    async def kill_later(self, t0: float) -> None:
        """SIGKILL the victim ``after_s`` seconds after ``t0`` (the start of the load).

        The kill, the mark every trainee checks and the snapshot of the victim's jobs happen in
        one step of the event loop, without awaiting: no trainee can see the dead replica before
        it is marked dead (its error would be counted as an ordinary one), and none can move and
        have a held job ended by the survivor before the snapshot (it would be missed)."""
        await asyncio.sleep(max(0.0, self.after_s - (time.perf_counter() - t0)))
        self.victim.kill()
        self.killed_at_s = round(time.perf_counter() - t0, 2)
        self.victim.wait(timeout=10)  # SIGKILL: the kernel ends it at once
        if self.store is not None and self.victim_worker is not None:
            self.held = held_jobs(self.store, self.victim_worker)

    def report(self, jobs: JobOutcome | None) -> FailoverReport:
        return FailoverReport(
            killed_replica=self.victim_index, kill_after_s=self.after_s,
            killed_at_s=self.killed_at_s, trainees_on_killed=len(self.on_victim),
            committed_before_kill=self.committed_before_kill,
            trainees_moved=len(self.moved), moved_with_session=self.moved_with_session,
            sessions_continued=self.continued, resumed_offered=self.resumed_offered,
            started_on_survivor=self.started_on_survivor,
            committed_missing_on_resume=self.missing_on_resume,
            signed_in_again=self.signed_in_again, turns_answered_after_move=self.turns_after_move,
            turns_asked_again=self.asked_again, errors_seen=self.errors,
            error_samples=self.samples,
            jobs_held=None if jobs is None else jobs.held,
            jobs_finished=None if jobs is None else jobs.finished,
            jobs_taken_over=None if jobs is None else jobs.taken_over,
            jobs_wait_s=None if jobs is None else jobs.wait_s)


def held_jobs(store: Any, worker: str) -> list[int]:
    """Ids of the open grading jobs ``worker`` holds: taken right after its death, these are the
    grades it was working on and that must now be finished by someone else."""
    return [j.id for j in store.jobs(status="queued") if j.claimed_by == worker]


@dataclass
class JobOutcome:
    held: int
    finished: int
    taken_over: int
    wait_s: float


def wait_for_jobs(store: Any, ids: list[int], survivor_worker: str | None,
                  timeout_s: float, poll_s: float = 1.0) -> JobOutcome:
    """Wait until every job in ``ids`` is done (or ``timeout_s``), then count how they ended.

    A job counts as finished only when it is done without an error *and* its turn (or session)
    has an ok grade in the store: a job can also end done after its grade stayed ``pending``
    (the model kept failing), which is not a finished grade."""
    t0 = time.monotonic()
    while True:
        jobs = [store.get_job(i) for i in ids]
        if all(j.status == "done" for j in jobs) or time.monotonic() - t0 > timeout_s:
            break
        time.sleep(poll_s)
    finished = sum(1 for j in jobs if j.status == "done" and not j.error and _graded(store, j))
    taken = sum(1 for j in jobs if survivor_worker is not None and j.claimed_by == survivor_worker)
    return JobOutcome(held=len(ids), finished=finished, taken_over=taken,
                      wait_s=round(time.monotonic() - t0, 1))


def drain_jobs(store: Any, timeout_s: float = 60.0, poll_s: float = 0.5) -> int:
    """Wait until no grading job is queued (the survivor's grades still running when the load
    ends), or ``timeout_s``; returns how many are still queued. Without this the survivor was
    stopped with its last grades in flight, and the database was left with open jobs that only
    a next replica would finish (a test checking for none failed on a slower machine)."""
    t0 = time.monotonic()
    while store.jobs(status="queued") and time.monotonic() - t0 < timeout_s:
        time.sleep(poll_s)
    return len(store.jobs(status="queued"))


def _graded(store: Any, job: Any) -> bool:
    """The grade a job stands for is stored and ok (a turn's grade, or the session's)."""
    if job.kind == "turn":
        return any(g.turn_id == job.turn_id and g.status == "ok"
                   for g in store.grades(job.session_id))
    session = store.get_session(job.session_id)
    return store.session_grade(job.session_id, session.rubric_id) is not None


def open_job_store(target: str | Path | None) -> Any:
    """The bench's own connection to the replicas' database, for the job snapshot and wait."""
    from simulator.store import open_store

    return None if target is None else open_store(target)


def format_text(r: FailoverReport) -> str:
    if r.killed_at_s is None:
        return f"  failover: replica {r.killed_replica} was not killed (the load ended first)"
    jobs = ("no LLM grader, no grading jobs" if r.jobs_held is None else
            f"grading jobs it held: {r.jobs_held}, finished by the survivor: {r.jobs_finished} "
            f"({r.jobs_taken_over} taken over after the lease, waited {r.jobs_wait_s} s)")
    return (f"  failover: replica {r.killed_replica} killed (SIGKILL) at {r.killed_at_s} s; "
            f"{r.trainees_moved} of its {r.trainees_on_killed} trainees moved "
            f"({r.committed_before_kill} turns committed on it before); "
            f"{r.moved_with_session} had a session, {r.resumed_offered} resumed the one offered "
            f"(its start's answer lost), {r.started_on_survivor} started there; "
            f"{r.sessions_continued} continued their session "
            f"({r.committed_missing_on_resume} committed turns missing on resume, "
            f"{r.signed_in_again} signed in again), {r.turns_answered_after_move} turns answered "
            f"after the move ({r.turns_asked_again} by Ask again), {r.errors_seen} failed "
            f"requests during the move\n  {jobs}")
