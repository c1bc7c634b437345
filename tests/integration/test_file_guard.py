"""``FileGuard`` across real processes: exclusion, the gate that lets a lock call in, fail-closed waits.

Each "other worker" is a real Python process holding the guard file through its own
``FileGuard``; it takes what it is told, says ``held``, and lets go when a line
arrives on its stdin (or dies, when killed).
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from sidecar.errors import LockStoreError
from sidecar.guard import ALL_INSTANCES
from sidecar.locks.file_guard import FileGuard, guard_file
from tests.support.paths import ROOT

pytestmark = pytest.mark.integration

_HOLDER = """
import asyncio, sys
from sidecar.locks.file_guard import FileGuard

async def main(path, mode, key, timeout):
    guard = FileGuard(path, float(timeout))
    guard.open()
    try:
        async with (guard.exclusive(key) if mode == "exclusive" else guard.shared(key)):
            print("held", flush=True)
            await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    except Exception as exc:
        print(f"refused {exc}", flush=True)
        return
    print("released", flush=True)

asyncio.run(main(*sys.argv[1:]))
"""


class Holder:
    """Another process holding (or waiting for) the guard."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc

    async def said(self, timeout_s: float = 10.0) -> str:
        assert self.proc.stdout is not None
        return (await asyncio.wait_for(self.proc.stdout.readline(), timeout_s)).decode().strip()

    async def release(self) -> str:
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"go\n")
        await self.proc.stdin.drain()
        return await self.said()


@asynccontextmanager
async def holder(path: Path, mode: str, key: str, timeout_s: float = 5.0) -> AsyncIterator[Holder]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _HOLDER, str(path), mode, key, str(timeout_s), cwd=str(ROOT),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
    try:
        yield Holder(proc)
    finally:
        if proc.returncode is None:
            proc.kill()
        await proc.wait()


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return guard_file(tmp_path / "locks.db")


async def _refused(guard: FileGuard, mode: str, key: str) -> float:
    started = time.monotonic()
    with pytest.raises(LockStoreError, match=r"was not free within 0\.3s"):
        async with guard.exclusive(key) if mode == "exclusive" else guard.shared(key):
            pass
    return time.monotonic() - started


async def test_a_lock_change_in_another_process_keeps_state_changes_out_and_fails_them_closed(path: Path) -> None:
    guard = FileGuard(path, 0.3)
    guard.open()
    try:
        async with holder(path, "exclusive", "vm-1") as other:
            assert await other.said() == "held"
            for mode in ("shared", "exclusive"):
                assert 0.25 < await _refused(guard, mode, "vm-1") < 2.0
            async with guard.shared("vm-2"), guard.shared(ALL_INSTANCES):
                pass  # other keys are free
            assert await other.release() == "released"
        async with guard.exclusive("vm-1"):
            pass
    finally:
        guard.close()


async def test_state_changes_share_and_a_lock_call_waits_for_them_all(path: Path) -> None:
    guard = FileGuard(path, 0.3)
    guard.open()
    try:
        async with holder(path, "shared", "vm-1") as other:
            assert await other.said() == "held"
            async with guard.shared("vm-1"):
                pass
            await _refused(guard, "exclusive", "vm-1")
            assert await other.release() == "released"
        # Two tasks of this process share one record lock: it goes only when the last one leaves.
        first, second = asyncio.Event(), asyncio.Event()

        async def state_change(leave: asyncio.Event) -> None:
            async with guard.shared("vm-1"):
                await leave.wait()

        tasks = [asyncio.create_task(state_change(e)) for e in (first, second)]
        await asyncio.sleep(0.05)
        first.set()
        await tasks[0]
        async with holder(path, "exclusive", "vm-1", timeout_s=0.3) as lock_call:
            assert (await lock_call.said()).startswith("refused")
        second.set()
        await tasks[1]
        async with holder(path, "exclusive", "vm-1", timeout_s=0.3) as lock_call:
            assert await lock_call.said() == "held"
            assert await lock_call.release() == "released"
    finally:
        guard.close()


async def test_a_waiting_lock_call_holds_back_new_state_changes_of_every_process(path: Path) -> None:
    guard = FileGuard(path, 5.0)
    guard.open()
    try:
        async with holder(path, "shared", "vm-1") as inside:
            assert await inside.said() == "held"
            entered = asyncio.Event()

            async def lock_call() -> None:
                async with guard.exclusive("vm-1"):
                    entered.set()

            waiting = asyncio.create_task(lock_call())
            await asyncio.sleep(0.1)
            assert not entered.is_set()
            # A state change arriving now, in a third process, must wait behind the lock call.
            async with holder(path, "shared", "vm-1", timeout_s=0.3) as late:
                assert (await late.said()).startswith("refused")
            assert await inside.release() == "released"
            await asyncio.wait_for(waiting, 5)
            assert entered.is_set()
    finally:
        guard.close()


async def test_a_process_that_dies_holding_the_guard_frees_it(path: Path) -> None:
    guard = FileGuard(path, 2.0)
    guard.open()
    try:
        async with holder(path, "exclusive", ALL_INSTANCES) as other:
            assert await other.said() == "held"
            other.proc.kill()
            await other.proc.wait()
        async with guard.shared(ALL_INSTANCES):
            pass
    finally:
        guard.close()
