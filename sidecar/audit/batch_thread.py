"""A dedicated thread that takes in batches what the event loop hands it: group commit.

``BatchThread.submit`` (any thread, never blocks) queues an item; the thread takes
the first one waiting, waits ``window_s`` more (0: not at all) and hands everything
queued by then to ``run`` as one batch, in the order submitted. While ``run`` is
busy (an fsync) new items queue up and become the next batch: under load, one
fsync serves many requests, and at one request at a time nothing waits for a window.

When nothing is queued, ``due`` says how long the thread may sleep (None: until an
item comes) and ``tick`` runs once that time is up and after every batch: the place
for periodic work such as a checkpoint. ``stop`` (blocking) ends the thread after a
last batch of everything submitted before it. ``run`` and ``tick`` own what they
touch; an exception from them is logged and the thread goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


class _Stop:
    """The item that ends the thread."""


_STOP = _Stop()


class BatchThread(Generic[T]):
    """One thread running batches of submitted items (see the module docstring)."""

    def __init__(self, name: str, run: Callable[[list[T]], None], *, window_s: float = 0.0,
                 due: Callable[[], float | None] = lambda: None, tick: Callable[[], None] = lambda: None) -> None:
        self._run = run
        self._window = window_s
        self._due = due
        self._tick = tick
        self._queue: queue.SimpleQueue[T | _Stop] = queue.SimpleQueue()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._main, name=name, daemon=True)

    def start(self) -> None:
        """Start the thread."""
        self._thread.start()

    def submit(self, item: T) -> None:
        """Queue ``item`` for the next batch (thread-safe, never blocks)."""
        self._queue.put(item)

    def stop(self) -> None:
        """Run a last batch of everything submitted so far, then end the thread; blocks until it has."""
        if not self._thread.is_alive():
            return
        self._stopping.set()
        self._queue.put(_STOP)
        self._thread.join()

    def _main(self) -> None:
        while True:
            try:
                first = self._queue.get(timeout=self._due())
            except queue.Empty:
                self._guarded(self._tick)
                continue
            if self._window and not isinstance(first, _Stop):
                # NOTE: an Event, not a sleep, so that stop() cuts the window short.
                self._stopping.wait(self._window)
            items = [first]
            while True:
                try:
                    items.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            batch = [item for item in items if not isinstance(item, _Stop)]
            if batch:
                self._guarded(self._run, batch)
            self._guarded(self._tick)
            if len(batch) != len(items):
                return

    @staticmethod
    def _guarded(fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception:  # NOTE: the thread must outlive a bug in one batch, or every later caller hangs.
            log.exception("batch thread: a batch failed")
