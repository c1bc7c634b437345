"""The libvirt driver against libvirt's real built-in ``test:///default`` hypervisor.

``test:///default`` keeps its state in the process and shares it between the
connections open at the same time; it starts fresh (one running persistent domain
called ``test``) once every connection is closed. So each test gets its own
driver, closed afterwards, and the fixture checks that it starts from fresh state.
"""

from __future__ import annotations

import asyncio
import gc
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import libvirt
import pytest

import drivers
from drivers import (
    DriverConfigError,
    DriverUnavailable,
    Instance,
    InstanceNotFound,
    InvalidState,
    OperationBlocked,
    PowerState,
)
from drivers.libvirt import LibvirtDriver

pytestmark = pytest.mark.integration

STATELOCK_NS = "http://statelock.dev/xmlns/statelock/1.0"
NOVA_NS = "http://openstack.org/xmlns/libvirt/nova/1.1"
DEFAULT_OWNER = {"project_id": "ops", "user_id": "operator"}


@pytest.fixture
async def driver() -> AsyncIterator[LibvirtDriver]:
    driver = LibvirtDriver(
        {"uri": "test:///default", "default_owner": DEFAULT_OWNER, "shutdown_timeout": 5}
    )
    try:
        instances = await driver.list_instances()
        assert [(i.name, i.power_state, i.boot_blocked) for i in instances] == [
            ("test", PowerState.RUNNING, False)
        ], "test:///default did not start fresh: a connection from an earlier test is open"
        yield driver
    finally:
        await driver.close()
        # NOTE: a domain object kept alive by a reference cycle (an exception's
        # traceback, say) keeps its connection, and so test:///default's state, alive.
        gc.collect()


async def the_test_domain(driver: LibvirtDriver) -> Instance:
    [instance] = [i for i in await driver.list_instances() if i.name == "test"]
    return instance


async def raw_domain(driver: LibvirtDriver, instance_id: str) -> Any:
    """The libvirt domain, through the driver's own connection."""
    conn = await driver.raw_connection()
    return conn.lookupByUUIDString(instance_id)


def domain_xml(name: str, metadata: str = "") -> str:
    return (
        f"<domain type='test'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>"
        "<memory>1024</memory><os><type>hvm</type></os>"
        f"<metadata>{metadata}</metadata></domain>"
    )


async def define(driver: LibvirtDriver, name: str, metadata: str = "") -> str:
    """Define a persistent, shut-off domain; returns its UUID."""
    conn = await driver.raw_connection()
    return str(conn.defineXML(domain_xml(name, metadata)).UUIDString())


async def test_lists_the_test_domain_running_with_the_default_owner(
    driver: LibvirtDriver,
) -> None:
    instance = await the_test_domain(driver)
    conn = await driver.raw_connection()
    assert instance.id == str(conn.lookupByName("test").UUIDString()).lower()
    assert (instance.project_id, instance.user_id) == ("ops", "operator")
    assert instance.host == conn.getHostname()
    assert (instance.nova_status, instance.vm_state, instance.nova_power_state) == (
        "ACTIVE",
        "active",
        1,
    )
    assert instance.created == drivers.UNKNOWN_CREATED
    assert await driver.get_instance(instance.id.upper()) == instance


async def test_suspend_is_a_managed_save(driver: LibvirtDriver) -> None:
    instance = await the_test_domain(driver)
    await driver.suspend(instance.id)

    dom = await raw_domain(driver, instance.id)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_SHUTOFF
    assert dom.hasManagedSaveImage(0) == 1
    suspended = await driver.get_instance(instance.id)
    assert suspended.power_state is PowerState.SUSPENDED
    assert (suspended.nova_status, suspended.vm_state, suspended.nova_power_state) == (
        "SUSPENDED",
        "suspended",
        7,
    )


@pytest.mark.parametrize("wake", ["resume", "start"])
async def test_resume_and_start_restore_the_managed_save(driver: LibvirtDriver, wake: str) -> None:
    instance = await the_test_domain(driver)
    await driver.suspend(instance.id)
    wake_up: Callable[[str], Awaitable[None]] = getattr(driver, wake)
    await wake_up(instance.id)

    dom = await raw_domain(driver, instance.id)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_RUNNING
    assert dom.hasManagedSaveImage(0) == 0
    assert (await driver.get_instance(instance.id)).power_state is PowerState.RUNNING


