"""The locking suspend on a real QEMU guest (``qemu:///system``), enforced by the hypervisor too.

Each test boots one diskless guest (KVM when the host has it, TCG otherwise; see
``tests.support.libvirtd``) with Statelock's qemu hook installed, and checks what
the seed asks for on the real thing: RAM on disk in a managed-save image, the
guest off, every way back to running refused (by Statelock's API and, for a
direct ``virsh start``, by libvirt itself) until the lock is lifted, and then a
restore rather than a fresh boot. Few tests, as each one saves and restores a guest.
"""

from __future__ import annotations

import asyncio
import gc
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import libvirt
import pytest
import yaml
from aiohttp import web
from aiohttp.test_utils import TestClient

from drivers import OperationBlocked, PowerState
from drivers.libvirt import LibvirtDriver
from sidecar.app import create_app
from sidecar.cli import main
from sidecar.config import config_from_mapping
from sidecar.identity import Subject
from sidecar.lockops import SUSPEND_SOURCE
from sidecar.locks.model import Lock, new_lock_id
from sidecar.locks.sqlite import SqliteLockStore
from tests.support.libvirtd import OWNER, Guest, QemuHost, qemu_guest_fixture, qemu_host_fixture  # noqa: F401
from tests.support.paths import POLICIES, ROOT

pytestmark = pytest.mark.integration
AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
OWNER_HEADERS = {"X-Auth-Token": f"{OWNER[1]}:{OWNER[0]}", "OpenStack-API-Version": "compute 2.73"}
BILLING = {"X-Auth-Token": "billing-svc:service:billing"}
REASON = "billing: invoice 881 overdue"


def virsh_start(host: QemuHost, guest: Guest) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["virsh", "-c", host.uri, "start", guest.name], capture_output=True,
                          text=True, timeout=60, check=False)


def state(dom: Any) -> tuple[int, int]:
    """libvirt's (state, reason) of the domain, as ``virsh domstate --reason`` shows it."""
    current, reason = dom.state()
    return int(current), int(reason)


SAVED = (libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SAVED)
RESTORED = (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_RUNNING_RESTORED)


@pytest.fixture
async def other_connection(qemu_host: QemuHost) -> AsyncIterator[Any]:
    """A libvirt connection of its own: the "any other client" the hook must stop."""
    conn = qemu_host.connect()
    yield conn
    conn.close()


async def test_the_hypervisor_refuses_a_blocked_guest_until_the_block_is_lifted(
    qemu_host: QemuHost, qemu_guest: Guest, other_connection: Any
) -> None:
    driver = LibvirtDriver({"uri": qemu_host.uri})
    try:
        assert (await driver.get_instance(qemu_guest.uuid)).power_state is PowerState.RUNNING
        await driver.suspend(qemu_guest.uuid)
        dom = other_connection.lookupByUUIDString(qemu_guest.uuid)
        assert state(dom) == SAVED and not dom.isActive()
        assert dom.hasManagedSaveImage(0) == 1
        image = qemu_guest.save_image.stat()
        assert image.st_size > 0

        await driver.set_boot_block(qemu_guest.uuid, True, REASON, lock_id="lk-qemu-1")
        refusal = f"blocked by Statelock lock lk-qemu-1: {REASON}"
        with pytest.raises(libvirt.libvirtError) as raised:
            dom.create()  # what any other client would do
        assert raised.value.get_error_code() == libvirt.VIR_ERR_HOOK_SCRIPT_FAILED
        assert refusal in str(raised.value)
        started = virsh_start(qemu_host, qemu_guest)
        assert started.returncode == 1 and refusal in started.stderr
        assert state(dom) == SAVED and dom.hasManagedSaveImage(0) == 1
        assert qemu_guest.save_image.stat().st_size == image.st_size

        # Lift the block from the definition only, as a lift interrupted half-way
        # would: the image still carries it, so libvirt itself refuses the restore.
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None,
                        "http://statelock.dev/xmlns/statelock/1.0",
                        libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        with pytest.raises(OperationBlocked) as blocked:
            await driver.resume(qemu_guest.uuid)
        assert blocked.value.reason == REASON and "lk-qemu-1" in blocked.value.message

        await driver.set_boot_block(qemu_guest.uuid, False, None)
        await driver.resume(qemu_guest.uuid)
        assert state(dom) == RESTORED and dom.hasManagedSaveImage(0) == 0
    finally:
        await driver.close()


def _app_config(host: QemuHost, tmp_path: Path) -> Any:
    """config/libvirt-qemu-example.yaml, with its files in ``tmp_path``."""
    raw = yaml.safe_load((ROOT / "config" / "libvirt-qemu-example.yaml").read_text())
    assert raw["backend"]["driver"]["uri"] == host.uri
    raw["lockstore"]["url"] = f"sqlite:///{tmp_path}/locks.db"
    raw["audit"]["path"] = str(tmp_path / "decisions.jsonl")
    raw["policy"]["bundle"] = str(POLICIES)
    return config_from_mapping(raw, env={})


