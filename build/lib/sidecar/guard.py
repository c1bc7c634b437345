"""The per-instance guard: shared for state changes, exclusive for lock changes.

Once an exclusive holder (a lock or unlock call) has finished, every state change
that starts afterwards reads the new lock table, and every state change that
started before has already been forwarded. Writers are preferred: a waiting
lock call blocks new shared holders, so a stream of actions cannot starve it.
Entries are dropped when no one holds or waits for them.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from typing import Protocol

# NOTE: project and host locks take this key exclusively and every state change takes it
# shared, so a scoped lock call orders against all in-flight state changes at once.
ALL_INSTANCES = "*"


class Guard(Protocol):
    """Reader/writer exclusion keyed by instance id (or ``ALL_INSTANCES``).

    Entering ``shared`` or ``exclusive`` may raise LockStoreError when the guard can't
    be had within its bound (then nothing was done: fail closed); leaving never raises.
    Each lock store supplies its own (``LockStore.guard``): ``InstanceGuard`` (SQLite,
    one process), ``PgAdvisoryGuard`` (PostgreSQL, replicas). ``NoGuard`` is for tests.
    """

    def shared(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold the guard shared (a state change) for the block."""
        ...

    def exclusive(self, key: str) -> AbstractAsyncContextManager[None]:
        """Hold the guard exclusively (placing or removing a lock) for the block."""
        ...


@dataclass
class _Entry:
    cond: asyncio.Condition = field(default_factory=asyncio.Condition)
    readers: int = 0
    writer: bool = False
    writers_waiting: int = 0
    users: int = 0


class InstanceGuard:
    """Reader/writer locks keyed by instance id, in one process."""

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def _enter(self, key: str) -> _Entry:
        entry = self._entries.get(key)
        if entry is None:
            entry = self._entries[key] = _Entry()
        entry.users += 1
        return entry

    def _leave(self, key: str, entry: _Entry) -> None:
        entry.users -= 1
        if entry.users == 0:
            self._entries.pop(key, None)

    @asynccontextmanager
    async def shared(self, key: str) -> AsyncIterator[None]:
        """Hold the guard shared (a state change) for the block."""
        entry = self._enter(key)
        try:
            async with entry.cond:
                await entry.cond.wait_for(lambda: not entry.writer and not entry.writers_waiting)
                entry.readers += 1
            try:
                yield
            finally:
                async with entry.cond:
                    entry.readers -= 1
                    if entry.readers == 0:
                        entry.cond.notify_all()
        finally:
            self._leave(key, entry)

    @asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """Hold the guard exclusively (placing or removing a lock) for the block."""
        entry = self._enter(key)
        try:
            async with entry.cond:
                entry.writers_waiting += 1
                try:
                    await entry.cond.wait_for(lambda: not entry.writer and entry.readers == 0)
                except BaseException:
                    # NOTE: a writer that gives up (cancelled) must wake the shared holders it held back.
                    entry.writers_waiting -= 1
                    entry.cond.notify_all()
                    raise
                entry.writers_waiting -= 1
                entry.writer = True
            try:
                yield
            finally:
                async with entry.cond:
                    entry.writer = False
                    entry.cond.notify_all()
        finally:
            self._leave(key, entry)

    def __len__(self) -> int:
        return len(self._entries)


class NoGuard:
    """No guard at all (``lockstore.guard: none``). UNSAFE: for tests only.

    Without it an action whose lock read came before a lock call can still reach the
    upstream after that call returned; the history test uses it to show that it
    detects exactly this.
    """

    @asynccontextmanager
    async def shared(self, key: str) -> AsyncIterator[None]:
        """Do nothing."""
        yield

    @asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """Do nothing."""
        yield
