"""How many model requests go to one endpoint at once, and who goes first: the client's reply.

Why: one local server usually runs one request at a time. When the client and the grader share
it, a grade in progress would hold the client's reply back for the whole grading call (seconds
on a CPU), and llama-cpp-python by default even cuts the running stream short when a second
request arrives. So every request to an endpoint passes its ``EndpointGate``:

* at most ``limit`` requests run at once (default 1 for a loopback server, see ``limits``);
* a waiting client reply is served before any waiting grade;
* when a client reply has to wait because grades fill every slot, one grade is *preempted*: its
  HTTP request is cancelled (the server frees the slot when the connection closes) and it is
  sent again once the replies are served. A grade is derived data and can always be redone; the
  trainee waiting for the client cannot.

Gates are per event loop and per endpoint (``gate_for``), shared by every model on that endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Literal, TypeVar

Priority = Literal["reply", "grade"]
T = TypeVar("T")


@dataclass(eq=False)
class Holder:
    """One request holding a slot; a grade's holder can be asked to step aside."""

    priority: Priority
    preempted: asyncio.Event = field(default_factory=asyncio.Event)


class EndpointGate:
    """A semaphore with two priorities and preemption of grades by replies."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.holders: list[Holder] = []
        self._waiting: list[tuple[int, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()
        self._granted = 0
        """Slots handed to waiters that have not resumed yet (no one else may take them)."""
        self.preemptions = 0
        """How many grade requests were cancelled to let a reply through (for benchmarks)."""

    def _busy(self) -> int:
        return len(self.holders) + self._granted

    def _wake(self) -> None:
        self._waiting.sort(key=lambda w: (w[0], w[1]))
        while self._waiting and self._busy() < self.limit:
            _, _, fut = self._waiting.pop(0)
            if not fut.done():
                fut.set_result(None)
                self._granted += 1

    @contextlib.asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[Holder]:
        """Hold one of the endpoint's slots for the duration of the block."""
        holder = Holder(priority)
        rank = 0 if priority == "reply" else 1
        if self._busy() >= self.limit or any(w[0] <= rank for w in self._waiting):
            fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append((rank, next(self._seq), fut))
            if priority == "reply":
                self._preempt_one()
            try:
                await fut
            except asyncio.CancelledError:
                if fut.done() and not fut.cancelled():
                    self._granted -= 1  # handed a slot we no longer want: pass it on
                    self._wake()
                else:
                    self._waiting = [w for w in self._waiting if w[2] is not fut]
                raise
            self._granted -= 1
        self.holders.append(holder)
        try:
            yield holder
        finally:
            self.holders.remove(holder)
            self._wake()

    def _preempt_one(self) -> None:
        if self._busy() < self.limit:
            return
        grades = [h for h in self.holders if h.priority == "grade" and not h.preempted.is_set()]
        if grades:
            grades[-1].preempted.set()  # the newest grade has done the least work
            self.preemptions += 1

    async def run_grade(self, call: Callable[[], Awaitable[T]]) -> T:
        """Run a grading call through the gate; if a reply preempts it, cancel it and run it
        again later. Cancelling ``run_grade`` cancels the call."""
        while True:
            async with self.slot("grade") as holder:
                task = asyncio.ensure_future(call())
                stepped_aside = asyncio.ensure_future(holder.preempted.wait())
                try:
                    await asyncio.wait({task, stepped_aside},
                                       return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stepped_aside.cancel()
                    if not task.done():
                        task.cancel()
                        with contextlib.suppress(asyncio.CancelledError, Exception):
                            await task
                if task.done() and not task.cancelled():
                    return task.result()


_gates: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, EndpointGate]] = (
    weakref.WeakKeyDictionary())


def gate_for(endpoint: str, limit: int) -> EndpointGate:
    """The gate of ``endpoint`` on the running loop (created with ``limit`` the first time; a
    smaller limit asked for later lowers it)."""
    loop = asyncio.get_running_loop()
    gates = _gates.setdefault(loop, {})
    gate = gates.get(endpoint)
    if gate is None:
        gate = gates[endpoint] = EndpointGate(limit)
    elif limit < gate.limit:
        gate.limit = max(1, limit)
    return gate