async def test_pause_keeps_the_domain_in_memory_and_unpause_thaws_it(
    driver: LibvirtDriver,
) -> None:
    instance = await the_test_domain(driver)
    await driver.pause(instance.id)
    dom = await raw_domain(driver, instance.id)
    assert dom.state()[0] == libvirt.VIR_DOMAIN_PAUSED
    assert (await driver.get_instance(instance.id)).nova_status == "PAUSED"

    await driver.unpause(instance.id)
    assert (await driver.get_instance(instance.id)).power_state is PowerState.RUNNING


async def test_stop_shuts_down_and_start_boots(driver: LibvirtDriver) -> None:
    instance = await the_test_domain(driver)
    await driver.stop(instance.id)
    dom = await raw_domain(driver, instance.id)
    # NOTE: the test driver honours virDomainShutdown at once (reason SHUTDOWN, 1);
    # a real guest may take up to shutdown_timeout, or never, and is then destroyed.
    assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN]
    assert dom.hasManagedSaveImage(0) == 0
    stopped = await driver.get_instance(instance.id)
    assert (stopped.power_state, stopped.nova_status, stopped.vm_state) == (
        PowerState.SHUTDOWN,
        "SHUTOFF",
        "stopped",
    )

    await driver.start(instance.id)
    assert (await driver.get_instance(instance.id)).power_state is PowerState.RUNNING


async def test_stop_destroys_a_paused_domain_at_once(driver: LibvirtDriver) -> None:
    instance = await the_test_domain(driver)
    await driver.pause(instance.id)
    await driver.stop(instance.id)
    dom = await raw_domain(driver, instance.id)
    assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED]


async def test_stop_with_no_shutdown_timeout_destroys() -> None:
    async with LibvirtDriver({"shutdown_timeout": 0}) as driver:
        instance = await the_test_domain(driver)
        await driver.stop(instance.id)
        dom = await raw_domain(driver, instance.id)
        assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED]


@pytest.mark.parametrize("hard", [False, True])
async def test_reboot_leaves_a_running_domain_running(driver: LibvirtDriver, hard: bool) -> None:
    instance = await the_test_domain(driver)
    await driver.reboot(instance.id, hard=hard)
    assert (await driver.get_instance(instance.id)).power_state is PowerState.RUNNING


async def test_hard_reboot_of_a_paused_domain_runs_it(driver: LibvirtDriver) -> None:
    instance = await the_test_domain(driver)
    await driver.pause(instance.id)
    await driver.reboot(instance.id, hard=True)
    assert (await driver.get_instance(instance.id)).power_state is PowerState.RUNNING


# (how to get the "test" domain there, operation refused)
INVALID = [
    ([], "resume"),
    ([], "start"),
    ([], "unpause"),
    (["suspend"], "suspend"),
    (["suspend"], "pause"),
    (["suspend"], "stop"),
    (["suspend"], "reboot"),
    (["suspend"], "hard_reboot"),
    (["stop"], "resume"),
    (["stop"], "suspend"),
    (["stop"], "stop"),
    (["pause"], "pause"),
    (["pause"], "suspend"),
    (["pause"], "reboot"),
]


async def run(driver: LibvirtDriver, operation: str, instance_id: str) -> None:
    if operation == "hard_reboot":
        await driver.reboot(instance_id, hard=True)
    else:
        call: Callable[[str], Awaitable[None]] = getattr(driver, operation)
        await call(instance_id)


@pytest.mark.parametrize(("setup", "operation"), INVALID)
async def test_invalid_transitions_are_refused_and_change_nothing(
    driver: LibvirtDriver, setup: list[str], operation: str
) -> None:
    instance = await the_test_domain(driver)
    for step in setup:
        await run(driver, step, instance.id)
    before = await driver.get_instance(instance.id)

    with pytest.raises(InvalidState) as raised:
        await run(driver, operation, instance.id)
    assert raised.value.code == "invalid_state"
    assert raised.value.instance_id == instance.id
    assert await driver.get_instance(instance.id) == before


# (how to get the "test" domain there, operation a boot block refuses)
BLOCKED = [
    (["suspend"], "resume"),
    (["suspend"], "start"),
    (["stop"], "start"),
    (["pause"], "unpause"),
    (["pause"], "hard_reboot"),
    ([], "hard_reboot"),
]


