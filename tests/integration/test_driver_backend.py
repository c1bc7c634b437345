"""The driver backend on real libvirt (``test:///default`` through libvirt-python).

Statelock itself serves Nova's server API for the hypervisor's domains, through
the same classification, policy, guard and audit path as the upstream backend.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import libvirt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from sidecar.app import create_app
from sidecar.appkeys import BACKEND
from sidecar.backends.driver import DriverBackend
from sidecar.config import config_from_mapping
from tests.support.paths import POLICIES

pytestmark = pytest.mark.integration
AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
OWNER = {"X-Auth-Token": "alice:demo", "OpenStack-API-Version": "compute 2.73"}
BILLING = {"X-Auth-Token": "billing-svc:service:billing"}


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    cfg = config_from_mapping({
        "backend": {"kind": "driver", "driver": {
            "name": "libvirt", "uri": "test:///default",
            "default_owner": {"project_id": "demo", "user_id": "alice"}}},
        "lockstore": {"url": f"sqlite:///{tmp_path}/locks.db"},
        "policy": {"bundle": str(POLICIES)},
        "audit": {"path": str(tmp_path / "decisions.jsonl")},
    }, env={})
    yield await aiohttp_client(create_app(cfg))
    gc.collect()  # NOTE: test:///default keeps its state while any connection object lives


async def _server(client: TestClient[Any, Any]) -> dict[str, Any]:
    resp = await client.get("/v2.1/servers/detail", headers=OWNER)
    assert resp.status == 200
    [server] = (await resp.json())["servers"]
    return dict(server)


def _domain(client: TestClient[Any, Any], name: str = "test") -> Any:
    backend = client.app[BACKEND]
    assert isinstance(backend, DriverBackend)
    conn = backend.driver._connection()  # type: ignore[attr-defined]
    return conn.lookupByName(name)


async def test_detail_lists_the_test_domain(client: TestClient[Any, Any]) -> None:
    server = await _server(client)
    assert server["name"] == "test" and server["status"] == "ACTIVE"
    assert server["tenant_id"] == "demo" and server["locked"] is False
    other = await client.get("/v2.1/servers/detail", headers={"X-Auth-Token": "bob:other"})
    assert (await other.json())["servers"] == []
    hidden = await client.get(f"/v2.1/servers/{server['id']}", headers={"X-Auth-Token": "bob:other"})
    assert hidden.status == 404


async def test_suspend_lock_managed_saves_and_unlock_resume_restores(
    client: TestClient[Any, Any],
) -> None:
    sid = (await _server(client))["id"]
    resp = await client.post(f"/statelock/v1/instances/{sid}/suspend-lock",
                             json={"reason": "billing: invoice 881"}, headers=BILLING)
    assert resp.status == 200, await resp.text()
    dom = _domain(client)
    assert dom.hasManagedSaveImage(0) == 1
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    server = await _server(client)
    assert server["status"] == "SUSPENDED" and server["locked"] is True
    assert server["locked_reason"] == "billing: invoice 881"
    assert server["statelock:boot_blocked"] is True

    for action in ({"resume": None}, {"os-start": None}, {"reboot": {"type": "HARD"}}):
        denied = await client.post(f"/v2.1/servers/{sid}/action", json=action, headers=OWNER)
        assert denied.status == 409, action
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF

    resp = await client.post(f"/statelock/v1/instances/{sid}/unlock-resume", json={},
                             headers=BILLING)
    assert resp.status == 200, await resp.text()
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert dom.hasManagedSaveImage(0) == 0
    server = await _server(client)
    assert server["status"] == "ACTIVE" and server["locked"] is False


async def test_owner_actions_reach_libvirt_when_unlocked(client: TestClient[Any, Any]) -> None:
    sid = (await _server(client))["id"]
    dom = _domain(client)
    assert (await client.post(f"/v2.1/servers/{sid}/action", json={"pause": None},
                              headers=OWNER)).status == 202
    assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    assert (await client.post(f"/v2.1/servers/{sid}/action", json={"lock": None},
                              headers=OWNER)).status == 202
    denied = await client.post(f"/v2.1/servers/{sid}/action", json={"unpause": None},
                               headers=OWNER)
    assert denied.status == 409
    assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    # an invalid transition is the hypervisor's 409, not a crash
    assert (await client.post(f"/v2.1/servers/{sid}/action", json={"unlock": None},
                              headers=OWNER)).status == 202
    bad = await client.post(f"/v2.1/servers/{sid}/action", json={"resume": None}, headers=OWNER)
    assert bad.status == 409
    assert "conflictingRequest" in await bad.json()
