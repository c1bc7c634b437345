"""An in-memory driver for unit tests, with the libvirt driver's power-state rules.

Config::

    instances:
      - {id: "8f0c...", name: vm1, project_id: demo, user_id: alice, host: cmp-1,
         power_state: running}        # optional: created (RFC 3339), boot_block_reason

``power_state`` is a ``PowerState`` name or value, in any case.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from drivers import _config
from drivers._rules import RESULT, Operation, check_transition
from drivers.base import (
    DEFAULT_BLOCK_REASON,
    UNKNOWN_CREATED,
    Driver,
    DriverConfigError,
    DriverUnavailable,
    Instance,
    InstanceNotFound,
    PowerState,
)

_INSTANCE_KEYS = frozenset(
    {"id", "name", "project_id", "user_id", "host", "power_state", "created", "boot_block_reason"}
)


def _power_state(value: object) -> PowerState:
    if isinstance(value, PowerState):
        return value
    if isinstance(value, str):
        for state in PowerState:
            if value.lower() in (state.value, state.name.lower()):
                return state
    valid = ", ".join(state.value for state in PowerState)
    raise DriverConfigError(f"fake driver: power_state {value!r} is not one of {valid}")


def _instance(spec: Mapping[str, Any]) -> Instance:
    _config.check_keys("fake driver: instance", spec, _INSTANCE_KEYS)
    reason = _config.optional_str("fake", spec, "boot_block_reason")
    return Instance(
        id=_config.required_str("fake", spec, "id").lower(),
        name=_config.required_str("fake", spec, "name"),
        power_state=_power_state(spec.get("power_state", PowerState.RUNNING)),
        project_id=_config.required_str("fake", spec, "project_id"),
        user_id=_config.required_str("fake", spec, "user_id"),
        host=_config.optional_str("fake", spec, "host") or "fake-host",
        boot_blocked=reason is not None,
        boot_block_reason=reason,
        created=_config.optional_str("fake", spec, "created") or UNKNOWN_CREATED,
    )


class FakeDriver(Driver):
    """Instances held in a dict; every transition is checked by the shared rule table.

    Beyond the ``Driver`` interface, tests can read ``calls`` (each successful or
    refused power or block call as ``(operation, instance_id)``), make the driver
    unreachable with ``set_unavailable``, change a power state behind the
    driver's back with ``set_power_state`` (a guest that shut itself down) and read
    what it holds with ``stored_instance``.
    """

    name = "fake"

    def __init__(self, config: Mapping[str, Any]) -> None:
        _config.check_keys("fake driver", config, frozenset({"instances"}))
        specs = config.get("instances", [])
        if not isinstance(specs, list) or not all(isinstance(s, Mapping) for s in specs):
            raise DriverConfigError("fake driver: instances must be a list of mappings")
        self._instances: dict[str, Instance] = {}
        for spec in specs:
            instance = _instance(spec)
            if instance.id in self._instances:
                raise DriverConfigError(f"fake driver: duplicate instance id {instance.id}")
            self._instances[instance.id] = instance
        self._unavailable = False
        self._closed = False
        self.calls: list[tuple[str, str]] = []

    def set_unavailable(self, unavailable: bool) -> None:
        """Make every later call raise ``DriverUnavailable`` (``True``) or work again."""
        self._unavailable = unavailable

    def set_power_state(self, instance_id: str, state: PowerState) -> None:
        """Change a power state without the rules, as the guest or an operator might."""
        instance = self._lookup(instance_id)
        self._instances[instance.id] = dataclasses.replace(instance, power_state=state)

    def stored_instance(self, instance_id: str) -> Instance:
        """The instance as the fake holds it, even while unavailable or closed; ``KeyError`` if none.

        For tests that read the "hypervisor" without going through the driver.
        """
        return self._instances[instance_id.lower()]

    def _lookup(self, instance_id: str) -> Instance:
        if self._unavailable or self._closed:
            raise DriverUnavailable("fake driver is unavailable", instance_id=instance_id)
        instance = self._instances.get(instance_id.lower())
        if instance is None:
            raise InstanceNotFound(f"instance {instance_id} not found", instance_id=instance_id)
        return instance

    def _transition(self, instance_id: str, operation: Operation) -> None:
        self.calls.append((operation.value, instance_id.lower()))
        instance = self._lookup(instance_id)
        check_transition(instance.id, instance.power_state, operation, instance.boot_block_reason)
        self._instances[instance.id] = dataclasses.replace(instance, power_state=RESULT[operation])

    async def list_instances(self) -> list[Instance]:
        """Every configured instance, in config order."""
        if self._unavailable or self._closed:
            raise DriverUnavailable("fake driver is unavailable")
        return list(self._instances.values())

    async def get_instance(self, instance_id: str) -> Instance:
        """The instance with this id (case-insensitive); ``InstanceNotFound`` if none."""
        return self._lookup(instance_id)

    async def suspend(self, instance_id: str) -> None:
        """RUNNING -> SUSPENDED."""
        self._transition(instance_id, Operation.SUSPEND)

    async def resume(self, instance_id: str) -> None:
        """SUSPENDED -> RUNNING, unless boot-blocked."""
        self._transition(instance_id, Operation.RESUME)

    async def start(self, instance_id: str) -> None:
        """SHUTDOWN or SUSPENDED -> RUNNING, unless boot-blocked."""
        self._transition(instance_id, Operation.START)

    async def stop(self, instance_id: str) -> None:
        """RUNNING, PAUSED or CRASHED -> SHUTDOWN."""
        self._transition(instance_id, Operation.STOP)

    async def reboot(self, instance_id: str, hard: bool = False) -> None:
        """Soft: RUNNING -> RUNNING. Hard: RUNNING or PAUSED -> RUNNING, unless boot-blocked."""
        self._transition(instance_id, Operation.HARD_REBOOT if hard else Operation.REBOOT)

    async def pause(self, instance_id: str) -> None:
        """RUNNING -> PAUSED."""
        self._transition(instance_id, Operation.PAUSE)

    async def unpause(self, instance_id: str) -> None:
        """PAUSED -> RUNNING, unless boot-blocked."""
        self._transition(instance_id, Operation.UNPAUSE)

    async def set_boot_block(
        self, instance_id: str, blocked: bool, reason: str | None, *, lock_id: str | None = None
    ) -> None:
        """Store or clear the block; the fake refuses blocked operations itself."""
        self.calls.append(("block" if blocked else "unblock", instance_id.lower()))
        instance = self._lookup(instance_id)
        stored = (reason or DEFAULT_BLOCK_REASON) if blocked else None
        self._instances[instance.id] = dataclasses.replace(
            instance, boot_blocked=blocked, boot_block_reason=stored
        )

    async def close(self) -> None:
        """Mark the driver closed; later calls raise ``DriverUnavailable``."""
        self._closed = True