@pytest.mark.parametrize(("setup", "operation"), BLOCKED)
async def test_a_boot_block_refuses_every_way_back_to_running(
    driver: LibvirtDriver, setup: list[str], operation: str
) -> None:
    instance = await the_test_domain(driver)
    for step in setup:
        await run(driver, step, instance.id)
    await driver.set_boot_block(instance.id, True, "billing: invoice 881 overdue")
    before = await driver.get_instance(instance.id)
    assert (before.boot_blocked, before.boot_block_reason) == (
        True,
        "billing: invoice 881 overdue",
    )

    with pytest.raises(OperationBlocked) as raised:
        await run(driver, operation, instance.id)
    assert raised.value.reason == "billing: invoice 881 overdue"
    assert raised.value.code == "operation_blocked"
    assert await driver.get_instance(instance.id) == before

    await driver.set_boot_block(instance.id, False, None)
    await run(driver, operation, instance.id)
    after = await driver.get_instance(instance.id)
    assert (after.power_state, after.boot_blocked, after.boot_block_reason) == (
        PowerState.RUNNING,
        False,
        None,
    )


async def test_a_boot_block_is_checked_before_the_power_state(driver: LibvirtDriver) -> None:
    instance = await the_test_domain(driver)
    await driver.set_boot_block(instance.id, True, "hold")
    with pytest.raises(OperationBlocked):
        await driver.start(instance.id)
    await driver.set_boot_block(instance.id, False, None)
    with pytest.raises(InvalidState):
        await driver.start(instance.id)


async def test_a_boot_block_still_allows_stopping_and_suspending(driver: LibvirtDriver) -> None:
    instance = await the_test_domain(driver)
    await driver.set_boot_block(instance.id, True, None)
    await driver.reboot(instance.id)
    await driver.pause(instance.id)
    await driver.stop(instance.id)
    blocked = await driver.get_instance(instance.id)
    assert blocked.power_state is PowerState.SHUTDOWN
    assert blocked.boot_block_reason == drivers.DEFAULT_BLOCK_REASON


async def test_the_boot_block_lives_in_the_persistent_domain_metadata(
    driver: LibvirtDriver,
) -> None:
    instance = await the_test_domain(driver)
    await driver.suspend(instance.id)
    await driver.set_boot_block(instance.id, True, "legal <hold> & co")
    dom = await raw_domain(driver, instance.id)
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    stored = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, STATELOCK_NS, flags)
    assert '<bootblock reason="legal &lt;hold&gt; &amp; co"/>' in stored

    await driver.set_boot_block(instance.id, True, "replaced reason")
    assert (await driver.get_instance(instance.id)).boot_block_reason == "replaced reason"

    await driver.set_boot_block(instance.id, False, None)
    await driver.set_boot_block(instance.id, False, None)
    with pytest.raises(libvirt.libvirtError):
        dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, STATELOCK_NS, flags)


async def test_a_boot_block_turns_autostart_off_until_lifted(driver: LibvirtDriver) -> None:
    instance = await the_test_domain(driver)
    dom = await raw_domain(driver, instance.id)
    dom.setAutostart(1)

    await driver.set_boot_block(instance.id, True, "hold")
    assert dom.autostart() == 0
    await driver.set_boot_block(instance.id, True, "hold, again")
    assert dom.autostart() == 0

    await driver.set_boot_block(instance.id, False, None)
    assert dom.autostart() == 1


async def test_owners_are_read_from_statelock_then_nova_metadata(driver: LibvirtDriver) -> None:
    container = await define(
        driver,
        "vm-container",
        f'<statelock:instance xmlns:statelock="{STATELOCK_NS}">'
        '<statelock:owner project_id="billing" user_id="bob"/></statelock:instance>',
    )
    bare = await define(
        driver,
        "vm-bare",
        f'<statelock:owner xmlns:statelock="{STATELOCK_NS}" project_id="demo" user_id="carol"/>',
    )
    nova = await define(
        driver,
        "vm-nova",
        f'<nova:instance xmlns:nova="{NOVA_NS}"><nova:creationTime>2026-11-20 08:30:00'
        '</nova:creationTime><nova:owner><nova:user uuid="u-1">alice</nova:user>'
        '<nova:project uuid="p-1">demo</nova:project></nova:owner></nova:instance>',
    )
    both = await define(
        driver,
        "vm-both",
        f'<nova:instance xmlns:nova="{NOVA_NS}"><nova:owner><nova:user uuid="u-1"/>'
        '<nova:project uuid="p-1"/></nova:owner></nova:instance>'
        f'<statelock:owner xmlns:statelock="{STATELOCK_NS}" project_id="sl" user_id="sl-user"/>',
    )

    by_id = {i.id: i for i in await driver.list_instances()}
    assert [i.name for i in by_id.values()] == [
        "test",
        "vm-bare",
        "vm-both",
        "vm-container",
        "vm-nova",
    ]
    ids = {"container": container, "bare": bare, "nova": nova, "both": both}
    owners = {name: (by_id[i].project_id, by_id[i].user_id) for name, i in ids.items()}
    assert owners == {
        "container": ("billing", "bob"),
        "bare": ("demo", "carol"),
        "nova": ("p-1", "u-1"),
        "both": ("sl", "sl-user"),
    }
    assert by_id[nova].created == "2026-11-20T08:30:00Z"
    assert by_id[nova].power_state is PowerState.SHUTDOWN


