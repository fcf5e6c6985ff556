"""Grading that any replica can finish: the worker that claims jobs left by a dead one.

With several app replicas, an LLM grade running as a task in one process would be lost with that
process. So ``counselsim serve`` (with an LLM grader) records the work as a job in the store
(``Store.add_job``), claimed at once by this process under a lease (``WORKER`` names it), and runs
a ``JobWorker``: a thread with its own event loop that

* renews the leases of every job this process holds, every third of a lease, while it lives;
* claims jobs nobody holds (a dead replica's, once its lease ran out) and finishes them with the
  same code as ``counselsim regrade``, limited to that job's turn (or the session-level grade).

A job ends when its turn's grade is stored (by anyone: ``add_grade`` ends it in the same
transaction), or when the worker gave up on it (the error is kept on the job). A grade that is
stored ``pending`` stays for ``counselsim regrade``, as before. The worker builds its own grader
model (a model's HTTP client belongs to the event loop that made it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import uuid
from typing import Any

from simulator.errors import StorageError
from simulator.grader.grade import GradeOptions
from simulator.service.regrade import regrade_session
from simulator.settings import Settings
from simulator.store import Job, Store

log = logging.getLogger(__name__)

WORKER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
"""This process, as the holder of grading jobs (unique even if a pid is reused)."""
LEASE_S = 60.0
"""A dead replica's jobs are taken over this long after its last renewal."""
POLL_S = 5.0


async def run_job(store: Store, job: Job, *, model: Any, spec: str,
                  options: GradeOptions | None = None) -> str:
    """Finish one claimed job; returns the error it ended with ("" when done). Never raises."""
    error = ""
    try:
        if job.kind == "turn" and job.turn_id is not None:
            await regrade_session(store, job.session_id, model=model, spec=spec, options=options,
                                  include_failed=False, turn_ids={job.turn_id},
                                  session_items=False)
        else:
            await regrade_session(store, job.session_id, model=model, spec=spec, options=options,
                                  include_failed=False, turn_ids=set())
    except Exception as exc:  # a grading job must not stop the worker; the job says why
        log.exception("grading job %s (%s of %s) failed", job.id, job.kind, job.session_id)
        error = f"{type(exc).__name__}: {exc}"[:500]
    try:  # a turn job is normally ended by its stored grade; a rewound turn's is ended here
        await asyncio.to_thread(store.finish_jobs, job.kind, job.session_id, job.turn_id,
                                error=error)
    except StorageError as exc:
        log.warning("grading job %s not marked done: %s", job.id, exc)
    return error


class JobWorker:
    """Renews this process's job leases and finishes jobs nobody holds (see module docstring)."""

    def __init__(self, store: Store, settings: Settings, *, worker: str = WORKER,
                 lease_s: float = LEASE_S, poll_s: float = POLL_S, model: Any = None) -> None:
        self.store, self.settings, self.worker = store, settings, worker
        self.lease_s, self.poll_s = lease_s, poll_s
        self._model = model
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def model(self) -> Any:
        if self._model is None:
            from simulator.llm.providers import chat_model

            self._model = chat_model(self.settings.grader_model, self.settings)
        return self._model

    async def run_once(self) -> int:
        """Renew this worker's leases, then finish every job nobody holds; returns how many."""
        await asyncio.to_thread(self.store.renew_jobs, self.worker, lease_s=self.lease_s)
        done = 0
        while not self._stop.is_set():
            job = await asyncio.to_thread(self.store.claim_job, self.worker,
                                          lease_s=self.lease_s)
            if job is None:
                break
            model = self.model()
            if model is None:  # this replica has no grader: leave the job for one that has
                await asyncio.to_thread(self.store.renew_jobs, self.worker, lease_s=0.0)
                break
            log.info("finishing grading job %s (%s of %s, attempt %s)", job.id, job.kind,
                     job.session_id, job.attempts)
            await run_job(self.store, job, model=model, spec=self.settings.grader_model,
                          options=GradeOptions.from_settings(self.settings))
            done += 1
        return done

    async def _renew_forever(self) -> None:
        while not self._stop.is_set():
            try:
                await asyncio.to_thread(self.store.renew_jobs, self.worker, lease_s=self.lease_s)
            except StorageError as exc:
                log.warning("grading job leases not renewed: %s", exc)
            await asyncio.sleep(self.lease_s / 3)

    async def _main(self) -> None:
        renewing = asyncio.create_task(self._renew_forever())
        try:
            while not self._stop.is_set():
                try:
                    await self.run_once()
                except StorageError as exc:
                    log.warning("grading jobs not claimed: %s", exc)
                await asyncio.to_thread(self._stop.wait, self.poll_s)
        finally:
            renewing.cancel()

    def start(self) -> JobWorker:
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),),
                                        name="grading-jobs", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


__all__ = ["LEASE_S", "WORKER", "JobWorker", "run_job"]
