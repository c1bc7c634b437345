"""What the XenAPI driver does beyond the driver contract, through the real SDK and the XAPI double.

The contract (``test_driver_contract.py``) runs this driver too; here are the XAPI
specifics: templates, snapshots and dom0, owners in ``other_config``, which shutdown
and reboot calls reach XAPI, ``blocked_operations`` as other XAPI clients see it, and
the session. The double enforces ``blocked_operations`` the way XAPI does, so a boot
block is shown to hold at the hypervisor for any client, not only for this driver.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import pytest
import XenAPI

from drivers import DriverConfigError, DriverUnavailable, InstanceNotFound, PowerState
from drivers.xenapi import BOOT_BLOCK_OPERATIONS, XenAPIDriver
from tests.support.driver_harness import CALLS, perform, running
from tests.support.xapi_double import XapiDouble
from tests.support.xenapi_harness import PASSWORD, SNAPSHOT, TEMPLATE, UNKNOWN, XenAPIHarness

pytestmark = pytest.mark.integration

WEB = "0c9d1c2e-5a55-4d0e-9f35-3f5d5ad0e001"  # Running, owned through other_config
DB = "0c9d1c2e-5a55-4d0e-9f35-3f5d5ad0e002"  # Halted, no owner keys
LEGACY = "0c9d1c2e-5a55-4d0e-9f35-3f5d5ad0e003"  # Running, no PV drivers


@pytest.fixture
async def harness() -> AsyncIterator[XenAPIHarness]:
    async with running(XenAPIHarness) as harness:
        harness.xapi.add_vm(
            "web-1",
            vm_uuid=WEB,
            power_state="Running",
            other_config={"statelock_project_id": "demo", "statelock_user_id": "alice"},
            install_time="20261120T08:30:00Z",
        )
        harness.xapi.add_vm("db-1", vm_uuid=DB, blocked_operations={"destroy": "legal hold"})
        harness.xapi.add_vm("legacy", vm_uuid=LEGACY, power_state="Running", pv_drivers=False)
        yield harness


@pytest.fixture
def xapi(harness: XenAPIHarness) -> XapiDouble:
    return harness.xapi


@pytest.fixture
def driver(harness: XenAPIHarness) -> XenAPIDriver:
    return harness.driver


@pytest.fixture
def raw(xapi: XapiDouble) -> Iterator[Any]:
    """A separate SDK session, as another XAPI client (xe, XenCenter) would have."""
    session = XenAPI.Session(xapi.url)
    session.xenapi.login_with_password("root", PASSWORD, "2.3", "another-client")
    yield session.xenapi
    session.xenapi.session.logout()


async def test_lists_instances_without_templates_snapshots_or_dom0(driver: XenAPIDriver) -> None:
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


async def test_stop_asks_for_a_clean_shutdown_and_start_boots(driver: XenAPIDriver, xapi: XapiDouble) -> None:
    await driver.stop(WEB)
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


async def test_a_boot_block_is_refused_by_xapi_itself(
    harness: XenAPIHarness, xapi: XapiDouble, raw: Any
) -> None:
    driver = harness.driver
    instance_id = harness.make(PowerState.SUSPENDED)
    await driver.set_boot_block(instance_id, True, "billing: invoice 881 overdue")
    assert xapi.vm(instance_id).blocked_operations == dict.fromkeys(
        BOOT_BLOCK_OPERATIONS, "billing: invoice 881 overdue"
    )

    vm = raw.VM.get_by_uuid(instance_id)
    bypasses: list[Callable[[], object]] = [
        lambda: raw.VM.resume(vm, False, False),
        lambda: raw.VM.start(vm, False, True),
    ]
    for bypass in bypasses:
        with pytest.raises(XenAPI.Failure) as refused:
            bypass()
        assert refused.value.details == ["OPERATION_BLOCKED", vm, "billing: invoice 881 overdue"]
    assert xapi.vm(instance_id).power_state == "Suspended"

    await driver.set_boot_block(instance_id, False, None)
    assert xapi.vm(instance_id).blocked_operations == {}


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


@pytest.mark.parametrize("instance_id", [UNKNOWN, TEMPLATE, SNAPSHOT])
@pytest.mark.parametrize("call", CALLS)
async def test_no_call_on_an_unknown_vm_template_or_snapshot_changes_its_blocked_operations(
    driver: XenAPIDriver, xapi: XapiDouble, call: str, instance_id: str
) -> None:
    with pytest.raises(InstanceNotFound):
        await perform(driver, call, instance_id)
    assert not [call for call in xapi.calls if call.endswith("blocked_operations")]


async def test_a_wrong_password_is_a_config_error_that_does_not_leak_it(harness: XenAPIHarness) -> None:
    async with XenAPIDriver(harness.config(password="wrong-password")) as driver:
        with pytest.raises(DriverConfigError) as raised:
            await driver.list_instances()
        assert "SESSION_AUTHENTICATION_FAILED" in str(raised.value)
        assert "wrong-password" not in str(raised.value)
        assert "wrong-password" not in repr(driver)
    assert "VM.get_all_records" not in harness.xapi.calls


async def test_a_lost_connection_keeps_the_session(harness: XenAPIHarness) -> None:
    await harness.driver.list_instances()
    harness.cut()
    with pytest.raises(DriverUnavailable):
        await harness.driver.get_instance(WEB)
    harness.restore()
    assert (await harness.driver.get_instance(WEB)).name == "web-1"
    assert harness.xapi.calls.count("session.login_with_password") == 1


async def test_an_expired_session_is_renewed(driver: XenAPIDriver, xapi: XapiDouble) -> None:
    await driver.list_instances()
    xapi.drop_sessions()
    await driver.suspend(WEB)
    assert xapi.calls.count("session.login_with_password") == 2
    assert xapi.vm(WEB).power_state == "Suspended"


async def test_close_logs_out(driver: XenAPIDriver, xapi: XapiDouble) -> None:
    await driver.list_instances()
    await driver.close()
    assert xapi.calls[-1] == "session.logout"


async def test_concurrent_calls_share_one_session_safely(
    driver: XenAPIDriver, xapi: XapiDouble
) -> None:
    instances = await asyncio.gather(*(driver.get_instance(WEB) for _ in range(20)))
    assert {i.name for i in instances} == {"web-1"}
    assert xapi.calls.count("session.login_with_password") == 1
