"""Keep an asyncio loop polling, not sleeping, while short waits on the database are in flight.

Why: an append waits for its commit's WAL flush, a few hundred microseconds. An asyncio loop with
nothing else to do sleeps in `epoll_wait` for that time, its CPU goes idle, and waking it when the
answer arrives costs tens of microseconds more (on the 2-vCPU VM this project is benched on, a
bare autocommit INSERT took 210 µs with the loop asleep and 165 µs with it polling; a blocking
psycopg call, 175 µs). That wake-up is the largest single cost of a sequential append after the
flush itself.

`BusyPoll` spends CPU to save it: while at least one write is in flight, a task yields to the
loop (`asyncio.sleep(0)`) over and over, so the loop polls its sockets without blocking and runs
the answer's callback as soon as it lands. Other tasks run as usual (the poller yields every
turn). It is bounded both ways: it stops `linger` seconds after the last write ends (so that
back-to-back writes reuse one poller instead of starting one each), and never polls longer than
`budget` seconds past the start of the latest write (a write stuck behind a lock then waits
asleep, like any other). A `BusyPoll(budget=0)` is off.
"""

from __future__ import annotations

import asyncio
from types import TracebackType

BUDGET_SECONDS = 0.002
LINGER_SECONDS = 0.001


class BusyPoll:
    """`async with poll:` around a short wait keeps the running loop from sleeping meanwhile."""

    __slots__ = ("_deadline", "_in_flight", "_task", "budget", "linger", "turns")

    def __init__(self, *, budget: float = BUDGET_SECONDS, linger: float = LINGER_SECONDS) -> None:
        self.budget = budget
        self.linger = linger
        self.turns = 0  # loop turns spent polling, over the poller's life (observability, tests)
        self._in_flight = 0
        self._deadline = 0.0
        self._task: asyncio.Task[None] | None = None

    def polling(self) -> bool:
        """Whether a poller task is running now."""
        return self._task is not None

    async def __aenter__(self) -> None:
        if self.budget <= 0:
            return
        loop = asyncio.get_running_loop()
        self._in_flight += 1
        self._deadline = loop.time() + self.budget
        task = self._task
        # A poller left behind by another loop (one closed before it ended) is replaced.
        if task is None or task.get_loop() is not loop:
            self._task = loop.create_task(self._poll(loop), name="busy-poll")

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.budget <= 0:
            return
        self._in_flight -= 1
        if self._in_flight == 0:
            self._deadline = min(self._deadline, asyncio.get_running_loop().time() + self.linger)

    async def close(self) -> None:
        """Stop the poller now (it would stop by itself within `budget`)."""
        task, self._task = self._task, None
        if task is not None and task.get_loop() is asyncio.get_running_loop():
            task.cancel()
            await asyncio.wait([task])

    async def _poll(self, loop: asyncio.AbstractEventLoop) -> None:
        turns = 0
        try:
            while loop.time() < self._deadline:
                await asyncio.sleep(0)
                turns += 1
        finally:
            self.turns += turns
            if self._task is asyncio.current_task():
                self._task = None
