"""The behaviour every ``Driver`` must show (``drivers/base.py``), run against each implementation.

Each test gets a ``harness`` (``tests/support/driver_harness.py``): the fake, libvirt on
``test:///default`` and XenAPI against the XAPI double. A harness makes fresh
instances in a given power state without the driver and reads the hypervisor's own
record, so each test checks both what the driver says and what the hypervisor did.
What a driver does beyond this contract is tested in its own module.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any

import pytest

import drivers
from drivers import (
    DEFAULT_BLOCK_REASON,
    DriverConfigError,
    DriverError,
    DriverUnavailable,
    InstanceNotFound,
    InvalidState,
    OperationBlocked,
    PowerState,
)
from tests.support.driver_harness import CALLS, OPERATIONS, OWNER, DriverHarness, perform, running
from tests.support.fake_harness import FakeHarness
from tests.support.libvirt_harness import LibvirtHarness
from tests.support.libvirtd import qemu_host_fixture  # noqa: F401
from tests.support.qemu_harness import QemuHarness
from tests.support.xenapi_harness import XenAPIHarness

pytestmark = pytest.mark.integration

Harness = DriverHarness[Any]
HARNESSES: tuple[type[Harness], ...] = (FakeHarness, LibvirtHarness, XenAPIHarness, QemuHarness)

P = PowerState
# operation -> {power state it may start from: power state it leaves}; every other
# state is InvalidState. Written out by hand from the Driver ABC, not read from
# drivers._rules, so that the drivers' rule table is checked rather than copied.
TRANSITIONS: dict[str, dict[PowerState, PowerState]] = {
    "suspend": {P.RUNNING: P.SUSPENDED},
    "resume": {P.SUSPENDED: P.RUNNING},
    "start": {P.SHUTDOWN: P.RUNNING, P.SUSPENDED: P.RUNNING},
    "stop": {P.RUNNING: P.SHUTDOWN, P.PAUSED: P.SHUTDOWN, P.CRASHED: P.SHUTDOWN},
    "reboot": {P.RUNNING: P.RUNNING},
    "hard_reboot": {P.RUNNING: P.RUNNING, P.PAUSED: P.RUNNING},
    "pause": {P.RUNNING: P.PAUSED},
    "unpause": {P.PAUSED: P.RUNNING},
}
BOOT_OPERATIONS = {"resume", "start", "unpause", "hard_reboot"}
# Nova's (status, OS-EXT-STS:vm_state, OS-EXT-STS:power_state) for each power state.
NOVA_VIEW = {
    P.NOSTATE: ("ERROR", "error", 0),
    P.RUNNING: ("ACTIVE", "active", 1),
    P.PAUSED: ("PAUSED", "paused", 3),
    P.SHUTDOWN: ("SHUTOFF", "stopped", 4),
    P.CRASHED: ("ERROR", "error", 6),
    P.SUSPENDED: ("SUSPENDED", "suspended", 7),
}
REASON = "billing: invoice 881 overdue"

Outcome = PowerState | type[DriverError]


def expected(harness: Harness, operation: str, state: PowerState, blocked: bool) -> Outcome:
    """The state ``operation`` leaves an instance in ``state`` in, or the error it must raise."""
    if blocked and operation in BOOT_OPERATIONS:
        return OperationBlocked
    if (operation, state) == ("start", P.SUSPENDED) and not harness.starts_suspended:
        return InvalidState
    return TRANSITIONS[operation].get(state, InvalidState)


def rows(table: Callable[[type[Harness]], Iterable[tuple[Any, ...]]]) -> list[Any]:
    """``pytest.param`` rows of (harness class, *row) for each harness and each row ``table`` gives it.

    The harness class goes to the ``harness`` fixture (``indirect``); the id names the
    harness and the row's power states and strings.
    """
    return [
        pytest.param(harness, *row, id="-".join([harness.label or harness.name,
                                                  *(_shown(value) for value in row)]))
        for harness in HARNESSES
        for row in table(harness)
    ]


def _shown(value: Any) -> str:
    if isinstance(value, PowerState):
        return value.name
    return value if isinstance(value, str) else "config"


def states(harness: type[Harness]) -> list[PowerState]:
    """The power states the harness can make, in ``PowerState`` order."""
    return [state for state in PowerState if state in harness.states]


STATE_ROWS = rows(lambda h: [(state,) for state in states(h)])
TRANSITION_ROWS = rows(lambda h: [(operation, state) for operation in OPERATIONS for state in states(h)])
NOT_FOUND_ROWS = rows(lambda h: [(call, instance_id) for call in CALLS for instance_id in h.not_found_ids])
BAD_CONFIG_ROWS = rows(lambda h: h.bad_configs)


@pytest.fixture(params=[pytest.param(h, id=h.label or h.name) for h in HARNESSES])
async def harness(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    harness_class: type[Harness] = request.param
    if harness_class is QemuHarness:
        request.getfixturevalue("qemu_host")  # NOTE: libvirtd and QEMU up, or a skip saying why not
    async with running(harness_class) as harness:
        yield harness


async def check(harness: Harness, operation: str, instance_id: str, outcome: Outcome) -> DriverError | None:
    """Run ``operation``; assert it leaves ``outcome``, or raises it and changes nothing. Returns the error."""
    driver = harness.driver
    before = await driver.get_instance(instance_id)
    record = harness.hypervisor_record(instance_id)
    if isinstance(outcome, PowerState):
        await perform(driver, operation, instance_id)
        after = await driver.get_instance(instance_id)
        assert after.power_state is outcome
        assert harness.hypervisor_state(instance_id) is outcome
        assert (after.boot_blocked, after.boot_block_reason) == (before.boot_blocked, before.boot_block_reason)
        return None
    with pytest.raises(outcome) as raised:
        await perform(driver, operation, instance_id)
    assert (raised.value.code, raised.value.instance_id) == (outcome.code, instance_id)
    assert await driver.get_instance(instance_id) == before
    assert harness.hypervisor_record(instance_id) == record
    return raised.value


async def test_a_fresh_instance_is_listed_and_found_by_its_id_in_any_case(harness: Harness) -> None:
    """Listed once, under its id in lower case (``make`` returns it so), and equal to ``get_instance``."""
    instance_id = harness.make(P.RUNNING)
    [listed] = [i for i in await harness.driver.list_instances() if i.id == instance_id]
    assert (listed.power_state, listed.boot_blocked, listed.boot_block_reason) == (P.RUNNING, False, None)
    assert (listed.project_id, listed.user_id, listed.host) == (OWNER["project_id"], OWNER["user_id"], harness.host)
    assert await harness.driver.get_instance(instance_id.upper()) == listed


@pytest.mark.parametrize(("harness", "state"), STATE_ROWS, indirect=["harness"])
async def test_nova_view_of_each_power_state(harness: Harness, state: PowerState) -> None:
    instance = await harness.driver.get_instance(harness.make(state))
    assert instance.power_state is state
    assert (instance.nova_status, instance.vm_state, instance.nova_power_state) == NOVA_VIEW[state]


@pytest.mark.parametrize(("harness", "operation", "state"), TRANSITION_ROWS, indirect=["harness"])
async def test_each_operation_from_each_power_state(harness: Harness, operation: str, state: PowerState) -> None:
    instance_id = harness.make(state)
    await check(harness, operation, instance_id, expected(harness, operation, state, blocked=False))


@pytest.mark.parametrize(("harness", "operation", "state"), TRANSITION_ROWS, indirect=["harness"])
async def test_a_boot_block_refuses_every_way_back_to_running_and_nothing_else(
    harness: Harness, operation: str, state: PowerState
) -> None:
    """Blocked: start, resume, unpause and hard reboot, checked before the power state; lifted: as unblocked."""
    instance_id = harness.make(state)
    await harness.driver.set_boot_block(instance_id, True, REASON)
    blocked = await harness.driver.get_instance(instance_id)
    assert (blocked.power_state, blocked.boot_blocked, blocked.boot_block_reason) == (state, True, REASON)

    refused = await check(harness, operation, instance_id, expected(harness, operation, state, blocked=True))
    if isinstance(refused, OperationBlocked):
        assert refused.reason == REASON
        await harness.driver.set_boot_block(instance_id, False, None)
        await check(harness, operation, instance_id, expected(harness, operation, state, blocked=False))
        lifted = await harness.driver.get_instance(instance_id)
        assert (lifted.boot_blocked, lifted.boot_block_reason) == (False, None)


async def test_a_boot_block_still_allows_soft_reboot_pause_and_stop(harness: Harness) -> None:
    instance_id = harness.make(P.RUNNING)
    await harness.driver.set_boot_block(instance_id, True, None)
    await harness.driver.reboot(instance_id)
    await harness.driver.pause(instance_id)
    await harness.driver.stop(instance_id)
    blocked = await harness.driver.get_instance(instance_id)
    assert (blocked.power_state, blocked.boot_block_reason) == (P.SHUTDOWN, DEFAULT_BLOCK_REASON)
    assert harness.hypervisor_state(instance_id) is P.SHUTDOWN


async def test_a_boot_block_round_trip_default_reason_and_idempotence(harness: Harness) -> None:
    driver = harness.driver
    instance_id = harness.make(P.SUSPENDED)
    await driver.set_boot_block(instance_id, True, None)
    blocked = await driver.get_instance(instance_id)
    assert (blocked.boot_blocked, blocked.boot_block_reason) == (True, DEFAULT_BLOCK_REASON)
    with pytest.raises(OperationBlocked) as raised:
        await driver.resume(instance_id)
    assert raised.value.reason == DEFAULT_BLOCK_REASON

    await driver.set_boot_block(instance_id, True, "replaced reason")
    assert (await driver.get_instance(instance_id)).boot_block_reason == "replaced reason"

    await driver.set_boot_block(instance_id, False, "ignored when lifting")
    await driver.set_boot_block(instance_id, False, None)
    lifted = await driver.get_instance(instance_id)
    assert (lifted.boot_blocked, lifted.boot_block_reason) == (False, None)
    await driver.resume(instance_id)
    assert harness.hypervisor_state(instance_id) is P.RUNNING


@pytest.mark.parametrize(("harness", "call", "instance_id"), NOT_FOUND_ROWS, indirect=["harness"])
async def test_an_unknown_instance_is_not_found(harness: Harness, call: str, instance_id: str) -> None:
    with pytest.raises(InstanceNotFound) as raised:
        await perform(harness.driver, call, instance_id)
    assert (raised.value.code, raised.value.instance_id) == ("instance_not_found", instance_id)


async def test_a_closed_driver_is_unavailable(harness: Harness) -> None:
    instance_id = harness.make(P.RUNNING)
    async with harness.driver as driver:
        await driver.get_instance(instance_id)
    await driver.close()  # a second close is harmless
    with pytest.raises(DriverUnavailable):
        await driver.list_instances()
    with pytest.raises(DriverUnavailable):
        await driver.get_instance(instance_id)


async def test_an_unreachable_hypervisor_is_unavailable(harness: Harness) -> None:
    async with harness.unreachable() as driver:
        with pytest.raises(DriverUnavailable, match=harness.unreachable_message) as raised:
            await driver.list_instances()
        assert raised.value.code == "driver_unavailable"
        with pytest.raises(DriverUnavailable):
            await driver.suspend(str(uuid.uuid4()))


async def test_a_hypervisor_that_comes_back_is_used_again(harness: Harness) -> None:
    harness.exempt("comes_back")
    instance_id = harness.make(P.RUNNING)
    harness.cut()
    with pytest.raises(DriverUnavailable):
        await harness.driver.list_instances()
    with pytest.raises(DriverUnavailable) as raised:
        await harness.driver.suspend(instance_id)
    assert raised.value.code == "driver_unavailable"

    harness.restore()
    assert (await harness.driver.get_instance(instance_id)).power_state is P.RUNNING


@pytest.mark.parametrize(("harness", "overrides", "message"), BAD_CONFIG_ROWS, indirect=["harness"])
def test_bad_config_is_refused_at_creation(harness: Harness, overrides: dict[str, Any], message: str) -> None:
    with pytest.raises(DriverConfigError, match=message):
        drivers.create(harness.name, harness.config(**overrides))


async def test_create_builds_the_driver_by_name(harness: Harness) -> None:
    instance_id = harness.make(P.RUNNING)
    async with drivers.create(harness.name, harness.config()) as driver:
        assert type(driver) is type(harness.driver)
        assert driver.name == harness.name
        assert instance_id in {i.id for i in await driver.list_instances()}


async def test_a_configured_host_is_reported_for_every_instance(harness: Harness) -> None:
    harness.exempt("configured_host")
    harness.make(P.RUNNING)
    async with drivers.create(harness.name, harness.config(host="cmp-7")) as driver:
        assert {i.host for i in await driver.list_instances()} == {"cmp-7"}
