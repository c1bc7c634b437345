"""The fake driver's state machine, Nova's view of each power state, and ``drivers.create``."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from typing import Any

import pytest

import drivers
from drivers import (
    DriverConfigError,
    DriverError,
    DriverUnavailable,
    Instance,
    InstanceNotFound,
    InvalidState,
    OperationBlocked,
    PowerState,
)
from drivers.fake import FakeDriver

VM = "8f0c2a4e-1b7d-4c55-9a1e-3c2f7b9d0a11"
P = PowerState
OPERATIONS = ["suspend", "resume", "start", "stop", "reboot", "hard_reboot", "pause", "unpause"]

# operation -> {power state it may start from: power state it leaves}; every other
# state is InvalidState. Written out by hand: it is the libvirt driver's contract.
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


def fake(state: PowerState, **extra: Any) -> FakeDriver:
    spec = {
        "id": VM.upper(),
        "name": "vm-1",
        "project_id": "demo",
        "user_id": "alice",
        "host": "cmp-1",
        "power_state": state.name,
        **extra,
    }
    return FakeDriver({"instances": [spec]})


async def run(driver: FakeDriver, operation: str) -> None:
    if operation == "hard_reboot":
        await driver.reboot(VM, hard=True)
    else:
        await getattr(driver, operation)(VM)


def table(blocked: bool) -> list[tuple[str, PowerState, PowerState | type[DriverError]]]:
    rows: list[tuple[str, PowerState, PowerState | type[DriverError]]] = []
    for operation in OPERATIONS:
        for state in PowerState:
            expected: PowerState | type[DriverError]
            if blocked and operation in BOOT_OPERATIONS:
                expected = OperationBlocked
            else:
                expected = TRANSITIONS[operation].get(state, InvalidState)
            rows.append((operation, state, expected))
    return rows


@pytest.mark.parametrize(("operation", "state", "expected"), table(blocked=False))
async def test_transitions(
    operation: str, state: PowerState, expected: PowerState | type[DriverError]
) -> None:
    driver = fake(state)
    if isinstance(expected, PowerState):
        await run(driver, operation)
        assert (await driver.get_instance(VM)).power_state is expected
    else:
        with pytest.raises(expected):
            await run(driver, operation)
        assert (await driver.get_instance(VM)).power_state is state


@pytest.mark.parametrize(("operation", "state", "expected"), table(blocked=True))
async def test_transitions_with_a_boot_block(
    operation: str, state: PowerState, expected: PowerState | type[DriverError]
) -> None:
    driver = fake(state)
    await driver.set_boot_block(VM, True, "billing hold")
    if isinstance(expected, PowerState):
        await run(driver, operation)
        assert (await driver.get_instance(VM)).power_state is expected
    else:
        with pytest.raises(expected) as raised:
            await run(driver, operation)
        if isinstance(raised.value, OperationBlocked):
            assert raised.value.reason == "billing hold"
        assert (await driver.get_instance(VM)).power_state is state


@pytest.mark.parametrize(
    ("state", "status", "vm_state", "power"),
    [
        (P.NOSTATE, "ERROR", "error", 0),
        (P.RUNNING, "ACTIVE", "active", 1),
        (P.PAUSED, "PAUSED", "paused", 3),
        (P.SHUTDOWN, "SHUTOFF", "stopped", 4),
        (P.CRASHED, "ERROR", "error", 6),
        (P.SUSPENDED, "SUSPENDED", "suspended", 7),
    ],
)
async def test_nova_view_of_each_power_state(
    state: PowerState, status: str, vm_state: str, power: int
) -> None:
    instance = await fake(state).get_instance(VM)
    assert (instance.nova_status, instance.vm_state, instance.nova_power_state) == (
        status,
        vm_state,
        power,
    )


async def test_instances_come_from_config() -> None:
    driver = fake(P.RUNNING, created="2026-11-25T01:00:00Z")
    assert await driver.list_instances() == [
        Instance(
            id=VM,
            name="vm-1",
            power_state=P.RUNNING,
            project_id="demo",
            user_id="alice",
            host="cmp-1",
            boot_blocked=False,
            boot_block_reason=None,
            created="2026-11-25T01:00:00Z",
        )
    ]
    assert await driver.get_instance(VM.upper()) == (await driver.list_instances())[0]


async def test_boot_block_round_trip_and_default_reason() -> None:
    driver = fake(P.SUSPENDED)
    await driver.set_boot_block(VM, True, None)
    blocked = await driver.get_instance(VM)
    assert (blocked.boot_blocked, blocked.boot_block_reason) == (True, drivers.DEFAULT_BLOCK_REASON)
    await driver.set_boot_block(VM, False, "ignored when lifting")
    lifted = await driver.get_instance(VM)
    assert (lifted.boot_blocked, lifted.boot_block_reason) == (False, None)
    await driver.resume(VM)
    assert driver.calls == [("block", VM), ("unblock", VM), ("resume", VM)]


async def test_a_configured_boot_block() -> None:
    driver = fake(P.SHUTDOWN, boot_block_reason="legal hold")
    with pytest.raises(OperationBlocked, match="legal hold"):
        await driver.start(VM)


@pytest.mark.parametrize("operation", [*OPERATIONS, "get_instance", "set_boot_block"])
async def test_an_unknown_instance_is_not_found(operation: str) -> None:
    driver = FakeDriver({"instances": []})
    with pytest.raises(InstanceNotFound) as raised:
        if operation == "set_boot_block":
            await driver.set_boot_block(VM, True, None)
        elif operation == "get_instance":
            await driver.get_instance(VM)
        else:
            await run(driver, operation)
    assert (raised.value.code, raised.value.instance_id) == ("instance_not_found", VM)


@pytest.fixture
async def unavailable() -> AsyncIterator[FakeDriver]:
    driver = fake(P.RUNNING)
    driver.set_unavailable(True)
    yield driver
    driver.set_unavailable(False)
    assert (await driver.get_instance(VM)).power_state is P.RUNNING


async def test_an_unavailable_fake_refuses_everything(unavailable: FakeDriver) -> None:
    with pytest.raises(DriverUnavailable):
        await unavailable.list_instances()
    with pytest.raises(DriverUnavailable) as raised:
        await unavailable.suspend(VM)
    assert raised.value.code == "driver_unavailable"


async def test_a_closed_fake_is_unavailable() -> None:
    async with fake(P.RUNNING) as driver:
        pass
    with pytest.raises(DriverUnavailable):
        await driver.get_instance(VM)


async def test_set_power_state_bypasses_the_rules() -> None:
    driver = fake(P.RUNNING)
    driver.set_power_state(VM, P.CRASHED)
    assert (await driver.get_instance(VM)).nova_status == "ERROR"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"instance": []}, "unknown config key"),
        ({"instances": {}}, "list of mappings"),
        ({"instances": [{"id": VM, "name": "x", "project_id": "p"}]}, "user_id is required"),
        ({"instances": [{"id": VM, "name": "x", "project_id": "p", "user_id": "u",
                         "power_state": "asleep"}]}, "asleep"),
        ({"instances": [{"id": VM, "name": "x", "project_id": "p", "user_id": "u",
                         "colour": "red"}]}, "colour"),
        ({"instances": [{"id": VM, "name": "x", "project_id": "p", "user_id": "u"},
                        {"id": VM.upper(), "name": "y", "project_id": "p", "user_id": "u"}]},
         "duplicate"),
    ],
)  # fmt: skip
def test_bad_config_is_refused(config: dict[str, Any], message: str) -> None:
    with pytest.raises(DriverConfigError, match=message):
        drivers.create("fake", config)


def test_error_codes() -> None:
    assert [cls.code for cls in (DriverError, InstanceNotFound, InvalidState, OperationBlocked,
                                 DriverUnavailable, DriverConfigError)] == [
        "driver_error", "instance_not_found", "invalid_state", "operation_blocked",
        "driver_unavailable", "driver_config_error",
    ]  # fmt: skip
    assert all(issubclass(cls, DriverError) for cls in (InstanceNotFound, DriverConfigError))


def test_create_builds_the_fake() -> None:
    driver = drivers.create("fake", {"instances": []})
    assert isinstance(driver, FakeDriver)
    assert driver.name == "fake"


def test_create_refuses_an_unknown_name() -> None:
    with pytest.raises(DriverConfigError, match="valid drivers: fake, libvirt, xenapi"):
        drivers.create("vmware", {})


@pytest.mark.parametrize(
    ("name", "module", "sdk", "package"),
    [
        ("libvirt", "drivers.libvirt", "libvirt", "libvirt-python"),
        ("xenapi", "drivers.xenapi", "XenAPI", "XenAPI"),
    ],
)
def test_create_names_the_pip_package_of_a_missing_sdk(
    monkeypatch: pytest.MonkeyPatch, name: str, module: str, sdk: str, package: str
) -> None:
    monkeypatch.delitem(sys.modules, module, raising=False)
    monkeypatch.setitem(sys.modules, sdk, None)  # makes `import <sdk>` fail
    with pytest.raises(DriverConfigError, match=f"pip install {package}"):
        drivers.create(name, {})
