"""What the libvirt driver does beyond the driver contract, on libvirt's real ``test:///default``.

The contract (``test_driver_contract.py``) runs this driver too; here are the libvirt
specifics: domain UUIDs, how ``stop`` shuts a domain down, owners and boot blocks in
the domain metadata, autostart, transient domains and the one shared connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import libvirt
import pytest

import drivers
from drivers import InvalidState, OperationBlocked, PowerState
from drivers.libvirt import LibvirtDriver
from tests.support.driver_harness import running
from tests.support.libvirt_harness import LibvirtHarness

pytestmark = pytest.mark.integration

STATELOCK_NS = "http://statelock.dev/xmlns/statelock/1.0"
NOVA_NS = "http://openstack.org/xmlns/libvirt/nova/1.1"


@pytest.fixture
async def harness() -> AsyncIterator[LibvirtHarness]:
    async with running(LibvirtHarness) as harness:
        yield harness


@pytest.fixture
def driver(harness: LibvirtHarness) -> LibvirtDriver:
    return harness.driver


async def test_the_id_is_the_domain_uuid_and_created_is_unknown_without_nova_metadata(
    driver: LibvirtDriver,
) -> None:
    [instance] = await driver.list_instances()
    conn = await driver.raw_connection()
    assert (instance.name, instance.id) == ("test", str(conn.lookupByName("test").UUIDString()).lower())
    assert instance.created == drivers.UNKNOWN_CREATED


@pytest.mark.parametrize(
    ("state", "shutdown_timeout", "reason"),
    [
        (PowerState.RUNNING, 5, libvirt.VIR_DOMAIN_SHUTOFF_SHUTDOWN),
        (PowerState.PAUSED, 5, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED),
        (PowerState.RUNNING, 0, libvirt.VIR_DOMAIN_SHUTOFF_DESTROYED),
    ],
    ids=["running-asked", "paused-destroyed", "no-timeout-destroyed"],
)
async def test_stop_asks_a_running_guest_and_destroys_one_that_cannot_answer(
    harness: LibvirtHarness, state: PowerState, shutdown_timeout: int, reason: int
) -> None:
    instance_id = harness.make(state)
    async with LibvirtDriver(harness.config(shutdown_timeout=shutdown_timeout)) as driver:
        await driver.stop(instance_id)
    dom = harness.domain(instance_id)
    # NOTE: the test driver honours virDomainShutdown at once (reason SHUTDOWN, 1);
    # a real guest may take up to shutdown_timeout, or never, and is then destroyed.
    assert dom.state() == [libvirt.VIR_DOMAIN_SHUTOFF, reason]


async def test_the_boot_block_lives_in_the_persistent_domain_metadata(harness: LibvirtHarness) -> None:
    instance_id = harness.make(PowerState.SUSPENDED)
    await harness.driver.set_boot_block(instance_id, True, "legal <hold> & co")
    dom = harness.domain(instance_id)
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    stored = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, STATELOCK_NS, flags)
    assert '<bootblock reason="legal &lt;hold&gt; &amp; co"/>' in stored

    await harness.driver.set_boot_block(instance_id, True, "replaced reason")
    assert (await harness.driver.get_instance(instance_id)).boot_block_reason == "replaced reason"

    await harness.driver.set_boot_block(instance_id, False, None)
    await harness.driver.set_boot_block(instance_id, False, None)
    with pytest.raises(libvirt.libvirtError):
        dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, STATELOCK_NS, flags)


async def test_a_boot_block_turns_autostart_off_until_lifted(harness: LibvirtHarness) -> None:
    instance_id = harness.make(PowerState.RUNNING)
    dom = harness.domain(instance_id)
    dom.setAutostart(1)

    await harness.driver.set_boot_block(instance_id, True, "hold")
    assert dom.autostart() == 0
    await harness.driver.set_boot_block(instance_id, True, "hold, again")
    assert dom.autostart() == 0

    await harness.driver.set_boot_block(instance_id, False, None)
    assert dom.autostart() == 1


async def test_owners_are_read_from_statelock_then_nova_metadata(harness: LibvirtHarness) -> None:
    container = harness.define(
        "vm-container",
        f'<statelock:instance xmlns:statelock="{STATELOCK_NS}">'
        '<statelock:owner project_id="billing" user_id="bob"/></statelock:instance>',
    )
    bare = harness.define(
        "vm-bare",
        f'<statelock:owner xmlns:statelock="{STATELOCK_NS}" project_id="demo" user_id="carol"/>',
    )
    nova = harness.define(
        "vm-nova",
        f'<nova:instance xmlns:nova="{NOVA_NS}"><nova:creationTime>2026-11-20 08:30:00'
        '</nova:creationTime><nova:owner><nova:user uuid="u-1">alice</nova:user>'
        '<nova:project uuid="p-1">demo</nova:project></nova:owner></nova:instance>',
    )
    both = harness.define(
        "vm-both",
        f'<nova:instance xmlns:nova="{NOVA_NS}"><nova:owner><nova:user uuid="u-1"/>'
        '<nova:project uuid="p-1"/></nova:owner></nova:instance>'
        f'<statelock:owner xmlns:statelock="{STATELOCK_NS}" project_id="sl" user_id="sl-user"/>',
    )

    by_id = {i.id: i for i in await harness.driver.list_instances()}
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


async def test_a_boot_block_keeps_the_statelock_owner(harness: LibvirtHarness) -> None:
    driver = harness.driver
    instance_id = harness.define(
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


async def test_a_transient_domain_cannot_be_suspended(harness: LibvirtHarness) -> None:
    instance_id = str(harness.conn.createXML(harness.domain_xml("transient"), 0).UUIDString())
    with pytest.raises(InvalidState, match="transient"):
        await harness.driver.suspend(instance_id)
    assert (await harness.driver.get_instance(instance_id)).power_state is PowerState.RUNNING


async def test_a_dead_connection_is_reopened(driver: LibvirtDriver) -> None:
    conn = await driver.raw_connection()
    conn.close()
    assert [i.name for i in await driver.list_instances()] == ["test"]
    assert await driver.raw_connection() is not conn


async def test_concurrent_calls_share_one_connection(harness: LibvirtHarness) -> None:
    driver = harness.driver
    instance = await driver.get_instance(harness.make(PowerState.RUNNING))
    conn = await driver.raw_connection()
    results = await asyncio.gather(*(driver.get_instance(instance.id) for _ in range(20)))
    assert set(results) == {instance}
    assert await driver.raw_connection() is conn
