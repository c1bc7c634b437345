"""``statelock serve`` with ``server.workers`` > 1: one supervisor, N worker processes on one port.

What the operator of a gunicorn-like server expects, and what this does:

* **Bind first.** The supervisor validates the config as ``serve`` does, then checks
  the port with a plain bind (a busy port, even one held by another Statelock's
  workers, is one line and exit 1, before anything was opened), then keeps a bound,
  non-listening SO_REUSEPORT socket for as long as it runs: connections never go to
  it, and no other program can take the port while a worker restarts.
* **Start.** Workers start one after the other (``statelock serve --worker K``, a
  fresh interpreter each), each once the one before listens: the first one migrates
  the lock table and makes the index, the others find them made. A worker that fails
  to start stops the whole start: the workers already up are drained, and the
  supervisor exits with the failed worker's status (1 or 2; its one line says why).
* **A worker dies.** It is logged (which worker, its pid, its exit status or signal)
  and started again at once; if that keeps happening (``RESTART_LIMIT`` deaths within
  ``RESTART_WINDOW_S``), the supervisor stops every worker and exits 1, as a crash
  loop must not be hidden. A restarted worker continues its own decision-log chain.
* **Stop.** SIGTERM or SIGINT is passed to every worker, which drains as one
  ``serve`` does (readiness 503 for ``shutdown_drain_s``, requests in flight
  finished within ``shutdown_timeout_s``, its log flushed). A worker that has not
  exited ``shutdown_drain_s + shutdown_timeout_s + STOP_GRACE_S`` later is killed.
  Exit 0 when every worker stopped cleanly, else 1.
* **The supervisor dies** (even by SIGKILL): each worker's lifeline pipe reads end of
  file, and the worker drains and stops on its own.

The workers share ``PROMETHEUS_MULTIPROC_DIR``, a directory made for this run and
removed at its end (``sidecar.metrics``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from sidecar.cli.listen import bind_socket
from sidecar.config import Config
from sidecar.errors import StartupError
from sidecar.metrics import MULTIPROC_ENV
from sidecar.preflight import check_offline

log = logging.getLogger("sidecar.supervisor")

RESTART_LIMIT = 5
RESTART_WINDOW_S = 60.0
STOP_GRACE_S = 10.0


def supervise(path: str, cfg: Config) -> int:
    """Run ``cfg.server.workers`` workers of the config at ``path`` until SIGTERM/SIGINT; the exit status."""
    check_offline(cfg)
    try:
        bind_socket(cfg, listen=False).close()
        hold = bind_socket(cfg, reuse_port=True, listen=False)
    except StartupError as exc:
        log.error("%s", exc.message)
        return 1
    metrics_dir = tempfile.mkdtemp(prefix="statelock-metrics-")
    try:
        return asyncio.run(Supervisor(path, cfg, metrics_dir).run())
    finally:
        hold.close()
        shutil.rmtree(metrics_dir, ignore_errors=True)


def describe_exit(code: int) -> str:
    """How a worker ended, in words: ``exit 1`` or ``killed by SIGKILL``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


@dataclass
class Worker:
    """One worker process and the supervisor's end of its lifeline."""

    index: int
    proc: asyncio.subprocess.Process
    lifeline: int
    exited: asyncio.Task[int] = field(init=False)

    def __post_init__(self) -> None:
        self.exited = asyncio.ensure_future(self.proc.wait())

    def close_lifeline(self) -> None:
        """Close the supervisor's end: the worker reads end of file and stops."""
        if self.lifeline >= 0:
            os.close(self.lifeline)
            self.lifeline = -1


