"""The decision log on the real request path: durability policy, query API, shipping, verify."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.audit.verify import verify_files
from tests.functional.conftest import ADMIN, OWNER, Stack

StackFactory = Callable[..., Awaitable[Stack]]
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
AUDITOR = "audit-svc:service:auditor"

pytestmark = pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")


async def test_disk_full_denies_state_changes_by_default(stack_factory: StackFactory) -> None:
    stack = await stack_factory(audit={"path": "/dev/full"})
    sid = stack.nova.add_server()
    resp = await stack.action(sid, {"os-stop": None})
    assert resp.status == 503
    assert "decision log" in (await resp.json())["serviceUnavailable"]["message"]
    assert stack.nova.forwarded(sid) == []
    read = await stack.client.get(f"/v2.1/servers/{sid}", headers={"X-Auth-Token": OWNER})
    assert read.status == 200
    metrics = await (await stack.client.get("/metrics")).text()
    assert "statelock_audit_write_failures_total 1.0" in metrics


async def test_disk_full_with_continue_forwards_and_counts(stack_factory: StackFactory) -> None:
    stack = await stack_factory(audit={"path": "/dev/full", "on_failure": "continue"})
    sid = stack.nova.add_server()
    resp = await stack.action(sid, {"os-stop": None})
    assert resp.status == 202
    assert stack.nova.actions_for(sid) == ["os-stop"]
    metrics = await (await stack.client.get("/metrics")).text()
    assert "statelock_audit_write_failures_total" in metrics
    assert "statelock_audit_write_failures_total 0.0" not in metrics


async def test_decisions_api_filters_and_needs_a_role(stack: Stack) -> None:
    a = stack.nova.add_server()
    b = stack.nova.add_server()
    assert (await stack.action(a, {"lock": {"locked_reason": "r"}})).status == 202
    assert (await stack.action(a, {"suspend": None})).status == 409
    assert (await stack.action(b, {"suspend": None})).status == 202
    assert (await stack.action(b, {"changePassword": {"adminPass": "hunter2-secret"}},
                               token=ADMIN)).status == 202
    denied = await stack.client.get("/statelock/v1/decisions", headers={"X-Auth-Token": OWNER})
    assert denied.status == 403
    resp = await stack.client.get(f"/statelock/v1/decisions?instance={a}&outcome=deny",
                                  headers={"X-Auth-Token": AUDITOR})
    assert resp.status == 200
    [rec] = (await resp.json())["decisions"]
    assert rec["input"]["action"]["name"] == "suspend" and rec["statelock"]["outcome"] == "deny"
    resp = await stack.client.get("/statelock/v1/decisions?subject=admin",
                                  headers={"X-Auth-Token": AUDITOR})
    names = [r["input"]["action"]["name"] for r in (await resp.json())["decisions"]]
    assert names == ["changePassword"]
    bad = await stack.client.get("/statelock/v1/decisions?outcome=maybe",
                                 headers={"X-Auth-Token": AUDITOR})
    assert bad.status == 400
    assert "hunter2-secret" not in stack.audit_path.read_text()
    result = verify_files([stack.audit_path])
    assert result.ok and result.records >= 5


async def test_records_are_shipped_to_a_collector(
    stack_factory: StackFactory, aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    received: list[dict[str, Any]] = []
    failures = {"left": 2}

    async def collect(request: web.Request) -> web.Response:
        if failures["left"] > 0:
            failures["left"] -= 1
            return web.Response(status=503)
        assert request.headers["Content-Encoding"] == "gzip"
        data = await request.read()
        # NOTE: aiohttp's server already inflates a gzip Content-Encoding.
        received.extend(json.loads(gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data))
        return web.Response(status=200)

    collector = web.Application()
    collector.router.add_post("/logs", collect)
    server = await aiohttp_server(collector)
    stack = await stack_factory(audit={"shipping": {
        "url": str(server.make_url("/logs")), "spool_dir": str(tmp_path / "spool"),
        "linger_s": 0.05}})
    sid = stack.nova.add_server()
    for _ in range(5):
        assert (await stack.action(sid, {"os-stop": None})).status == 202
    for _ in range(100):
        local = stack.records()
        if len(received) >= len(local) >= 10:
            break
        await asyncio.sleep(0.1)
    assert sorted(r["seq"] for r in received) == [r["seq"] for r in stack.records()]
    assert {r["hash"] for r in received} == {r["hash"] for r in stack.records()}
    metrics = await (await stack.client.get("/metrics")).text()
    assert 'statelock_decision_log_shipping{counter="retried"}' in metrics
