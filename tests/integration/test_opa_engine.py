"""``policy.engine: opa``: Statelock asking a real OPA server, and failing closed without it.

End to end: the real app in front of the in-process Nova-shaped upstream, deciding
through a real ``opa run --server`` loaded with ``policies/``. Fault cases (slow, no
result, errors, connection reuse, no retries) use a fake OPA that is a real aiohttp
application, so they can be timed and counted.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.config import PolicyConfig
from sidecar.errors import ConfigError, PolicyError
from sidecar.policy.opa import OpaEngine
from tests.functional.conftest import ADMIN, OWNER, Stack, make_config
from tests.support.fake_nova import FakeNova, build_app
from tests.support.opa_server import OpaServer
from tests.support.paths import POLICIES

pytestmark = pytest.mark.integration

AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
REVISION = json.loads((POLICIES / ".manifest").read_text())["revision"]
INPUT = {"now": "2026-11-25T01:00:00Z",
         "subject": {"user_id": "alice", "project_id": "demo", "roles": ["member"]},
         "action": {"name": "suspend", "kind": "state_change", "method": "POST",
                    "path": "/v2.1/servers/s-1/action", "params": {}},
         "target": {"instance_id": "s-1", "project_id": "demo", "host": None}, "locks": []}


@pytest.fixture
def opa(tmp_path: Path) -> Iterator[OpaServer]:
    """A real OPA for one test, which may stop and restart it."""
    server = OpaServer(POLICIES, log_path=tmp_path / "opa.log")
    server.start()
    yield server
    server.stop()


async def opa_stack(aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, tmp_path: Path,
                    opa_url: str, timeout_ms: int = 500) -> Stack:
    nova = FakeNova()
    upstream = await aiohttp_server(build_app(nova))
    cfg = make_config(tmp_path, str(upstream.make_url("")).rstrip("/"),
                      policy={"engine": "opa", "opa_url": opa_url, "timeout_ms": timeout_ms,
                              "bundle": str(POLICIES)})
    client = await aiohttp_client(create_app(cfg))
    return Stack(client, nova, tmp_path / "decisions.jsonl")


async def record_for(stack: Stack, decision_id: str, timeout_s: float = 5.0) -> dict[str, Any]:
    """The decision record of a request (denials are written shortly after the reply)."""
    deadline = time.monotonic() + timeout_s
    while True:
        found: list[dict[str, Any]] = []
        for line in stack.audit_path.read_text().splitlines():
            try:
                record: dict[str, Any] = json.loads(line)
            except ValueError:
                continue  # NOTE: a line still being written
            if record.get("decision_id") == decision_id and record.get("type") != "completion":
                found.append(record)
        if found:
            return found[0]
        assert time.monotonic() < deadline, f"no record for decision {decision_id}"
        await asyncio.sleep(0.02)


# --- end to end with a real OPA ---------------------------------------------------------------------

async def test_lock_then_denied_action_names_the_lock_and_records_opa_ids(
    aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, tmp_path: Path, opa: OpaServer
) -> None:
    stack = await opa_stack(aiohttp_server, aiohttp_client, tmp_path, opa.url)
    sid = stack.nova.add_server()

    locked = await stack.action(sid, {"lock": {"locked_reason": "billing: invoice 881 overdue"}})
    assert locked.status == 202, await locked.text()
    denied = await stack.action(sid, {"suspend": None})
    assert denied.status == 409
    message = (await denied.json())["conflictingRequest"]["message"]
    assert f"Instance {sid} is locked (state lock lk-" in message
    assert "billing: invoice 881 overdue" in message
    assert stack.nova.actions_for(sid) == []

    opa_ids = set()
    for resp, outcome in ((locked, "allow"), (denied, "deny")):
        record = await record_for(stack, resp.headers["X-Statelock-Decision-Id"])
        assert record["statelock"]["outcome"] == outcome
        assert record["bundles"]["statelock"]["revision"] == REVISION
        assert UUID.match(record["statelock"]["engine_decision_id"])
        opa_ids.add(record["statelock"]["engine_decision_id"])
    assert len(opa_ids) == 2
    # The ids are OPA's own: its decision log names them with the same input.
    logged = [json.loads(line) for line in opa.log_path.read_text().splitlines()
              if '"decision_id"' in line]
    assert opa_ids <= {e["decision_id"] for e in logged}

    health = await (await stack.client.get("/statelock/v1/health")).json()
    assert health["policy"]["engine"] == "opa"
    assert health["policy"]["ok"] is True
    assert health["policy"]["revision"] == REVISION


async def test_allowed_and_role_denied_requests_through_opa(
    aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, tmp_path: Path, opa: OpaServer
) -> None:
    stack = await opa_stack(aiohttp_server, aiohttp_client, tmp_path, opa.url)
    sid = stack.nova.add_server()
    resp = await stack.action(sid, {"suspend": None})
    assert resp.status == 202
    assert stack.nova.actions_for(sid) == ["suspend"]
    assert (await stack.action(sid, {"lock": None}, token=ADMIN)).status == 202
    refused = await stack.action(sid, {"unlock": None})
    assert refused.status == 403
    assert "(authority admin) can be removed only by: admin" in (await refused.json())["forbidden"]["message"]
    assert (await stack.action(sid, {"unlock": None}, token=ADMIN)).status == 202
    assert (await stack.action(sid, {"resume": None})).status == 202


@pytest.mark.parametrize("how", ["stop", "kill"])
async def test_opa_down_denies_state_changes_with_503_while_reads_pass(
    aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, tmp_path: Path, opa: OpaServer,
    how: str,
) -> None:
    stack = await opa_stack(aiohttp_server, aiohttp_client, tmp_path, opa.url)
    sid = stack.nova.add_server()
    assert (await stack.action(sid, {"suspend": None})).status == 202

    opa.stop() if how == "stop" else opa.kill()
    failed = await stack.action(sid, {"resume": None})
    assert failed.status == 503
    assert (await failed.json())["serviceUnavailable"]["code"] == 503
    assert stack.nova.actions_for(sid) == ["suspend"]
    record = await record_for(stack, failed.headers["X-Statelock-Decision-Id"])
    assert record["statelock"]["outcome"] == "error"
    assert record["statelock"]["error_code"] == "policy_error"
    assert (await stack.action(sid, {"lock": None})).status == 503
    read = await stack.client.get(f"/v2.1/servers/{sid}", headers={"X-Auth-Token": OWNER})
    assert read.status == 200
    assert (await read.json())["server"]["id"] == sid
    health = await stack.client.get("/statelock/v1/health")
    assert health.status == 503
    assert "OPA request failed" in (await health.json())["policy"]["last_error"]

    await asyncio.to_thread(opa.start)
    assert (await stack.action(sid, {"resume": None})).status == 202
    assert stack.nova.actions_for(sid) == ["suspend", "resume"]
    assert (await (await stack.client.get("/statelock/v1/health")).json())["policy"]["ok"] is True


async def test_statelock_starts_before_opa_and_fails_closed_until_it_answers(
    aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    opa = OpaServer(POLICIES, log_path=tmp_path / "opa.log")
    stack = await opa_stack(aiohttp_server, aiohttp_client, tmp_path, opa.url)
    sid = stack.nova.add_server()
    assert (await stack.action(sid, {"suspend": None})).status == 503
    unready = await stack.client.get("/statelock/v1/readyz")
    assert unready.status == 503
    assert (await unready.json())["policy"]["last_error"]
    await asyncio.to_thread(opa.start)
    try:
        # Readiness recovers through the background probe, before any request is sent.
        deadline = time.monotonic() + 5.0
        while (await stack.client.get("/statelock/v1/readyz")).status != 200:
            assert time.monotonic() < deadline, "readiness did not recover once OPA answered"
            await asyncio.sleep(0.1)
        health = await (await stack.client.get("/statelock/v1/health")).json()
        assert health["policy"]["revision"] == REVISION
        assert (await stack.action(sid, {"suspend": None})).status == 202
    finally:
        opa.stop()


# --- a fake OPA: a real aiohttp app whose answers the test chooses ----------------------------------------

@dataclass
class FakeOpa:
    """What the fake OPA answers and what it saw."""

    body: Any = field(default_factory=lambda: {
        "decision_id": "00000000-0000-4000-8000-000000000001",
        "provenance": {"version": "1.22.2", "bundles": {"statelock": {"revision": "rev-7"}}},
        "result": {"allow": True, "status": 200, "reasons": [], "lock_ids": [], "overrides": []}})
    status: int = 200
    health_status: int = 200
    delay_s: float = 0.0
    requests: list[tuple[str, Any]] = field(default_factory=list)
    peers: list[Any] = field(default_factory=list)

    def app(self) -> web.Application:
        async def data(request: web.Request) -> web.Response:
            self.requests.append((request.path_qs, await request.json()))
            self.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
            if self.delay_s:
                await asyncio.sleep(self.delay_s)
            return web.json_response(self.body, status=self.status)

        async def health(request: web.Request) -> web.Response:
            return web.json_response({}, status=self.health_status)

        app = web.Application()
        app.router.add_post("/v1/data/{path:.*}", data)
        app.router.add_get("/health", health)
        return app


@pytest.fixture
async def fake_opa(aiohttp_server: AiohttpServer) -> AsyncIterator[tuple[FakeOpa, str]]:
    fake = FakeOpa()
    server = await aiohttp_server(fake.app())
    yield fake, str(server.make_url("")).rstrip("/")


@pytest.fixture
async def engine_for() -> AsyncIterator[Callable[..., Awaitable[OpaEngine]]]:
    engines: list[OpaEngine] = []

    async def make(url: str, timeout_ms: int = 500) -> OpaEngine:
        engine = OpaEngine(PolicyConfig(engine="opa", opa_url=url, timeout_ms=timeout_ms))
        await engine.start()
        engines.append(engine)
        return engine

    yield make
    for engine in engines:
        await engine.close()


EngineFor = Callable[..., Awaitable[OpaEngine]]


async def test_decision_carries_opa_decision_id_and_bundle_revision(
    fake_opa: tuple[FakeOpa, str], engine_for: EngineFor
) -> None:
    fake, url = fake_opa
    engine = await engine_for(url)
    decision = await engine.decide(INPUT)
    assert decision.allow is True
    assert decision.engine_decision_id == "00000000-0000-4000-8000-000000000001"
    assert decision.revision == "rev-7" == engine.revision
    path, body = fake.requests[-1]
    assert path == "/v1/data/statelock/authz/decision?provenance=true"
    assert body == {"input": INPUT}


async def test_one_keep_alive_connection_serves_every_decision(
    fake_opa: tuple[FakeOpa, str], engine_for: EngineFor
) -> None:
    fake, url = fake_opa
    engine = await engine_for(url)
    before = len(fake.peers)
    for _ in range(20):
        await engine.decide(INPUT)
    assert len(set(fake.peers[before:])) == 1


@pytest.mark.parametrize("timeout_ms", [100, 300])
async def test_slow_opa_fails_closed_at_the_timeout(
    fake_opa: tuple[FakeOpa, str], engine_for: EngineFor, timeout_ms: int
) -> None:
    fake, url = fake_opa
    engine = await engine_for(url, timeout_ms=timeout_ms)
    fake.delay_s = 2.0
    started = time.monotonic()
    with pytest.raises(PolicyError, match=f"did not answer within {timeout_ms} ms"):
        await engine.decide(INPUT)
    elapsed = time.monotonic() - started
    assert timeout_ms / 1000 <= elapsed < timeout_ms / 1000 + 0.5
    assert engine.health()["ok"] is False
    fake.delay_s = 0.0
    assert (await engine.decide(INPUT)).allow is True
    assert engine.health()["ok"] is True


@pytest.mark.parametrize(("status", "body", "error"), [
    (200, {"decision_id": "d-1"}, "undefined"),
    (200, {"result": None}, "undefined"),
    (200, {"result": "yes"}, "not an object"),
    (200, {"result": {"allow": "true"}}, "no boolean 'allow'"),
    (200, ["not", "an", "object"], "something other than a JSON object"),
    (500, {"code": "internal_error", "message": "eval_conflict_error"}, "OPA answered 500"),
    (502, {}, "OPA answered 502"),
    (404, {"code": "resource_not_found"}, "OPA answered 404"),
])
async def test_unusable_answers_fail_closed_without_retry(
    fake_opa: tuple[FakeOpa, str], engine_for: EngineFor, status: int, body: Any, error: str
) -> None:
    fake, url = fake_opa
    engine = await engine_for(url)
    fake.status, fake.body = status, body
    before = len(fake.requests)
    with pytest.raises(PolicyError, match=error):
        await engine.decide(INPUT)
    assert len(fake.requests) == before + 1
    assert engine.health()["last_error"]


async def test_unreachable_opa_fails_closed_fast(engine_for: EngineFor) -> None:
    from tests.support.process import free_port

    engine = await engine_for(f"http://127.0.0.1:{free_port()}", timeout_ms=1000)
    assert engine.health()["ok"] is False
    started = time.monotonic()
    with pytest.raises(PolicyError, match="OPA request failed"):
        await engine.decide(INPUT)
    assert time.monotonic() - started < 0.5


async def test_slow_opa_gives_503_end_to_end_and_reads_still_pass(
    aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, tmp_path: Path,
    fake_opa: tuple[FakeOpa, str],
) -> None:
    fake, url = fake_opa
    stack = await opa_stack(aiohttp_server, aiohttp_client, tmp_path, url, timeout_ms=150)
    sid = stack.nova.add_server()
    fake.delay_s = 2.0
    started = time.monotonic()
    resp = await stack.action(sid, {"suspend": None})
    assert resp.status == 503
    assert time.monotonic() - started < 1.0
    assert stack.nova.actions_for(sid) == []
    record = await record_for(stack, resp.headers["X-Statelock-Decision-Id"])
    assert "did not answer within 150 ms" in record["error"]["message"]
    read = await stack.client.get(f"/v2.1/servers/{sid}", headers={"X-Auth-Token": OWNER})
    assert read.status == 200


@pytest.mark.parametrize("url", ["ftp://opa:8181", "http://", "http://opa:8181/v1/data", "http://opa:99999"])
def test_unusable_opa_url_is_a_config_error(url: str) -> None:
    with pytest.raises(ConfigError, match=r"policy\.opa_url"):
        OpaEngine(PolicyConfig(engine="opa", opa_url=url))


async def test_probe_notices_opa_going_away_without_traffic(fake_opa: tuple[FakeOpa, str]) -> None:
    fake, url = fake_opa
    engine = OpaEngine(PolicyConfig(engine="opa", opa_url=url), probe_interval_s=0.05)
    await engine.start()
    try:
        assert engine.health()["ok"] is True and engine.revision == "rev-7"
        decisions = len(fake.requests)
        await asyncio.sleep(0.3)
        assert len(fake.requests) == decisions, "a healthy OPA is probed with GET /health, not decisions"
        fake.health_status = 500
        await asyncio.sleep(0.3)
        assert engine.health()["ok"] is False
        assert "not healthy" in engine.health()["last_error"]
        fake.health_status = 200
        await asyncio.sleep(0.3)
        assert engine.health()["ok"] is True
    finally:
        await engine.close()