class Supervisor:
    """Starts, watches, restarts and stops the workers (see the module docstring)."""

    def __init__(self, path: str, cfg: Config, metrics_dir: str) -> None:
        self.path = path
        self.cfg = cfg
        self.metrics_dir = metrics_dir
        self.workers: dict[int, Worker] = {}
        self.deaths: list[float] = []
        self._stop = asyncio.Event()
        self._why = ""

    def _on_signal(self, sig: signal.Signals) -> None:
        if not self._why:
            self._why = sig.name
        self._stop.set()

    async def run(self) -> int:
        """Start the workers, keep them running until a stop signal, then drain them; the exit status."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._on_signal, sig)
        count = self.cfg.server.workers
        log.info("statelock supervisor (pid %d): starting %d workers on %s", os.getpid(), count, self.cfg.listen)
        for index in range(1, count + 1):
            code = await self._start(index)
            if code is not None:
                await self._drain()
                return code if code in (1, 2) else 1
            if self._stop.is_set():
                return await self._drain()
        log.info("statelock supervisor: all %d workers listening on %s", count, self.cfg.listen)
        while not self._stop.is_set():
            stop = asyncio.ensure_future(self._stop.wait())
            done, _ = await asyncio.wait([stop, *(w.exited for w in self.workers.values())],
                                         return_when=asyncio.FIRST_COMPLETED)
            stop.cancel()
            for worker in [w for w in self.workers.values() if w.exited in done]:
                if self._stop.is_set():
                    break
                if not await self._restart(worker):
                    await self._drain()
                    return 1
        return await self._drain()

    async def _start(self, index: int) -> int | None:
        """Start worker ``index`` and wait until it listens: None, or its exit status if it ended first."""
        ready_r, ready_w = os.pipe()
        life_r, life_w = os.pipe()
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        try:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "sidecar", "--log-level", str(level), "serve", "--config", self.path,
                "--worker", str(index), "--ready-fd", str(ready_w), "--lifeline-fd", str(life_r),
                pass_fds=(ready_w, life_r), env={**os.environ, MULTIPROC_ENV: self.metrics_dir})
        finally:
            os.close(ready_w)
            os.close(life_r)
        worker = self.workers[index] = Worker(index, proc, life_w)
        ready = await _ready(ready_r, worker.exited)
        if ready:
            return None
        code = await worker.exited
        del self.workers[index]
        worker.close_lifeline()
        return code

    async def _restart(self, worker: Worker) -> bool:
        """Report a dead worker and start it again; False once it died too often (a crash loop)."""
        code = worker.exited.result()
        worker.close_lifeline()
        del self.workers[worker.index]
        now = time.monotonic()
        self.deaths = [t for t in self.deaths if now - t < RESTART_WINDOW_S] + [now]
        if len(self.deaths) >= RESTART_LIMIT:
            log.error("statelock supervisor: worker %d (pid %d) ended (%s): %d workers ended within %gs, "
                      "stopping every worker", worker.index, worker.proc.pid, describe_exit(code),
                      len(self.deaths), RESTART_WINDOW_S)
            return False
        log.error("statelock supervisor: worker %d (pid %d) ended (%s); starting it again", worker.index,
                  worker.proc.pid, describe_exit(code))
        _forget_pid(self.metrics_dir, worker.proc.pid)
        while not self._stop.is_set():
            failed = await self._start(worker.index)
            if failed is None:
                log.info("statelock supervisor: worker %d listening again (pid %d)", worker.index,
                         self.workers[worker.index].proc.pid)
                return True
            now = time.monotonic()
            self.deaths = [t for t in self.deaths if now - t < RESTART_WINDOW_S] + [now]
            if len(self.deaths) >= RESTART_LIMIT:
                log.error("statelock supervisor: worker %d could not start again (%s), stopping every worker",
                          worker.index, describe_exit(failed))
                return False
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), 1.0)
        return True

    async def _drain(self) -> int:
        """Pass the stop to every worker and wait for them; 0 when each stopped cleanly, else 1."""
        live = list(self.workers.values())
        if self._why:
            log.info("statelock supervisor: %s received: stopping %d workers", self._why, len(live))
        for worker in live:
            if worker.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.proc.send_signal(signal.SIGTERM)
        bound = self.cfg.shutdown_drain_s + self.cfg.shutdown_timeout_s + STOP_GRACE_S
        if live:
            _, late = await asyncio.wait([w.exited for w in live], timeout=bound)
            for worker in live:
                if worker.exited in late:
                    log.error("statelock supervisor: worker %d (pid %d) did not stop within %gs: killed",
                              worker.index, worker.proc.pid, bound)
                    with contextlib.suppress(ProcessLookupError):
                        worker.proc.kill()
            await asyncio.gather(*(w.exited for w in live))
        codes = {w.index: w.exited.result() for w in live}
        for worker in live:
            worker.close_lifeline()
        self.workers.clear()
        unclean = {i: describe_exit(c) for i, c in codes.items() if c != 0}
        if unclean:
            log.error("statelock supervisor stopped: workers not stopped cleanly: %s",
                      ", ".join(f"{i} ({why})" for i, why in sorted(unclean.items())))
            return 1
        log.info("statelock supervisor stopped: %d workers stopped cleanly", len(codes))
        return 0


async def _ready(ready_r: int, exited: asyncio.Task[int]) -> bool:
    """True once the worker wrote to its ready pipe; False if it closed it (or ended) first."""
    loop = asyncio.get_running_loop()
    said: asyncio.Future[bool] = loop.create_future()

    def readable() -> None:
        try:
            data = os.read(ready_r, 16)
        except OSError:
            data = b""
        if not said.done():
            said.set_result(bool(data))

    loop.add_reader(ready_r, readable)
    try:
        waits: list[asyncio.Future[Any]] = [said, exited]
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        loop.remove_reader(ready_r)
        os.close(ready_r)
    return said.done() and said.result() and not exited.done()


def _forget_pid(metrics_dir: str, pid: int) -> None:
    """Drop a dead worker's live gauges (its counters stay: they count what it did)."""
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(pid, metrics_dir)  # type: ignore[no-untyped-call]
