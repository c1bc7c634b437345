"""Shipping decision records to an OPA-compatible decision-log service.

``DecisionShipper.submit(record)`` only queues the record (the request path never
waits on the collector). A background task cuts the queue into batches (at most
``max_batch_records`` records and ``max_batch_bytes`` of uncompressed JSON; a batch
is cut when full or ``linger_s`` after its first record) and spools each batch to
``spool_dir`` as the exact body it will send (``sidecar.audit.spool``: a gzip JSON
array in a file of its own, written to a temporary name, fsynced and renamed).

Batches are sent one at a time, oldest first, as OPA's upload API expects: ``POST
<url>`` with ``Content-Type: application/json`` and ``Content-Encoding: gzip``. A 2xx
answer acknowledges the batch, whose file is removed before the next send; any other
answer, a connection error or a timeout leaves it in place and it is sent again, the
same bytes, after an exponential backoff with jitter. So every record is delivered
at least once, and a collector that fails for a while and then recovers receives
each record exactly once (a duplicate needs an acknowledgement that was lost on the
way back, or a crash between the acknowledgement and the removal of the file).

A restart loses nothing that was spooled: ``start`` picks the spool files up again,
and ``close`` spools whatever is still queued before it returns. The spool is
bounded by ``max_spool_bytes`` (compressed) and the queue by ``max_pending`` records;
records that don't fit are dropped, counted in ``dropped`` and logged (they are still
in the local decision log). Counts: ``spooled``, ``shipped`` (acknowledged),
``retried`` (failed sends that will be sent again), ``dropped``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from sidecar.audit.spool import Spool, SpooledBatch, read_batch

log = logging.getLogger(__name__)

_DROP_LOG_INTERVAL_S = 1.0


class DecisionShipper:
    """Ships decision records to ``url`` through an on-disk spool (see the module docstring)."""

    def __init__(
        self,
        url: str,
        spool_dir: str | Path,
        *,
        max_batch_records: int = 500,
        max_batch_bytes: int = 1 << 20,
        max_spool_bytes: int = 64 << 20,
        max_pending: int = 10_000,
        linger_s: float = 1.0,
        backoff_min_s: float = 0.1,
        backoff_max_s: float = 60.0,
        timeout_s: float = 10.0,
        headers: Mapping[str, str] | None = None,
        fsync: bool = True,
    ) -> None:
        if max_batch_records < 1 or max_batch_bytes < 1 or max_spool_bytes < 1 or max_pending < 1:
            raise ValueError("shipping limits must be positive")
        if backoff_min_s <= 0 or backoff_max_s < backoff_min_s:
            raise ValueError("backoff: need 0 < backoff_min_s <= backoff_max_s")
        self.url = url
        self.spool_dir = Path(spool_dir)
        self._max_records = max_batch_records
        self._max_pending = max_pending
        self._linger = linger_s
        self._backoff_min = backoff_min_s
        self._backoff_max = backoff_max_s
        self._timeout = timeout_s
        self._headers = {**(headers or {}), "Content-Type": "application/json",
                         "Content-Encoding": "gzip"}
        self._pending: list[Mapping[str, Any]] = []
        self._first_pending_at = 0.0
        self._drop_lock = threading.Lock()
        self._spool = Spool(spool_dir, max_bytes=max_spool_bytes, max_batch_records=max_batch_records,
                            max_batch_bytes=max_batch_bytes, fsync=fsync, on_drop=self._drop)
        self._wakeup = asyncio.Event()
        self._session: aiohttp.ClientSession | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._closed = False
        self._random = random.Random()
        self._unlogged_drops = 0
        self._last_drop_log = 0.0
        self._last_why = ""
        self.shipped = 0
        self.retried = 0
        self.dropped = 0

    # -- public ---------------------------------------------------------------------------

    async def start(self) -> None:
        """Pick up the spool left by an earlier run and start shipping.

        Raises OSError if the spool directory can't be used, or is in use by another
        shipper (two shippers on one spool would send its batches twice).
        """
        await asyncio.to_thread(self._spool.open)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self._timeout))
        self._task = asyncio.create_task(self._run(), name="statelock-decision-shipper")

    def submit_all(self, records: Sequence[dict[str, Any]]) -> None:
        """``submit`` each record (the audit log's ``on_written`` hook)."""
        for record in records:
            self.submit(record)

    def submit(self, record: Mapping[str, Any]) -> None:
        """Queue a record for shipping; never blocks. A full queue or a closed shipper drops it (counted)."""
        if self._closed or self._stopping:
            self._drop(1, "the shipper is closed")
            return
        if len(self._pending) >= self._max_pending:
            self._drop(1, f"the queue holds {self._max_pending} records already")
            return
        if not self._pending:
            self._first_pending_at = time.monotonic()
        self._pending.append(record)
        if len(self._pending) == 1 or len(self._pending) >= self._max_records:
            self._wakeup.set()

    async def close(self, timeout_s: float = 5.0) -> None:
        """Ship what can be shipped within ``timeout_s``, spool the rest, and close.

        Nothing queued is lost: what was not acknowledged by the deadline stays in the
        spool for the next start.
        """
        if self._closed:
            return
        self._stopping = True
        self._wakeup.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), timeout_s)
            except TimeoutError:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            except Exception:  # NOTE: the loop's failure must not stop the spooling below.
                log.exception("decision shipper ended with an error")
        if self._pending:
            records, self._pending = self._pending, []
            await asyncio.to_thread(self._spool.persist, self._encode_now(records))
        if self._session is not None:
            await self._session.close()
            self._session = None
        self._spool.close()
        self._closed = True
        with self._drop_lock:
            self._log_drops(force=True)
        if self._spool.batches:
            log.info("decision shipper closed with %d records in %d batches left in %s",
                     self.backlog_records, len(self._spool.batches), self.spool_dir)

    @property
    def spooled(self) -> int:
        """Records written to the spool (held in memory when the disk refused them)."""
        return self._spool.spooled

    @property
    def backlog_records(self) -> int:
        """Records spooled but not yet acknowledged."""
        return self._spool.backlog_records

    def stats(self) -> dict[str, int]:
        """The counts, plus what is waiting (for metrics and health)."""
        return {"shipped": self.shipped, "retried": self.retried, "dropped": self.dropped,
                "spooled": self.spooled, "queued": len(self._pending),
                "backlog_records": self.backlog_records, "spool_bytes": self._spool.bytes}

    # -- the loop -------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                await self._ship()
                return
            except Exception:  # NOTE: a bug here must not end shipping for good; the spool keeps the records.
                log.exception("decision shipper failed; restarting in 1 s")
                await asyncio.sleep(1.0)

    async def _ship(self) -> None:
        attempt = 0
        next_send = 0.0
        while True:
            self._wakeup.clear()
            if self._pending and (self._stopping or len(self._pending) >= self._max_records
                                  or time.monotonic() - self._first_pending_at >= self._linger):
                await self._spool_pending()
            now = time.monotonic()
            batches = self._spool.batches
            if batches and now >= next_send:
                if await self._send(batches[0]):
                    attempt, next_send = 0, 0.0
                else:
                    attempt += 1
                    self.retried += 1
                    next_send = time.monotonic() + self._backoff(attempt)
                continue
            if self._stopping and not self._pending and not batches:
                return
            waits = []
            if batches:
                waits.append(next_send - now)
            if self._pending:
                waits.append(self._first_pending_at + self._linger - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wakeup.wait(), max(0.0, min(waits)) if waits else None)

    def _backoff(self, attempt: int) -> float:
        """Exponential backoff with jitter: a random delay in [d/2, d], d doubling up to the maximum."""
        ceiling = min(self._backoff_max, self._backoff_min * 2 ** min(attempt - 1, 30))
        return self._random.uniform(ceiling / 2, ceiling)

    async def _send(self, batch: SpooledBatch) -> bool:
        """POST one batch; True if it is done with (acknowledged, or unreadable and dropped)."""
        assert self._session is not None
        try:
            body = batch.body if batch.body is not None else await asyncio.to_thread(read_batch, batch)
        except OSError as exc:
            log.error("decision log batch %s can't be read (%s); its %d records are dropped",
                      batch.path, exc, batch.records)
            self._spool.forget(batch)
            self._drop(batch.records, "its spool file can't be read")
            return True
        try:
            async with self._session.post(self.url, data=body, headers=self._headers) as resp:
                if 200 <= resp.status < 300:
                    # NOTE: no await between the answer and the removal, so a batch that was
                    # acknowledged is never sent again (a cancel can't fall in between).
                    self._spool.acknowledged(batch)
                    self.shipped += batch.records
                    return True
                detail = (await resp.text(errors="replace"))[:200]
                log.warning("decision log upload of batch %d (%d records) answered %d %s; will retry",
                            batch.seq, batch.records, resp.status, detail)
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            log.warning("decision log upload of batch %d (%d records) failed: %s; will retry",
                        batch.seq, batch.records, exc or type(exc).__name__)
        return False

    # -- spooling -------------------------------------------------------------------------

    async def _spool_pending(self) -> None:
        records, self._pending = self._pending, []
        try:
            encoded: list[bytes] = []
            for i, record in enumerate(records):
                encoded.extend(self._encode_now([record]))
                if i % 200 == 199:
                    await asyncio.sleep(0)  # NOTE: keep the request path responsive on big batches.
        except asyncio.CancelledError:
            self._pending[:0] = records
            raise
        await asyncio.to_thread(self._spool.persist, encoded)

    def _encode_now(self, records: list[Mapping[str, Any]]) -> list[bytes]:
        out: list[bytes] = []
        for record in records:
            try:
                out.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode())
            except (TypeError, ValueError) as exc:
                log.error("decision record %s can't be encoded for shipping: %s",
                          record.get("decision_id"), exc)
                self._drop(1, "it can't be encoded as JSON")
        return out

    # -- drops ----------------------------------------------------------------------------

    def _drop(self, count: int, why: str) -> None:
        with self._drop_lock:
            self.dropped += count
            self._unlogged_drops += count
            self._last_why = why
            self._log_drops(force=False)

    def _log_drops(self, force: bool) -> None:
        now = time.monotonic()
        if self._unlogged_drops and (force or now - self._last_drop_log >= _DROP_LOG_INTERVAL_S):
            log.warning("decision shipper dropped %d record(s) (last because %s); %d dropped in all. "
                        "They are still in the local decision log.",
                        self._unlogged_drops, self._last_why, self.dropped)
            self._unlogged_drops = 0
            self._last_drop_log = now

