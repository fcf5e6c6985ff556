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
  trainee waiting for the client cannot;
* on a one-slot endpoint, a reply is announced from the moment the trainee's turn arrives
  (``reply_coming``), before the engine has coded it: a running grade steps aside at once and no
  grade starts (nor builds its prompt on the event loop) until the reply's stream has ended, so
  the engine's own work before the model call is not slowed by grading either.

Gates are per event loop and per endpoint (``gate_for``), shared by every model on that endpoint.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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
        self._coming = 0
        """Replies announced and not finished (``reply_coming``)."""
        self._quiet = asyncio.Event()
        self._quiet.set()

    def _holding_grades(self) -> bool:
        return self.limit == 1 and self._coming > 0

    @contextlib.contextmanager
    def reply_coming(self) -> Iterator[None]:
        """Announce a client reply from the trainee's send until its stream has ended. Only a
        one-slot endpoint holds grades back for it: with several slots a class's replies would
        otherwise starve grading for good."""
        self._coming += 1
        self._quiet.clear()
        if self._holding_grades():
            self._preempt_one()
        try:
            yield
        finally:
            self._coming -= 1
            if self._coming == 0:
                self._quiet.set()
                self._wake()

    async def quiet(self) -> None:
        """Wait until no announced reply is in progress (a grade calls this before it builds its
        prompt, so that work does not run on the loop while a reply is being made)."""
        while self._holding_grades():
            await self._quiet.wait()

    def _busy(self) -> int:
        return len(self.holders) + self._granted

    def _wake(self) -> None:
        self._waiting.sort(key=lambda w: (w[0], w[1]))
        while self._waiting and self._busy() < self.limit:
            if self._waiting[0][0] == 1 and self._holding_grades():
                return  # a reply is on its way: the grades wait for it
            _, _, fut = self._waiting.pop(0)
            if not fut.done():
                fut.set_result(None)
                self._granted += 1

    @contextlib.asynccontextmanager
    async def slot(self, priority: Priority) -> AsyncIterator[Holder]:
        """Hold one of the endpoint's slots for the duration of the block."""
        holder = Holder(priority)
        rank = 0 if priority == "reply" else 1
        if self._busy() >= self.limit or any(w[0] <= rank for w in self._waiting) or \
                (rank == 1 and self._holding_grades()):
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
        if self._busy() < self.limit and not self._holding_grades():
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
