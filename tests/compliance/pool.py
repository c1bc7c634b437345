"""Judging many compliance cases on a few worker processes, each case under a deadline.

Each worker is a spawned process that judges one case at a time (``verdict.judge``)
and keeps its wasmtime Engine for all of them. A worker that gives no verdict
within ``timeout_s`` is killed and replaced, and its case is WRONG with that
reason; so is the case of a worker that dies. Verdicts come back in case order.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess

from tests.compliance.cases import Case
from tests.compliance.verdict import Verdict, judge

__all__ = ["WORKERS", "judge_all"]

WORKERS = 2
CASE_TIMEOUT_S = 60.0
STARTUP_TIMEOUT_S = 120.0
_READY = "ready"


Judge = Callable[[Case, float], Verdict]


def _serve(conn: Connection, judge_fn: Judge, timeout_s: float) -> None:
    """A worker's loop: "ready" out once, then a case in and its verdict out, until None comes in."""
    conn.send(_READY)
    while True:
        case = conn.recv()
        if case is None:
            return
        started = time.perf_counter()
        verdict = judge_fn(case, timeout_s)
        conn.send(replace(verdict, seconds=time.perf_counter() - started))


class _Worker:
    """One spawned worker; ``index`` is the case it has (-1: none), ``deadline`` when it must answer."""

    def __init__(self, judge_fn: Judge, timeout_s: float) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.conn, child = ctx.Pipe()
        self.judge_fn, self.timeout_s = judge_fn, timeout_s
        self.proc: BaseProcess = ctx.Process(target=_serve, args=(child, judge_fn, timeout_s), daemon=True)
        self.proc.start()
        child.close()
        self.ready = False
        self.index = -1
        self.deadline = time.monotonic() + STARTUP_TIMEOUT_S

    def give(self, index: int, case: Case, timeout_s: float) -> None:
        self.index, self.deadline = index, time.monotonic() + timeout_s
        self.conn.send(case)

    def stop(self, kill: bool = False) -> None:
        if not kill:
            with contextlib.suppress(OSError):
                self.conn.send(None)
            self.proc.join(timeout=10)
        if self.proc.is_alive():
            self.proc.kill()
        self.proc.join()
        self.conn.close()

    def respawn(self) -> _Worker:
        self.stop(kill=True)
        return _Worker(self.judge_fn, self.timeout_s)


def judge_all(cases: Sequence[Case], workers: int = WORKERS, timeout_s: float = CASE_TIMEOUT_S,
              progress: Callable[[int, int], None] | None = None, judge_fn: Judge = judge) -> list[Verdict]:
    """The verdict of every case, judged on ``workers`` processes (see module docstring).

    ``judge_fn`` must be a module-level function (it is sent to spawned workers).
    Raises RuntimeError when a worker can't even start.
    """
    results: list[Verdict | None] = [None] * len(cases)
    pending = list(range(len(cases)))[::-1]
    # NOTE: the worker's own compile deadline is a little shorter, so a slow opa build is
    # reported with OPA's reason rather than as a kill.
    inner = max(timeout_s - 5.0, timeout_s / 2)
    pool = [_Worker(judge_fn, inner) for _ in range(min(workers, len(cases)))]
    done = 0
    try:
        while done < len(cases):
            for worker in pool:
                if worker.ready and worker.index < 0 and pending:
                    i = pending.pop()
                    worker.give(i, cases[i], timeout_s)
            live = [w for w in pool if not w.ready or w.index >= 0]
            ready = wait([w.conn for w in live], timeout=max(0.0, min(w.deadline for w in live) - time.monotonic()))
            for n, worker in enumerate(pool):
                failure = ""
                if worker.conn in ready:
                    try:
                        message = worker.conn.recv()
                    except (EOFError, OSError):
                        failure = "the worker process died on this case"
                    else:
                        if message == _READY:
                            worker.ready = True
                            continue
                        results[worker.index] = message
                elif worker in live and worker.deadline <= time.monotonic():
                    failure = f"no answer within {timeout_s:g} s"
                else:
                    continue
                if not worker.ready:
                    raise RuntimeError(f"a compliance worker did not start ({failure or 'no ready message'})")
                if failure:
                    results[worker.index] = Verdict(cases[worker.index].case_id, cases[worker.index].note,
                                                    "wrong", failure)
                    pool[n] = worker.respawn()
                else:
                    worker.index = -1
                done += 1
                if progress is not None:
                    progress(done, len(cases))
    finally:
        for worker in pool:
            worker.stop()
    return [r for r in results if r is not None]
