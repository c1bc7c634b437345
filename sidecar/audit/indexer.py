"""The decision index fed by a process of its own, so that indexing takes nothing from requests.

``IndexProcess`` (in ``statelock serve``) starts ``python -m sidecar.audit.indexer``
beside each worker. The child follows the worker's chain in its files
(``ChainFollower``: it catches up from the index's head, then reads what is appended)
and writes the rows, in the SQLite file beside the log (its own transactions and WAL
checkpoints) or in the lock store's PostgreSQL. Nothing of it runs in the server's
event loop: no row is made there, no insert, no checkpoint's fsync waited for
(measured with the feed in the loop: a state change's p99 added 3.8-17 ms; with the
index off, 1.4-2.4 ms).

The pipes: the child's standard input is its wake-up and its lifeline (a byte: read
now; end of file: the server is gone, write what is left and exit). Its standard output
says what it did, a JSON line each (a PostgreSQL URL, which may hold a password, is the
first line of its input, never an argument): ``{"ready": n}`` once it has caught up (n rows),
``{"error": "..."}`` when a step failed (it tries again every ``retry_s``), ``{"ok": true}``
after an error cleared, ``{"head": seq}`` at most every ``TELL_S`` while it adds rows.
The server waits for ``ready`` before it serves (an index that can't catch up is
unavailable, and decisions are read from the log files); a child that dies is started
again after ``retry_s``.

A reader of this replica's decisions calls ``flush`` first: it waits until the index's
head for this chain reaches the log's head as it was on disk when the read began, so a
decision just answered is on the next page.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sidecar.aio import cancel_and_wait
from sidecar.audit.index import DecisionIndex, IndexUnavailable
from sidecar.audit.index_feed import ChainFollower
from sidecar.audit.index_sqlite import SqliteIndex

log = logging.getLogger(__name__)

POLL_S = 0.1
"""How often the child looks for appended records when nobody wakes it."""
RETRY_S = 1.0
TELL_S = 0.5
"""How often at most the child tells the server how far it has indexed (``{"head": seq}``, for ``state``)."""


class IndexProcess:
    """The server's side of an indexer child for one chain (see the module docstring).

    ``index`` is the server's own connection to the same store, for reading; ``disk_seq`` the
    log's head on disk (``chain_state()["last_seq"]``).
    """

    def __init__(self, index: DecisionIndex, log_path: str | Path, replica: str, chain: str,
                 disk_seq: Callable[[], int], *, poll_s: float = POLL_S, retry_s: float = RETRY_S) -> None:
        self.index = index
        self.log_path = Path(log_path)
        self.replica = replica
        self.chain = chain
        self._disk_seq = disk_seq
        self._args, self._first_input = index.child_spec()
        self._poll_s = poll_s
        self._retry_s = retry_s
        self._proc: asyncio.subprocess.Process | None = None
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.caught_up = 0
        self.failures = 0
        self.restarts = 0
        self.last_error: str | None = None
        self.indexed_seq = 0

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "sidecar.audit.indexer", "--log", str(self.log_path),
                *self._args, "--replica", self.replica, "--chain", self.chain,
                "--poll-s", str(self._poll_s), "--retry-s", str(self._retry_s),
                "--log-level", logging.getLevelName(logging.getLogger().getEffectiveLevel())]

    async def start(self) -> None:
        """Start the child and wait until it has caught up; IndexUnavailable if it can't."""
        proc = await self._spawn()
        line = await proc.stdout.readline() if proc.stdout else b""
        said = _said(line)
        if "ready" not in said:
            await _stop(proc, 1.0)
            why = said.get("error") or f"the indexer exited with {proc.returncode} before it caught up"
            raise IndexUnavailable(f"decision index ({self.index.dialect}): {why}")
        self.caught_up = int(said["ready"])
        if self.caught_up:
            log.info("decision index: %d records of chain %s caught up from the log", self.caught_up, self.chain)
        self._task = asyncio.create_task(self._watch(proc), name="statelock-decision-indexer")

    async def _spawn(self) -> asyncio.subprocess.Process:
        try:
            proc = await asyncio.create_subprocess_exec(
                *self._argv(), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=None,
                start_new_session=True)
        except OSError as exc:
            raise IndexUnavailable(f"cannot start the decision indexer: {exc}") from exc
        if self._first_input and proc.stdin is not None:
            proc.stdin.write(self._first_input)
        self._proc = proc
        return proc

    async def _watch(self, proc: asyncio.subprocess.Process) -> None:
        """Read what the child says; when it dies, start another one after ``retry_s``."""
        while True:
            assert proc.stdout is not None
            async for line in proc.stdout:
                said = _said(line)
                if "error" in said:
                    self.failures += 1
                    self.last_error = str(said["error"])
                elif said.get("ok"):
                    self.last_error = None
                if isinstance(said.get("head"), int):
                    self.indexed_seq = max(self.indexed_seq, said["head"])
            code = await proc.wait()
            if self._closing:
                return
            self.restarts += 1
            self.last_error = f"the indexer exited with {code}; starting another"
            log.error("decision index: the indexer process exited with %s; starting another in %.1f s",
                      code, self._retry_s)
            proc = await self._respawn()

    async def _respawn(self) -> asyncio.subprocess.Process:
        """A new child, ``retry_s`` after the last one ended (and after each start that failed)."""
        while True:
            await asyncio.sleep(self._retry_s)
            try:
                return await self._spawn()
            except IndexUnavailable as exc:
                self.last_error = exc.message
                log.error("decision index: %s", exc.message)

    def _wake(self) -> None:
        proc = self._proc
        if proc is not None and proc.stdin is not None and proc.returncode is None:
            with contextlib.suppress(OSError, RuntimeError):
                proc.stdin.write(b".")

    async def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until the index holds this chain up to the log's head on disk; False past ``timeout_s``."""
        target = self._disk_seq()
        deadline = time.monotonic() + timeout_s
        woken = False
        while True:
            head = await self.index.head(self.replica, self.chain)
            self.indexed_seq = head.seq if head else 0
            if self.indexed_seq >= target:
                return True
            if not woken:
                self._wake()
                woken = True
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.005)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Let the child write what is left (end of its input) for up to ``timeout_s``, then stop it."""
        self._closing = True
        proc = self._proc
        if proc is not None:
            await _stop(proc, timeout_s)
        await cancel_and_wait(self._task)
        self._task = None

    def state(self) -> dict[str, Any]:
        """The indexer's state, for ``/health`` and the console."""
        proc = self._proc
        return {"backend": self.index.dialect, "replica": self.replica, "chain": self.chain,
                "process": proc.pid if proc is not None and proc.returncode is None else None,
                "pending": max(0, self._disk_seq() - self.indexed_seq), "failures": self.failures,
                "restarts": self.restarts, "caught_up_at_start": self.caught_up,
                "last_error": self.last_error}


