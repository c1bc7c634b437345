"""Unit tests for sidecar.guard: InstanceGuard driven by asyncio events, and NoGuard."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field

import pytest

from sidecar.guard import ALL_INSTANCES, InstanceGuard, NoGuard

WAIT_S = 2.0


@dataclass
class Holder:
    """A task that takes the guard, says so, and leaves when told to."""

    name: str
    log: list[str]
    entered: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self, cm: AbstractAsyncContextManager[None]) -> Holder:
        self.task = asyncio.create_task(self._run(cm))
        return self

    async def _run(self, cm: AbstractAsyncContextManager[None]) -> None:
        async with cm:
            self.log.append(f"{self.name} in")
            self.entered.set()
            await self.release.wait()
            self.log.append(f"{self.name} out")

    async def wait_entered(self) -> None:
        async with asyncio.timeout(WAIT_S):
            await self.entered.wait()

    async def finish(self) -> None:
        self.release.set()
        assert self.task is not None
        async with asyncio.timeout(WAIT_S):
            await self.task


async def settle() -> None:
    """Give every runnable task many turns, so a task that could proceed has done so.

    Used only to assert that something has *not* happened; progress is always
    awaited on an event.
    """
    for _ in range(50):
        await asyncio.sleep(0)


@pytest.fixture
def guard() -> InstanceGuard:
    return InstanceGuard()


@pytest.fixture
async def log() -> AsyncIterator[list[str]]:
    yield []


async def test_shared_holders_run_concurrently(guard: InstanceGuard, log: list[str]) -> None:
    a = Holder("a", log).start(guard.shared("i1"))
    b = Holder("b", log).start(guard.shared("i1"))
    await a.wait_entered()
    await b.wait_entered()
    assert sorted(log) == ["a in", "b in"]
    assert len(guard) == 1
    await a.finish()
    await b.finish()
    assert len(guard) == 0


async def test_exclusive_waits_for_shared_holders_to_leave(guard: InstanceGuard, log: list[str]) -> None:
    r1 = Holder("r1", log).start(guard.shared("i1"))
    r2 = Holder("r2", log).start(guard.shared("i1"))
    await r1.wait_entered()
    await r2.wait_entered()
    w = Holder("w", log).start(guard.exclusive("i1"))
    await settle()
    assert not w.entered.is_set()
    await r1.finish()
    await settle()
    assert not w.entered.is_set()
    await r2.finish()
    await w.wait_entered()
    assert log.index("w in") > log.index("r2 out")
    await w.finish()
    assert len(guard) == 0


@pytest.mark.parametrize("mode", ["shared", "exclusive"])
async def test_an_exclusive_holder_keeps_out_every_other_holder(
    guard: InstanceGuard, log: list[str], mode: str
) -> None:
    w = Holder("w", log).start(guard.exclusive("i1"))
    await w.wait_entered()
    second = Holder(mode, log).start(guard.shared("i1") if mode == "shared" else guard.exclusive("i1"))
    await settle()
    assert not second.entered.is_set()
    await w.finish()
    await second.wait_entered()
    await second.finish()
    assert log == ["w in", "w out", f"{mode} in", f"{mode} out"]
    assert len(guard) == 0


async def writer_queued_behind_a_reader(guard: InstanceGuard, log: list[str]) -> tuple[Holder, Holder, Holder]:
    """r1 holds the guard shared, w waits for it exclusively, and r2 (shared) waits behind w."""
    r1 = Holder("r1", log).start(guard.shared("i1"))
    await r1.wait_entered()
    w = Holder("w", log).start(guard.exclusive("i1"))
    await settle()
    r2 = Holder("r2", log).start(guard.shared("i1"))
    await settle()
    assert not w.entered.is_set()
    assert not r2.entered.is_set(), "a new shared holder overtook a waiting exclusive one"
    return r1, w, r2


async def test_waiting_exclusive_blocks_new_shared_holders(guard: InstanceGuard, log: list[str]) -> None:
    r1, w, r2 = await writer_queued_behind_a_reader(guard, log)
    await r1.finish()
    await w.wait_entered()
    await settle()
    assert not r2.entered.is_set()
    await w.finish()
    await r2.wait_entered()
    await r2.finish()
    assert log == ["r1 in", "r1 out", "w in", "w out", "r2 in", "r2 out"]
    assert len(guard) == 0


async def test_cancelled_exclusive_waiter_lets_blocked_shared_holders_in(
    guard: InstanceGuard, log: list[str]
) -> None:
    r1, w, r2 = await writer_queued_behind_a_reader(guard, log)
    assert w.task is not None
    w.task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await w.task
    await r2.wait_entered()
    assert not w.entered.is_set()
    await r1.finish()
    await r2.finish()
    assert len(guard) == 0


async def test_different_keys_do_not_block_each_other(guard: InstanceGuard, log: list[str]) -> None:
    wa = Holder("wa", log).start(guard.exclusive("a"))
    await wa.wait_entered()
    rb = Holder("rb", log).start(guard.shared("b"))
    wc = Holder("wc", log).start(guard.exclusive("c"))
    await rb.wait_entered()
    await wc.wait_entered()
    assert len(guard) == 3
    for h in (wa, rb, wc):
        await h.finish()
    assert len(guard) == 0


async def test_all_instances_key_is_an_ordinary_key(guard: InstanceGuard, log: list[str]) -> None:
    w = Holder("w", log).start(guard.exclusive(ALL_INSTANCES))
    await w.wait_entered()
    r = Holder("r", log).start(guard.shared(ALL_INSTANCES))
    other = Holder("other", log).start(guard.shared("i1"))
    await other.wait_entered()
    await settle()
    assert not r.entered.is_set()
    await w.finish()
    await r.wait_entered()
    await r.finish()
    await other.finish()
    assert len(guard) == 0


@pytest.mark.parametrize("mode", ["shared", "exclusive"])
async def test_an_error_in_the_block_releases_the_guard(guard: InstanceGuard, mode: str) -> None:
    cm = guard.shared if mode == "shared" else guard.exclusive
    with pytest.raises(RuntimeError, match="boom"):
        async with cm("i1"):
            raise RuntimeError("boom")
    assert len(guard) == 0
    async with asyncio.timeout(WAIT_S), guard.exclusive("i1"):
        assert len(guard) == 1
    assert len(guard) == 0


async def test_many_mixed_holders_leave_no_entries(guard: InstanceGuard) -> None:
    active = {"readers": 0, "writers": 0}
    violations: list[str] = []

    async def reader() -> None:
        async with guard.shared("i1"):
            active["readers"] += 1
            if active["writers"]:
                violations.append("reader with writer")
            await asyncio.sleep(0)
            active["readers"] -= 1

    async def writer() -> None:
        async with guard.exclusive("i1"):
            active["writers"] += 1
            if active["readers"] or active["writers"] > 1:
                violations.append("writer not alone")
            await asyncio.sleep(0)
            active["writers"] -= 1

    async with asyncio.timeout(WAIT_S):
        await asyncio.gather(*(writer() if i % 5 == 0 else reader() for i in range(100)))
    assert violations == []
    assert len(guard) == 0


async def test_no_guard_lets_everyone_in_at_once(log: list[str]) -> None:
    guard = NoGuard()
    w = Holder("w", log).start(guard.exclusive("i1"))
    r = Holder("r", log).start(guard.shared("i1"))
    w2 = Holder("w2", log).start(guard.exclusive("i1"))
    for holder in (w, r, w2):
        await holder.wait_entered()
    assert sorted(log) == ["r in", "w in", "w2 in"]
    for holder in (w, r, w2):
        await holder.finish()