async def test_a_boot_block_keeps_the_statelock_owner(driver: LibvirtDriver) -> None:
    instance_id = await define(
        driver,
        "vm-owned",
        f'<statelock:owner xmlns:statelock="{STATELOCK_NS}" project_id="demo" user_id="carol"/>',
    )
    await driver.set_boot_block(instance_id, True, "hold")
    with pytest.raises(OperationBlocked):
        await driver.start(instance_id)
    await driver.set_boot_block(instance_id, False, None)
    instance = await driver.get_instance(instance_id)
    assert (instance.project_id, instance.user_id, instance.boot_blocked) == (
        "demo",
        "carol",
        False,
    )
    await driver.start(instance_id)


async def test_a_transient_domain_cannot_be_suspended(driver: LibvirtDriver) -> None:
    conn = await driver.raw_connection()
    instance_id = str(conn.createXML(domain_xml("transient"), 0).UUIDString())
    with pytest.raises(InvalidState, match="transient"):
        await driver.suspend(instance_id)
    assert (await driver.get_instance(instance_id)).power_state is PowerState.RUNNING


OPERATIONS = ["suspend", "resume", "start", "stop", "reboot", "hard_reboot", "pause", "unpause"]


@pytest.mark.parametrize("instance_id", [str(uuid.uuid4()), "not-a-uuid"])
@pytest.mark.parametrize("operation", [*OPERATIONS, "get_instance", "set_boot_block"])
async def test_an_unknown_instance_is_not_found(
    driver: LibvirtDriver, operation: str, instance_id: str
) -> None:
    with pytest.raises(InstanceNotFound) as raised:
        if operation == "set_boot_block":
            await driver.set_boot_block(instance_id, True, "x")
        elif operation == "get_instance":
            await driver.get_instance(instance_id)
        else:
            await run(driver, operation, instance_id)
    assert raised.value.code == "instance_not_found"


async def test_a_dead_connection_is_reopened(driver: LibvirtDriver) -> None:
    conn = await driver.raw_connection()
    conn.close()
    assert [i.name for i in await driver.list_instances()] == ["test"]
    assert await driver.raw_connection() is not conn


async def test_an_unreachable_hypervisor_is_unavailable() -> None:
    async with LibvirtDriver({"uri": "test:///nonexistent/statelock.xml"}) as driver:
        with pytest.raises(DriverUnavailable, match="cannot connect"):
            await driver.list_instances()


async def test_a_closed_driver_is_unavailable() -> None:
    driver = LibvirtDriver({})
    await driver.list_instances()
    await driver.close()
    await driver.close()
    with pytest.raises(DriverUnavailable):
        await driver.list_instances()


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"url": "test:///default"}, "unknown config key"),
        ({"default_owner": {"project_id": "p"}}, "user_id is required"),
        ({"shutdown_timeout": -1}, "shutdown_timeout"),
        ({"uri": 5}, "uri must be a string"),
    ],
)
def test_bad_config_is_refused_at_creation(config: dict[str, Any], message: str) -> None:
    with pytest.raises(DriverConfigError, match=message):
        drivers.create("libvirt", config)


async def test_create_builds_the_libvirt_driver() -> None:
    driver = drivers.create("libvirt", {"uri": "test:///default", "host": "cmp-1"})
    async with driver:
        assert isinstance(driver, LibvirtDriver)
        assert driver.name == "libvirt"
        assert {i.host for i in await driver.list_instances()} == {"cmp-1"}


async def test_concurrent_calls_share_one_connection(driver: LibvirtDriver) -> None:
    instance = await the_test_domain(driver)
    conn = await driver.raw_connection()
    results = await asyncio.gather(*(driver.get_instance(instance.id) for _ in range(20)))
    assert set(results) == {instance}
    assert await driver.raw_connection() is conn