@pytest.fixture
async def statelock(
    aiohttp_client: AiohttpClient, qemu_host: QemuHost, tmp_path: Path
) -> AsyncIterator[TestClient[Any, Any]]:
    """Statelock in driver mode on ``qemu:///system``, as the example config sets it up."""
    yield await aiohttp_client(create_app(_app_config(qemu_host, tmp_path)))
    gc.collect()


async def test_suspend_lock_end_to_end_on_a_real_guest(
    statelock: TestClient[Any, Any], qemu_host: QemuHost, qemu_guest: Guest,
    other_connection: Any,
) -> None:
    sid = qemu_guest.uuid
    shown = await statelock.get(f"/v2.1/servers/{sid}", headers=OWNER_HEADERS)
    assert (await shown.json())["server"]["status"] == "ACTIVE"

    resp = await statelock.post(f"/statelock/v1/instances/{sid}/suspend-lock",
                                json={"reason": REASON}, headers=BILLING)
    assert resp.status == 200, await resp.text()
    dom = other_connection.lookupByUUIDString(sid)
    assert state(dom) == SAVED and qemu_guest.save_image.stat().st_size > 0
    server = (await (await statelock.get(f"/v2.1/servers/{sid}", headers=OWNER_HEADERS)).json())
    assert server["server"]["status"] == "SUSPENDED" and server["server"]["locked"] is True

    for action in ({"resume": None}, {"os-start": None}, {"reboot": {"type": "HARD"}}):
        denied = await statelock.post(f"/v2.1/servers/{sid}/action", json=action,
                                      headers=OWNER_HEADERS)
        assert denied.status == 409, action
    started = virsh_start(qemu_host, qemu_guest)
    lock_id = (await resp.json())["lock"]["id"]
    assert started.returncode == 1 and f"blocked by Statelock lock {lock_id}: {REASON}" in started.stderr
    assert state(dom) == SAVED and dom.hasManagedSaveImage(0) == 1

    resp = await statelock.post(f"/statelock/v1/instances/{sid}/unlock-resume", json={},
                                headers=BILLING)
    assert resp.status == 200, await resp.text()
    assert state(dom) == RESTORED and dom.hasManagedSaveImage(0) == 0


async def test_a_pending_suspend_lock_is_finished_on_the_real_guest_at_start_up(
    aiohttp_client: AiohttpClient, qemu_host: QemuHost, qemu_guest: Guest, tmp_path: Path,
    other_connection: Any, caplog: pytest.LogCaptureFixture,
) -> None:
    # What a crash between writing the lock and sending the suspend leaves behind.
    store = SqliteLockStore(f"sqlite:///{tmp_path}/locks.db")
    await store.open()
    lock = Lock(id=new_lock_id(), kind="boot", scope="instance", target=qemu_guest.uuid,
                reason=REASON, owner=Subject("billing-svc", "service", ("billing",)),
                created_at=datetime.now(UTC), state="pending", source=SUSPEND_SOURCE)
    await store.add(lock)
    await store.close()
    dom = other_connection.lookupByUUIDString(qemu_guest.uuid)
    assert dom.isActive()

    client = await aiohttp_client(create_app(_app_config(qemu_host, tmp_path)))
    deadline = asyncio.get_running_loop().time() + 60
    while True:
        resp = await client.get(f"/statelock/v1/locks?target={qemu_guest.uuid}", headers=BILLING)
        states = [lk["state"] for lk in (await resp.json())["locks"]]
        if states == ["active"] or asyncio.get_running_loop().time() > deadline:
            break
        await asyncio.sleep(0.2)
    assert states == ["active"]
    assert "reconciling pending suspend-lock" in caplog.text
    assert state(dom) == SAVED and qemu_guest.save_image.stat().st_size > 0
    started = virsh_start(qemu_host, qemu_guest)
    assert started.returncode == 1 and f"blocked by Statelock lock {lock.id}: {REASON}" in started.stderr
    denied = await client.post(f"/v2.1/servers/{qemu_guest.uuid}/action", json={"resume": None},
                               headers=OWNER_HEADERS)
    assert denied.status == 409



def test_check_finds_the_hook_called_by_the_running_libvirtd(
    qemu_host: QemuHost, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["hypervisor", "install-hook", "--check", "--uri", qemu_host.uri])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "hook:   /etc/libvirt/hooks/qemu.d/00-statelock: installed" in out
    assert "called: yes (the hook refused a probe domain: blocked by Statelock lock probe-" in out
