"""What the fake driver offers beyond the driver contract: its config and its test hooks.

The contract (``tests/integration/test_driver_contract.py``) runs the fake too, over
every power state; here are the instance specs, ``calls``, ``set_power_state`` and a
boot block given in the config.
"""

from __future__ import annotations

from typing import Any

import pytest

from drivers import Instance, OperationBlocked, PowerState
from drivers.fake import FakeDriver

VM = "8f0c2a4e-1b7d-4c55-9a1e-3c2f7b9d0a11"
P = PowerState


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


async def test_calls_records_each_power_and_block_call() -> None:
    driver = fake(P.SUSPENDED)
    await driver.set_boot_block(VM, True, None)
    await driver.set_boot_block(VM, False, "ignored when lifting")
    await driver.resume(VM)
    assert driver.calls == [("block", VM), ("unblock", VM), ("resume", VM)]


async def test_a_configured_boot_block() -> None:
    driver = fake(P.SHUTDOWN, boot_block_reason="legal hold")
    with pytest.raises(OperationBlocked, match="legal hold"):
        await driver.start(VM)


async def test_set_power_state_bypasses_the_rules() -> None:
    driver = fake(P.RUNNING)
    driver.set_power_state(VM, P.CRASHED)
    assert (await driver.get_instance(VM)).nova_status == "ERROR"
