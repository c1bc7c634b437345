"""The decision log's queue in the event loop: what waits for the next write, and when it goes.

``JsonlAuditLog`` keeps one batch in flight to its writer thread. The records
appended meanwhile wait here and go together once it has settled (group commit).
When a batch goes depends on what waits:

* a durable record (or a reader's ``flush``) sends it on the next turn of the loop,
  or after ``window_s`` when a flush window is set;
* records that are not durable (a decision's completion) start no write of their
  own: they ride with the next durable record, or go ``LAZY_S`` later when none
  comes, so a state change costs one fsync, not two.

``flush`` waiters are told when the batch holding everything queued before them is
on disk (or has failed: that is the log's to count).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

LAZY_S = 0.05
"""How long a record appended with ``durable=False`` may wait for a durable one to share its write."""

Pending = tuple[dict[str, Any], "asyncio.Future[None] | None"]
"""A queued record and, if it is durable, the future its appender awaits."""


class CommitQueue:
    """Records waiting for the next batch, and the timer that sends it (``send``, in the loop)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, window_s: float, send: Callable[[], None]) -> None:
        self._loop = loop
        self._window = window_s
        self._send = send
        self.queued: list[Pending] = []
        self.in_flight = False
        self.closing = False
        self.idle = asyncio.Event()
        self.idle.set()
        self._urgent = False
        self._timer: asyncio.Handle | None = None
        self._timer_lazy = False
        self._flush_next: list[asyncio.Future[None]] = []
        self._flush_in_flight: list[asyncio.Future[None]] = []

    @property
    def urgent(self) -> bool:
        """A durable record, a flush or close waits: send as soon as nothing is in flight."""
        return self._urgent or self.closing

    def add(self, record: dict[str, Any], durable: bool) -> asyncio.Future[None] | None:
        """Queue ``record``; for a durable one, the future settled once it is on disk."""
        fut: asyncio.Future[None] | None = self._loop.create_future() if durable else None
        self.queued.append((record, fut))
        self.idle.clear()
        if durable:
            self._urgent = True
        if not self.in_flight:
            self.schedule()
        return fut

    def flush_waiter(self) -> asyncio.Future[None] | None:
        """A future settled once what is queued or in flight now is written; None when nothing is."""
        if self.queued:
            waiters = self._flush_next
            self._urgent = True
            if not self.in_flight:
                self.schedule()
        elif self.in_flight:
            waiters = self._flush_in_flight
        else:
            return None
        done: asyncio.Future[None] = self._loop.create_future()
        waiters.append(done)
        return done

    def schedule(self) -> None:
        """No batch in flight: time the next send (soon for a durable record, else lazily)."""
        urgent = self.urgent
        if self._timer is not None:
            if not (urgent and self._timer_lazy):
                return
            self._timer.cancel()
        self._timer_lazy = not urgent
        if not urgent:
            self._timer = self._loop.call_later(LAZY_S, self._send)
        elif self._window:
            self._timer = self._loop.call_later(self._window, self._send)
        else:
            # NOTE: call_soon, so that what the loop appends in this turn goes in the same batch.
            self._timer = self._loop.call_soon(self._send)

    def take(self) -> list[Pending]:
        """What goes in the batch being sent (empty: nothing to send; idle is set if nothing is in flight)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.in_flight or not self.queued:
            if not self.in_flight:
                self.idle.set()
            return []
        batch, self.queued = self.queued, []
        self._urgent = False
        self._flush_in_flight, self._flush_next = self._flush_next, []
        return batch

    def settled(self) -> bool:
        """The batch in flight settled: wake its flushers; True when the next should go now."""
        self.in_flight = False
        waiters, self._flush_in_flight = self._flush_in_flight, []
        for done in waiters:
            if not done.done():
                done.set_result(None)
        if self.urgent:
            return True
        if self.queued:
            self.schedule()
        else:
            self.idle.set()
        return False
