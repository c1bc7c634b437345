"""Upstream mode, defence in depth: a suspend-lock through Nova also blocks the domain on its host.

Statelock runs in front of a Nova-shaped upstream whose server *is* a real QEMU guest
on the real libvirtd: the upstream's suspend and resume managed-save and restore it, as
Nova's libvirt driver does. ``backend.hypervisors`` points Statelock at that host over
``qemu+tcp://127.0.0.1:PORT/system`` with no auth: a loopback listener of the test's
own, relaying libvirt's remote protocol to libvirtd's socket (so the system libvirtd
needs no reconfiguration). With the hook installed there, a direct ``virsh start`` is
refused naming the lock; an unreachable host is reported in the completion and the
Statelock lock still holds.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import libvirt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from tests.functional.conftest import make_config
from tests.integration.test_qemu_guest import RESTORED, SAVED, state, virsh_start
from tests.support.fake_nova import FakeNova, Received, build_app
from tests.support.libvirtd import OWNER, Guest, QemuHost, qemu_guest_fixture, qemu_host_fixture  # noqa: F401
from tests.support.process import free_port

pytestmark = pytest.mark.integration
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
LIBVIRT_SOCKET = "/var/run/libvirt/libvirt-sock"
BILLING = {"X-Auth-Token": "billing-svc:service:billing"}
REASON = "billing: invoice 881 overdue"


@contextlib.asynccontextmanager
async def tcp_listener() -> AsyncIterator[int]:
    """A loopback TCP port whose connections reach libvirtd's unix socket, byte for byte."""

    async def pump(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.close()

    async def relay(client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        server_r, server_w = await asyncio.open_unix_connection(LIBVIRT_SOCKET)
        await asyncio.gather(pump(client_r, server_w), pump(server_r, client_w))

    port = free_port()
    server = await asyncio.start_server(relay, "127.0.0.1", port)
    try:
        yield port
    finally:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def cloud(aiohttp_server: AiohttpServer, qemu_host: QemuHost,
                qemu_guest: Guest) -> AsyncIterator[tuple[FakeNova, TestServer, Any]]:
    """A Nova-shaped upstream whose one server is the real guest on host cmp-real."""
    nova = FakeNova()
    nova.servers[qemu_guest.uuid] = {"id": qemu_guest.uuid, "name": qemu_guest.name, "tenant_id": OWNER[0],
                                     "user_id": OWNER[1], "status": "ACTIVE", "OS-EXT-SRV-ATTR:host": "cmp-real"}
    conn = qemu_host.connect()
    dom = conn.lookupByUUIDString(qemu_guest.uuid)

    async def act_on_the_guest(req: Received) -> None:
        # NOTE: what Nova's libvirt driver does for suspend and resume
        if req.action == "suspend":
            await asyncio.to_thread(dom.managedSave, 0)
        elif req.action == "resume":
            await asyncio.to_thread(dom.create)

    nova.gate = act_on_the_guest
    try:
        yield nova, await aiohttp_server(build_app(nova)), dom
    finally:
        conn.close()


def _completion(audit: Path, decision_id: str) -> dict[str, Any]:
    records = [json.loads(line) for line in audit.read_text().splitlines()]
    [done] = [r for r in records if r.get("type") == "completion" and r["decision_id"] == decision_id]
    return dict(done["statelock"])


async def test_suspend_lock_through_nova_blocks_the_domain_on_its_host(
    aiohttp_client: AiohttpClient, cloud: tuple[FakeNova, TestServer, Any], qemu_host: QemuHost,
    qemu_guest: Guest, tmp_path: Path,
) -> None:
    nova, upstream, dom = cloud
    async with tcp_listener() as port:
        cfg = make_config(tmp_path, str(upstream.make_url("")).rstrip("/"), backend={
            "hypervisors": {"cmp-real": f"qemu+tcp://127.0.0.1:{port}/system"}})
        client = await aiohttp_client(create_app(cfg))
        sid = qemu_guest.uuid
        locked = await client.post(f"/statelock/v1/instances/{sid}/suspend-lock", json={"reason": REASON},
                                   headers=BILLING)
        assert locked.status == 200, await locked.text()
        lock_id = (await locked.json())["lock"]["id"]
        assert state(dom) == SAVED
        done = _completion(Path(cfg.audit.path), locked.headers["X-Statelock-Decision-Id"])
        assert done["hypervisor"] == {"host": "cmp-real", "blocked": True, "written": True, "error": None,
                                      "uri": f"qemu+tcp://127.0.0.1:{port}/system"}
        # around Nova, straight at the hypervisor: the hook refuses, naming the lock
        started = virsh_start(qemu_host, qemu_guest)
        assert started.returncode == 1 and f"blocked by Statelock lock {lock_id}: {REASON}" in started.stderr
        assert state(dom) == SAVED and dom.hasManagedSaveImage(0) == 1

        resumed = await client.post(f"/statelock/v1/instances/{sid}/unlock-resume", json={}, headers=BILLING)
        assert resumed.status == 200, await resumed.text()
        assert state(dom) == RESTORED
        done = _completion(Path(cfg.audit.path), resumed.headers["X-Statelock-Decision-Id"])
        assert done["hypervisor"]["written"] is True and done["hypervisor"]["blocked"] is False
        assert nova.actions_for(sid) == ["suspend", "resume"]


async def test_an_unreachable_host_is_reported_and_the_statelock_lock_holds(
    aiohttp_client: AiohttpClient, cloud: tuple[FakeNova, TestServer, Any], qemu_guest: Guest,
    tmp_path: Path,
) -> None:
    nova, upstream, dom = cloud
    closed = free_port()
    cfg = make_config(tmp_path, str(upstream.make_url("")).rstrip("/"), backend={
        "hypervisor_uri": f"qemu+tcp://127.0.0.1:{closed}/system?host={{host}}"})
    client = await aiohttp_client(create_app(cfg))
    sid = qemu_guest.uuid
    locked = await client.post(f"/statelock/v1/instances/{sid}/suspend-lock", json={"reason": REASON},
                               headers=BILLING)
    assert locked.status == 200, await locked.text()
    assert (await locked.json())["lock"]["state"] == "active"
    done = _completion(Path(cfg.audit.path), locked.headers["X-Statelock-Decision-Id"])
    assert done["hypervisor"]["written"] is False and "cannot connect" in done["hypervisor"]["error"]
    owner = {"X-Auth-Token": f"{OWNER[1]}:{OWNER[0]}"}
    assert (await client.post(f"/v2.1/servers/{sid}/action", json={"resume": None}, headers=owner)).status == 409
    # the block can't be cleared there either: nothing is lifted and Nova is not asked to resume
    refused = await client.post(f"/statelock/v1/instances/{sid}/unlock-resume", json={}, headers=BILLING)
    assert refused.status == 502
    assert "stay in force" in json.dumps(await refused.json())
    listed = await client.get(f"/statelock/v1/locks?target={sid}", headers=BILLING)
    assert [lk["state"] for lk in (await listed.json())["locks"]] == ["active"]
    assert nova.actions_for(sid) == ["suspend"] and state(dom) == SAVED
    with contextlib.suppress(libvirt.libvirtError):
        dom.managedSaveRemove(0)
