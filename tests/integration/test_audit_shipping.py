"""Shipping to an OPA-compatible decision-log collector: a real in-process aiohttp app.

The collector takes POSTs of gzip JSON arrays (it reads the raw body and decodes it
itself), fails the first N with 500/503 and then accepts, and dedups nothing: every
record it acknowledged is in ``delivered`` as many times as it was sent.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import logging
import os
import socket
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.audit.shipping import DecisionShipper

AiohttpServer = Callable[..., Awaitable[TestServer]]


@dataclass
class Collector:
    """A decision-log service that fails its first ``fail_first`` posts."""

    fail_first: int = 0
    posts: int = 0
    failed: int = 0
    delivered: list[dict[str, Any]] = field(default_factory=list)
    batch_sizes: list[int] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)

    async def logs(self, request: web.Request) -> web.Response:
        self.posts += 1
        self.headers.append(dict(request.headers))
        raw = await request.read()
        if self.posts <= self.fail_first:
            self.failed += 1
            return web.Response(status=500 if self.posts % 2 else 503, text="collector unavailable")
        events = json.loads(gzip.decompress(raw))
        assert isinstance(events, list)
        self.delivered.extend(events)
        self.batch_sizes.append(len(events))
        return web.Response(status=200)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/logs", self.logs)
        return app

    def ids(self) -> list[str]:
        return [e["decision_id"] for e in self.delivered]


async def _serve(aiohttp_server: AiohttpServer, collector: Collector, port: int | None = None) -> str:
    # NOTE: auto_decompress=False hands the handler the bytes as sent, so the test sees the gzip.
    server = await aiohttp_server(collector.app(), port=port, auto_decompress=False)
    return str(server.make_url("/logs"))


def _shipper(url: str, spool: Path, *, linger_s: float = 0.01, max_batch_records: int = 500,
             max_spool_bytes: int = 64 << 20, max_pending: int = 10_000) -> DecisionShipper:
    """A shipper with short waits, so a test of many retries takes a moment."""
    return DecisionShipper(url, spool, max_batch_records=max_batch_records, max_spool_bytes=max_spool_bytes,
                           max_pending=max_pending, linger_s=linger_s, backoff_min_s=0.005, backoff_max_s=0.05,
                           timeout_s=2.0, fsync=False)


def _record(i: int) -> dict[str, Any]:
    return {"decision_id": f"d-{i:05d}", "timestamp": "2026-11-25T01:00:00Z", "path": "statelock/authz/decision",
            "input": {"subject": {"user_id": f"user-{i}"}, "noise": os.urandom(24).hex()},
            "result": {"allow": i % 3 != 0}, "statelock": {"outcome": "allow" if i % 3 else "deny"}}


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("timed out waiting for the shipper")
        await asyncio.sleep(0.01)


def _spool_files(spool: Path) -> list[Path]:
    return sorted(spool.glob("*.json.gz"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_collector_fails_then_recovers_no_loss_no_duplicates(
    aiohttp_server: AiohttpServer, tmp_path: Path,
) -> None:
    collector = Collector(fail_first=6)
    url = await _serve(aiohttp_server, collector)
    shipper = _shipper(url, tmp_path / "spool", max_batch_records=20)
    await shipper.start()
    submitted = [f"d-{i:05d}" for i in range(150)]
    for i in range(150):
        shipper.submit(_record(i))
        if i % 25 == 24:
            await asyncio.sleep(0.02)

    await _until(lambda: shipper.shipped == 150)
    await shipper.close()

    assert collector.ids() == submitted
    assert not [k for k, n in Counter(collector.ids()).items() if n > 1]
    assert collector.failed == 6
    assert shipper.retried == 6
    assert (shipper.shipped, shipper.spooled, shipper.dropped) == (150, 150, 0)
    assert max(collector.batch_sizes) <= 20
    assert _spool_files(tmp_path / "spool") == []
    for headers in collector.headers:
        assert headers["Content-Type"] == "application/json"
        assert headers["Content-Encoding"] == "gzip"


async def test_connection_errors_are_retried_until_the_collector_is_up(
    aiohttp_server: AiohttpServer, tmp_path: Path,
) -> None:
    port = _free_port()
    collector = Collector()
    shipper = _shipper(f"http://127.0.0.1:{port}/logs", tmp_path / "spool", max_batch_records=10)
    await shipper.start()
    for i in range(35):
        shipper.submit(_record(i))
    await _until(lambda: shipper.retried >= 3)
    assert shipper.shipped == 0
    assert sum(int(p.name.split("-")[1].split(".")[0]) for p in _spool_files(tmp_path / "spool")) == 35

    await _serve(aiohttp_server, collector, port=port)
    await _until(lambda: shipper.shipped == 35)
    await shipper.close()

    assert collector.ids() == [f"d-{i:05d}" for i in range(35)]
    assert shipper.dropped == 0


async def test_a_new_instance_delivers_what_an_earlier_one_spooled(
    aiohttp_server: AiohttpServer, tmp_path: Path,
) -> None:
    down = Collector(fail_first=10**9)
    spool = tmp_path / "spool"
    first = _shipper(await _serve(aiohttp_server, down), spool, max_batch_records=8, linger_s=60.0)
    await first.start()
    for i in range(30):
        first.submit(_record(i))
    await _until(lambda: first.retried >= 2)
    await first.close(timeout_s=0.2)

    assert (first.shipped, first.spooled, first.dropped) == (0, 30, 0)
    assert down.delivered == []
    files = _spool_files(spool)
    assert sum(int(p.name.split("-")[1].split(".")[0]) for p in files) == 30

    up = Collector()
    second = _shipper(await _serve(aiohttp_server, up), spool, max_batch_records=8)
    await second.start()
    assert second.backlog_records == 30
    await _until(lambda: second.shipped == 30)
    await second.close()

    assert up.ids() == [f"d-{i:05d}" for i in range(30)]
    assert second.spooled == 0 and second.dropped == 0
    assert _spool_files(spool) == []


async def test_close_spools_what_is_still_queued(aiohttp_server: AiohttpServer, tmp_path: Path) -> None:
    down = Collector(fail_first=10**9)
    spool = tmp_path / "spool"
    shipper = _shipper(await _serve(aiohttp_server, down), spool, linger_s=60.0)
    await shipper.start()
    for i in range(5):
        shipper.submit(_record(i))
    assert _spool_files(spool) == []
    await shipper.close(timeout_s=0.1)
    assert shipper.spooled == 5
    body = gzip.decompress(b"".join(p.read_bytes() for p in _spool_files(spool)))
    assert [e["decision_id"] for e in json.loads(body)] == [f"d-{i:05d}" for i in range(5)]


async def test_a_full_spool_drops_counts_and_logs(
    aiohttp_server: AiohttpServer, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    down = Collector(fail_first=10**9)
    spool = tmp_path / "spool"
    limit = 2500
    shipper = _shipper(await _serve(aiohttp_server, down), spool, max_batch_records=10, max_spool_bytes=limit)
    await shipper.start()
    with caplog.at_level(logging.WARNING, logger="sidecar.audit.shipping"):
        for i in range(100):
            shipper.submit(_record(i))
            if i % 10 == 9:
                await asyncio.sleep(0.02)
        await _until(lambda: shipper.spooled + shipper.dropped == 100)
        await shipper.close(timeout_s=0.1)

    assert shipper.dropped > 0 and shipper.spooled > 0
    assert shipper.shipped == 0
    assert sum(p.stat().st_size for p in _spool_files(spool)) <= limit
    assert any("dropped" in r.getMessage() and "spool is full" in r.getMessage() for r in caplog.records)

    up = Collector()
    again = _shipper(await _serve(aiohttp_server, up), spool)
    await again.start()
    await _until(lambda: again.backlog_records == 0)
    await again.close()
    assert len(up.delivered) == shipper.spooled
    assert len(set(up.ids())) == shipper.spooled


async def test_a_full_queue_and_a_closed_shipper_drop_and_count(
    tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    shipper = _shipper("http://127.0.0.1:9/logs", tmp_path / "spool", max_pending=5)
    with caplog.at_level(logging.WARNING, logger="sidecar.audit.shipping"):
        for i in range(7):
            shipper.submit(_record(i))
        assert shipper.dropped == 2
        await shipper.close(timeout_s=0.1)
        shipper.submit(_record(8))
    assert shipper.dropped == 3
    assert shipper.spooled == 5
    assert any("dropped" in r.getMessage() for r in caplog.records)


async def test_a_record_that_is_not_json_is_dropped_not_fatal(
    aiohttp_server: AiohttpServer, tmp_path: Path,
) -> None:
    collector = Collector()
    shipper = _shipper(await _serve(aiohttp_server, collector), tmp_path / "spool")
    await shipper.start()
    shipper.submit(_record(1))
    shipper.submit({"decision_id": "bad", "input": {1, 2}})
    shipper.submit(_record(2))
    await _until(lambda: shipper.shipped == 2)
    await shipper.close()
    assert collector.ids() == ["d-00001", "d-00002"]
    assert shipper.dropped == 1


async def test_two_shippers_can_not_share_a_spool(aiohttp_server: AiohttpServer, tmp_path: Path) -> None:
    url = await _serve(aiohttp_server, Collector())
    first = _shipper(url, tmp_path / "spool")
    await first.start()
    second = _shipper(url, tmp_path / "spool")
    with pytest.raises(OSError, match="in use by another shipper"):
        await second.start()
    await first.close()
    await second.start()
    await second.close()