def _said(line: bytes) -> dict[str, Any]:
    try:
        said = json.loads(line)
    except ValueError:
        return {}
    return said if isinstance(said, dict) else {}


async def _stop(proc: asyncio.subprocess.Process, timeout_s: float) -> None:
    if proc.returncode is None and proc.stdin is not None:
        with contextlib.suppress(OSError, RuntimeError):
            proc.stdin.close()
    try:
        await asyncio.wait_for(proc.wait(), timeout_s)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


# -- the child ----------------------------------------------------------------------------


def _say(**what: Any) -> None:
    sys.stdout.write(json.dumps(what) + "\n")
    sys.stdout.flush()


async def follow(follower: ChainFollower, poll_s: float, retry_s: float) -> None:
    """Step the follower until standard input ends; say ``ready`` after the first good step."""
    loop = asyncio.get_running_loop()
    wake, gone = asyncio.Event(), asyncio.Event()

    def on_input() -> None:
        try:
            data = os.read(0, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            loop.remove_reader(0)
            gone.set()
        wake.set()

    loop.add_reader(0, on_input)
    ready, error, told, told_seq = False, None, 0.0, None
    while True:
        last = gone.is_set()
        try:
            added = await follower.step()
        except IndexUnavailable as exc:
            if exc.message != error:
                log.error("decision index write failed (retrying; the chain keeps every record): %s", exc.message)
                _say(error=exc.message)
            error = exc.message
            if last:
                return
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(gone.wait(), retry_s)
            continue
        if not ready:
            _say(ready=added)
            ready = True
        elif error is not None:
            _say(ok=True)
        error = None
        now, head = time.monotonic(), follower.last_seq
        if head is not None and head != told_seq and (not added or now - told >= TELL_S):
            _say(head=head)  # NOTE: at most every TELL_S while rows come, and once they stop
            told, told_seq = now, head
        if last:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), poll_s)
        wake.clear()


def _first_line() -> str:
    """The first line of standard input, read a byte at a time (what follows is wake-ups, or its end)."""
    got = bytearray()
    while not got.endswith(b"\n"):
        byte = os.read(0, 1)
        if not byte:
            break
        got += byte
    return got.decode().strip()


async def _main(args: argparse.Namespace) -> int:
    index: DecisionIndex
    if args.index_url_on_stdin:
        from sidecar.audit.index_pg import PostgresIndex

        index = PostgresIndex(_first_line(), timeout_s=args.timeout_s, pool_size=1)
    else:
        index = SqliteIndex(args.index)
    try:
        await index.open()
    except IndexUnavailable as exc:
        _say(error=exc.message)
        return 1
    try:
        await follow(ChainFollower(index, args.log, args.replica, args.chain), args.poll_s, args.retry_s)
    finally:
        await index.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m sidecar.audit.indexer",
        description="Follow a decision log's chain into its SQLite decision index (started by statelock serve; "
                    "it exits when its standard input ends).")
    parser.add_argument("--log", required=True, help="the decision log's path (audit.path)")
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--index", help="a SQLite index file (audit.index_path)")
    where.add_argument("--index-url-on-stdin", action="store_true",
                       help="a PostgreSQL index: its URL is the first line of standard input (never an argument)")
    parser.add_argument("--timeout-s", type=float, default=5.0, help="PostgreSQL: connect and statement timeout")
    parser.add_argument("--replica", required=True, help="the replica name the rows carry")
    parser.add_argument("--chain", required=True, help="the chain name the rows carry (the log's resolved path)")
    parser.add_argument("--poll-s", type=float, default=POLL_S, help="seconds between looks when not woken")
    parser.add_argument("--retry-s", type=float, default=RETRY_S, help="seconds between tries after a fault")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                        help="what is logged to standard error (serve passes its own level)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s[indexer %(process)d]: %(message)s")
    return asyncio.run(_main(args))


if __name__ == "__main__":
    sys.exit(main())
