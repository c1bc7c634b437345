"""The replica's LISTEN task: lock-change notifications applied to its ``LockCache``.

On its own connection it LISTENs on the schema's channel, resets the cache to the
generation it reads once listening, then applies each notification in commit
order. Whatever stops it (a lost connection, a restarted server), the cache is
forgotten at once, so decisions read the table, and it reconnects with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sidecar.locks.pg_cache import LockCache
from sidecar.locks.pg_schema import CHANNEL
from sidecar.locks.pg_session import PgConnections

log = logging.getLogger(__name__)


class LockListener:
    """Keeps ``cache`` in step with the table while started (see the module docstring)."""

    def __init__(self, db: PgConnections, cache: LockCache) -> None:
        self._db = db
        self._cache = cache
        self.task: asyncio.Task[None] | None = None

    async def start(self, wait_s: float) -> None:
        """Start listening; wait up to ``wait_s`` for it to be in (decisions never wait for it)."""
        ready = asyncio.Event()
        self.task = asyncio.create_task(self._listen(ready), name="statelock-lock-listener")
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(wait_s):
                await ready.wait()

    async def stop(self) -> None:
        """Stop listening and forget the cache."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        self._cache.forget()

    async def _listen(self, ready: asyncio.Event) -> None:
        delay = 0.2
        while True:
            try:
                async with await self._db.connect() as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    cur = await conn.execute("SELECT value FROM lock_generation")
                    row = await cur.fetchone()
                    self._cache.reset(int(row[0]) if row else -1)
                    ready.set()
                    delay = 0.2
                    async for note in conn.notifies():
                        self._cache.apply(note.payload)
            except Exception as exc:  # NOTE: whatever stops it, the listener must come back.
                log.warning("lock change listener lost (%s); retrying in %.1fs", exc, delay)
            self._cache.forget()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
