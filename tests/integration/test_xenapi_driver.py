"""The XenAPI driver through the real ``XenAPI`` SDK against the in-process XAPI double.

The double speaks XAPI's XML-RPC wire format and enforces ``blocked_operations``
the way XAPI does, so these tests also show that a boot block holds at the
hypervisor for any client, not only for this driver.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from typing import Any

import pytest
import XenAPI

import drivers
from drivers import (
    DriverConfigError,
    DriverUnavailable,
    InstanceNotFound,
    InvalidState,
    OperationBlocked,
    PowerState,
)
from drivers.xenapi import BOOT_BLOCK_OPERATIONS, XenAPIDriver
from tests.support.xapi_double import XapiDouble

pytestmark = pytest.mark.integration

PASSWORD = "s3cret-pw"
WEB = "0c9d1c2e-5a55-4d0e-9f35-3f5d5ad0e001"  # Running, owned through other_config
DB = "0c9d1c2e-5a55-4d0e-9f35-3f5d5ad0e002"  # Halted, no owner keys
LEGACY = "0c9d1c2e-5a55-4d0e-9f35-3f5d5ad0e003"  # Running, no PV drivers
TEMPLATE = "0c9d1c2e-5a55-4d0e-9f35-3f5d5ad0e004"
SNAPSHOT = "0c9d1c2e-5a55-4d0e-9f35-3f5d5ad0e005"


@pytest.fixture
def xapi() -> Iterator[XapiDouble]:
    double = XapiDouble(username="root", password=PASSWORD, hostname="xen-1")
    double.add_vm(
        "web-1",
        vm_uuid=WEB,
        power_state="Running",
        other_config={"statelock_project_id": "demo", "statelock_user_id": "alice"},
        install_time="20261120T08:30:00Z",
    )
    double.add_vm("db-1", vm_uuid=DB, blocked_operations={"destroy": "legal hold"})
    double.add_vm("legacy", vm_uuid=LEGACY, power_state="Running", pv_drivers=False)
    double.add_vm("Debian 12", vm_uuid=TEMPLATE, is_a_template=True)
    double.add_vm("web-1 backup", vm_uuid=SNAPSHOT, is_a_template=True, is_a_snapshot=True)
    with double:
        yield double


def config(xapi: XapiDouble, **overrides: Any) -> dict[str, Any]:
    return {
        "url": xapi.url,
        "username": "root",
        "password": PASSWORD,
        "default_owner": {"project_id": "ops", "user_id": "operator"},
        **overrides,
    }


@pytest.fixture
async def driver(xapi: XapiDouble) -> AsyncIterator[XenAPIDriver]:
    async with XenAPIDriver(config(xapi)) as driver:
        yield driver


@pytest.fixture
def raw(xapi: XapiDouble) -> Iterator[Any]:
    """A separate SDK session, as another XAPI client (xe, XenCenter) would have."""
    session = XenAPI.Session(xapi.url)
    session.xenapi.login_with_password("root", PASSWORD, "2.3", "another-client")
    yield session.xenapi
    session.xenapi.session.logout()


async def run(driver: XenAPIDriver, operation: str, instance_id: str) -> None:
    if operation == "hard_reboot":
        await driver.reboot(instance_id, hard=True)
    else:
        call: Callable[[str], Awaitable[None]] = getattr(driver, operation)
        await call(instance_id)


async def test_lists_instances_without_templates_snapshots_or_dom0(
    driver: XenAPIDriver,
) -> None:
    instances = await driver.list_instances()
    assert [(i.name, i.id, i.power_state) for i in instances] == [
        ("db-1", DB, PowerState.SHUTDOWN),
        ("legacy", LEGACY, PowerState.RUNNING),
        ("web-1", WEB, PowerState.RUNNING),
    ]
    db, _legacy, web = instances
    assert (web.project_id, web.user_id) == ("demo", "alice")
    assert (db.project_id, db.user_id) == ("ops", "operator")
    assert {i.host for i in instances} == {"xen-1"}
    assert web.created == "2026-11-20T08:30:00Z"
    assert not db.boot_blocked  # a destroy block is not a boot block
    assert await driver.get_instance(WEB.upper()) == web
    assert await driver.get_instance(DB) == db


async def test_configured_host_wins(xapi: XapiDouble) -> None:
    async with XenAPIDriver(config(xapi, host="cmp-7")) as driver:
        assert {i.host for i in await driver.list_instances()} == {"cmp-7"}


async def test_suspend_and_resume(driver: XenAPIDriver, xapi: XapiDouble) -> None:
    await driver.suspend(WEB)
    assert xapi.vm(WEB).power_state == "Suspended"
    suspended = await driver.get_instance(WEB)
    assert (suspended.power_state, suspended.nova_status, suspended.nova_power_state) == (
        PowerState.SUSPENDED,
        "SUSPENDED",
        7,
    )

    await driver.resume(WEB)
    assert xapi.vm(WEB).power_state == "Running"
    assert (await driver.get_instance(WEB)).power_state is PowerState.RUNNING


async def test_pause_and_unpause(driver: XenAPIDriver, xapi: XapiDouble) -> None:
    await driver.pause(WEB)
    assert (await driver.get_instance(WEB)).power_state is PowerState.PAUSED
    await driver.unpause(WEB)
    assert xapi.vm(WEB).power_state == "Running"


async def test_stop_and_start(driver: XenAPIDriver, xapi: XapiDouble) -> None:
    await driver.stop(WEB)
    assert xapi.vm(WEB).power_state == "Halted"
    assert (await driver.get_instance(WEB)).nova_status == "SHUTOFF"
    await driver.start(WEB)
    assert xapi.vm(WEB).power_state == "Running"
    assert xapi.calls.count("VM.clean_shutdown") == 1
    assert "VM.hard_shutdown" not in xapi.calls


async def test_stop_falls_back_to_hard_shutdown_without_pv_drivers(
    driver: XenAPIDriver, xapi: XapiDouble
) -> None:
    await driver.stop(LEGACY)
    assert xapi.vm(LEGACY).power_state == "Halted"
    shutdowns = [call for call in xapi.calls if call.endswith("_shutdown")]
    assert shutdowns == ["VM.clean_shutdown", "VM.hard_shutdown"]


async def test_stop_hard_shuts_down_a_paused_vm(driver: XenAPIDriver, xapi: XapiDouble) -> None:
    await driver.pause(WEB)
    await driver.stop(WEB)
    assert xapi.vm(WEB).power_state == "Halted"
    assert "VM.clean_shutdown" not in xapi.calls


@pytest.mark.parametrize(("hard", "method"), [(False, "VM.clean_reboot"), (True, "VM.hard_reboot")])
async def test_reboot(driver: XenAPIDriver, xapi: XapiDouble, hard: bool, method: str) -> None:
    await driver.reboot(WEB, hard=hard)
    assert method in xapi.calls
    assert xapi.vm(WEB).power_state == "Running"


# (how to get web-1 there, operation XAPI refuses with VM_BAD_POWER_STATE)
INVALID = [
    ([], "resume"),
    ([], "start"),
    ([], "unpause"),
    (["suspend"], "suspend"),
    (["suspend"], "start"),  # XAPI starts only Halted VMs; libvirt would restore
    (["suspend"], "stop"),
    (["suspend"], "hard_reboot"),
    (["stop"], "resume"),
    (["stop"], "stop"),
    (["pause"], "pause"),
    (["pause"], "reboot"),
]


@pytest.mark.parametrize(("setup", "operation"), INVALID)
async def test_invalid_transitions_are_refused_by_xapi(
    driver: XenAPIDriver, xapi: XapiDouble, setup: list[str], operation: str
) -> None:
    for step in setup:
        await run(driver, step, WEB)
    before = xapi.vm(WEB).power_state

    with pytest.raises(InvalidState) as raised:
        await run(driver, operation, WEB)
    assert raised.value.instance_id == WEB
    assert xapi.vm(WEB).power_state == before


async def test_a_boot_block_is_refused_by_xapi_itself(
    driver: XenAPIDriver, xapi: XapiDouble, raw: Any
) -> None:
    await driver.suspend(WEB)
    await driver.set_boot_block(WEB, True, "billing: invoice 881 overdue")
    assert xapi.vm(WEB).blocked_operations == dict.fromkeys(
        BOOT_BLOCK_OPERATIONS, "billing: invoice 881 overdue"
    )
    instance = await driver.get_instance(WEB)
    assert (instance.boot_blocked, instance.boot_block_reason) == (
        True,
        "billing: invoice 881 overdue",
    )

    vm = raw.VM.get_by_uuid(WEB)
    bypasses: list[Callable[[], object]] = [
        lambda: raw.VM.resume(vm, False, False),
        lambda: raw.VM.start(vm, False, True),
    ]
    for bypass in bypasses:
        with pytest.raises(XenAPI.Failure) as refused:
            bypass()
        assert refused.value.details == ["OPERATION_BLOCKED", vm, "billing: invoice 881 overdue"]

    with pytest.raises(OperationBlocked) as blocked:
        await driver.resume(WEB)
    assert blocked.value.reason == "billing: invoice 881 overdue"
    assert blocked.value.code == "operation_blocked"
    assert xapi.vm(WEB).power_state == "Suspended"

    await driver.set_boot_block(WEB, False, None)
    assert xapi.vm(WEB).blocked_operations == {}
    await driver.resume(WEB)
    assert xapi.vm(WEB).power_state == "Running"


# (how to get web-1 there, operation a boot block refuses)
BLOCKED = [
    (["stop"], "start"),
    (["pause"], "unpause"),
    (["pause"], "hard_reboot"),
    ([], "hard_reboot"),
    ([], "start"),  # the block is checked before the power state, as in XAPI
]


@pytest.mark.parametrize(("setup", "operation"), BLOCKED)
async def test_a_boot_block_refuses_every_way_back_to_running(
    driver: XenAPIDriver, xapi: XapiDouble, setup: list[str], operation: str
) -> None:
    for step in setup:
        await run(driver, step, WEB)
    await driver.set_boot_block(WEB, True, None)
    before = xapi.vm(WEB).power_state

    with pytest.raises(OperationBlocked) as raised:
        await run(driver, operation, WEB)
    assert raised.value.reason == drivers.DEFAULT_BLOCK_REASON
    assert xapi.vm(WEB).power_state == before


async def test_a_boot_block_still_allows_soft_reboot_pause_and_stop(
    driver: XenAPIDriver, xapi: XapiDouble
) -> None:
    await driver.set_boot_block(WEB, True, "hold")
    await driver.reboot(WEB)
    await driver.pause(WEB)
    await driver.stop(WEB)
    assert xapi.vm(WEB).power_state == "Halted"


async def test_a_boot_block_keeps_other_blocked_operations(
    driver: XenAPIDriver, xapi: XapiDouble
) -> None:
    await driver.set_boot_block(DB, True, "first")
    await driver.set_boot_block(DB, True, "second")
    assert xapi.vm(DB).blocked_operations == {
        "destroy": "legal hold",
        **dict.fromkeys(BOOT_BLOCK_OPERATIONS, "second"),
    }
    await driver.set_boot_block(DB, False, None)
    await driver.set_boot_block(DB, False, None)
    assert xapi.vm(DB).blocked_operations == {"destroy": "legal hold"}


OPERATIONS = ["suspend", "resume", "start", "stop", "reboot", "hard_reboot", "pause", "unpause"]


UNKNOWN = "0c9d1c2e-0000-0000-0000-000000000000"


@pytest.mark.parametrize("instance_id", [UNKNOWN, TEMPLATE, SNAPSHOT])
@pytest.mark.parametrize("operation", [*OPERATIONS, "get_instance", "set_boot_block"])
async def test_unknown_templates_and_snapshots_are_not_found(
    driver: XenAPIDriver, xapi: XapiDouble, operation: str, instance_id: str
) -> None:
    with pytest.raises(InstanceNotFound) as raised:
        if operation == "set_boot_block":
            await driver.set_boot_block(instance_id, True, "x")
        elif operation == "get_instance":
            await driver.get_instance(instance_id)
        else:
            await run(driver, operation, instance_id)
    assert raised.value.code == "instance_not_found"
    assert not [call for call in xapi.calls if call.endswith("blocked_operations")]


async def test_a_wrong_password_is_a_config_error_that_does_not_leak_it(
    xapi: XapiDouble,
) -> None:
    async with XenAPIDriver(config(xapi, password="wrong-password")) as driver:
        with pytest.raises(DriverConfigError) as raised:
            await driver.list_instances()
        assert "SESSION_AUTHENTICATION_FAILED" in str(raised.value)
        assert "wrong-password" not in str(raised.value)
        assert "wrong-password" not in repr(driver)
    assert "VM.get_all_records" not in xapi.calls


async def test_an_unreachable_xapi_is_unavailable(xapi: XapiDouble) -> None:
    unreachable = config(xapi, timeout=5)
    xapi.stop()
    async with XenAPIDriver(unreachable) as driver:
        with pytest.raises(DriverUnavailable, match="cannot reach XAPI"):
            await driver.list_instances()


async def test_a_lost_connection_is_unavailable_then_recovers(xapi: XapiDouble) -> None:
    async with XenAPIDriver(config(xapi)) as driver:
        await driver.list_instances()
        port = int(xapi.url.rsplit(":", 1)[1].rstrip("/"))
        xapi.stop()
        with pytest.raises(DriverUnavailable):
            await driver.get_instance(WEB)

        xapi.start(port)
        assert (await driver.get_instance(WEB)).name == "web-1"
    assert xapi.calls.count("session.login_with_password") == 1


async def test_an_expired_session_is_renewed(driver: XenAPIDriver, xapi: XapiDouble) -> None:
    await driver.list_instances()
    xapi.drop_sessions()
    await driver.suspend(WEB)
    assert xapi.calls.count("session.login_with_password") == 2
    assert xapi.vm(WEB).power_state == "Suspended"


async def test_close_logs_out_and_the_driver_is_unusable(xapi: XapiDouble) -> None:
    driver = XenAPIDriver(config(xapi))
    await driver.list_instances()
    await driver.close()
    await driver.close()
    assert xapi.calls[-1] == "session.logout"
    with pytest.raises(DriverUnavailable):
        await driver.list_instances()


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"uri": "http://x/"}, "unknown config key"),
        ({"url": "xen1"}, "http:// or https://"),
        ({"username": ""}, "username is required"),
        ({"verify_tls": "no"}, "verify_tls"),
        ({"timeout": "soon"}, "timeout"),
    ],
)
def test_bad_config_is_refused_at_creation(
    xapi: XapiDouble, overrides: dict[str, Any], message: str
) -> None:
    with pytest.raises(DriverConfigError, match=message):
        drivers.create("xenapi", config(xapi, **overrides))


async def test_create_builds_the_xenapi_driver(xapi: XapiDouble) -> None:
    driver = drivers.create("xenapi", config(xapi))
    async with driver:
        assert isinstance(driver, XenAPIDriver)
        assert driver.name == "xenapi"
        assert len(await driver.list_instances()) == 3


async def test_concurrent_calls_share_one_session_safely(
    driver: XenAPIDriver, xapi: XapiDouble
) -> None:
    instances = await asyncio.gather(*(driver.get_instance(WEB) for _ in range(20)))
    assert {i.name for i in instances} == {"web-1"}
    assert xapi.calls.count("session.login_with_password") == 1
