"""Unit tests for sidecar.audit.batch_thread.BatchThread: batches, order, stop, a failing batch."""

from __future__ import annotations

import threading

from sidecar.audit.batch_thread import BatchThread


class Recording:
    """A ``run`` that records each batch; with ``hold`` set, the first batch waits for ``release``."""

    def __init__(self, hold: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()

    def __call__(self, batch: list[int]) -> None:
        self.started.set()
        self.release.wait()
        self.batches.append(list(batch))


def test_items_submitted_while_a_batch_runs_form_the_next_batch_in_order() -> None:
    run = Recording(hold=True)
    thread: BatchThread[int] = BatchThread("test-batch", run)
    thread.start()
    thread.submit(0)
    assert run.started.wait(10)
    for n in range(1, 6):
        thread.submit(n)
    run.release.set()
    thread.stop()
    assert run.batches == [[0], [1, 2, 3, 4, 5]]


def test_stop_runs_a_last_batch_of_everything_submitted_and_cuts_the_window_short() -> None:
    run = Recording()
    thread: BatchThread[int] = BatchThread("test-batch", run, window_s=3600.0)
    thread.start()
    for n in range(3):
        thread.submit(n)
    thread.stop()
    assert [n for batch in run.batches for n in batch] == [0, 1, 2]


def test_a_failing_batch_is_logged_and_the_thread_goes_on() -> None:
    seen: list[list[int]] = []
    first = threading.Event()

    def run(batch: list[int]) -> None:
        seen.append(list(batch))
        if not first.is_set():
            first.set()
            raise RuntimeError("a bug in one batch")

    thread: BatchThread[int] = BatchThread("test-batch", run)
    thread.start()
    thread.submit(1)
    assert first.wait(10)
    thread.submit(2)
    thread.stop()
    assert [n for batch in seen for n in batch] == [1, 2]


def test_tick_runs_when_due_without_any_item() -> None:
    ticked = threading.Event()
    thread: BatchThread[int] = BatchThread("test-batch", lambda batch: None, due=lambda: 0.0 if not ticked.is_set()
                                           else None, tick=ticked.set)
    thread.start()
    assert ticked.wait(10)
    thread.stop()


def test_stop_before_start_and_twice_returns() -> None:
    thread: BatchThread[int] = BatchThread("test-batch", lambda batch: None)
    thread.stop()
    thread.start()
    thread.stop()
    thread.stop()
