"""The hypervisor driver interface: instances, power states, errors and the Driver ABC.

Every driver (libvirt, XenAPI, the in-memory fake) speaks this one async interface so
that the sidecar never sees a hypervisor SDK. Errors raised by an SDK are translated
into the ``DriverError`` family where they enter a driver; nothing else escapes.
"""

from __future__ import annotations

import abc
import dataclasses
import enum
from types import TracebackType
from typing import Self

__all__ = [
    "DEFAULT_BLOCK_REASON",
    "UNKNOWN_CREATED",
    "Driver",
    "DriverConfigError",
    "DriverError",
    "DriverUnavailable",
    "Instance",
    "InstanceNotFound",
    "InvalidState",
    "OperationBlocked",
    "PowerState",
]

UNKNOWN_CREATED = "1970-01-01T00:00:00Z"
"""The ``Instance.created`` value used when the hypervisor keeps no creation time."""

DEFAULT_BLOCK_REASON = "boot blocked by Statelock"
"""The reason stored when ``Driver.set_boot_block`` is given none."""


class PowerState(enum.Enum):
    """The power state of an instance as the hypervisor reports it.

    ``SUSPENDED`` means the RAM was saved to disk and the instance no longer runs
    (libvirt managed save, XAPI ``Suspended``); a frozen instance whose RAM stays
    allocated is ``PAUSED``.
    """

    NOSTATE = "nostate"
    RUNNING = "running"
    PAUSED = "paused"
    SHUTDOWN = "shutdown"
    CRASHED = "crashed"
    SUSPENDED = "suspended"


# NOTE: Nova's own numbers (nova/compute/power_state.py); 2 and 5 are retired there.
_NOVA_POWER_STATE = {
    PowerState.NOSTATE: 0,
    PowerState.RUNNING: 1,
    PowerState.PAUSED: 3,
    PowerState.SHUTDOWN: 4,
    PowerState.CRASHED: 6,
    PowerState.SUSPENDED: 7,
}
_NOVA_STATUS = {
    PowerState.NOSTATE: ("ERROR", "error"),
    PowerState.RUNNING: ("ACTIVE", "active"),
    PowerState.PAUSED: ("PAUSED", "paused"),
    PowerState.SHUTDOWN: ("SHUTOFF", "stopped"),
    PowerState.CRASHED: ("ERROR", "error"),
    PowerState.SUSPENDED: ("SUSPENDED", "suspended"),
}


@dataclasses.dataclass(frozen=True)
class Instance:
    """One instance as a driver sees it, with Nova's view of it derived from the power state.

    ``id`` is the lowercase UUID the hypervisor gives the instance (libvirt domain
    UUID, XAPI VM uuid); ``created`` is RFC 3339 in UTC, or ``UNKNOWN_CREATED`` when
    the hypervisor does not know. ``boot_block_reason`` is ``None`` exactly when
    ``boot_blocked`` is false.
    """

    id: str
    name: str
    power_state: PowerState
    project_id: str
    user_id: str
    host: str
    boot_blocked: bool
    boot_block_reason: str | None
    created: str

    @property
    def nova_status(self) -> str:
        """Nova's API ``status``: ACTIVE, PAUSED, SHUTOFF, SUSPENDED or ERROR."""
        return _NOVA_STATUS[self.power_state][0]

    @property
    def vm_state(self) -> str:
        """Nova's ``OS-EXT-STS:vm_state``: active, paused, stopped, suspended or error."""
        return _NOVA_STATUS[self.power_state][1]

    @property
    def nova_power_state(self) -> int:
        """Nova's ``OS-EXT-STS:power_state`` number (0, 1, 3, 4, 6 or 7)."""
        return _NOVA_POWER_STATE[self.power_state]


class DriverError(Exception):
    """A driver call failed; ``code`` is the snake_case name used in audit records and metrics.

    The message is safe to show an operator: it never holds a credential.
    ``instance_id`` names the instance the call was about, when there was one.
    """

    code = "driver_error"

    def __init__(self, message: str, *, instance_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.instance_id = instance_id


class InstanceNotFound(DriverError):
    """No instance with that id exists on this hypervisor (or it is a template or snapshot)."""

    code = "instance_not_found"


class InvalidState(DriverError):
    """The instance's power state does not allow the operation; nothing was changed."""

    code = "invalid_state"


class OperationBlocked(DriverError):
    """The instance is boot-blocked, so the operation was refused; nothing was changed.

    ``reason`` is the string stored with the block (XAPI returns it in its error).
    """

    code = "operation_blocked"

    def __init__(
        self, message: str, *, instance_id: str | None = None, reason: str | None = None
    ) -> None:
        super().__init__(message, instance_id=instance_id)
        self.reason = reason


class DriverUnavailable(DriverError):
    """The hypervisor could not be reached or the connection was lost; retrying may succeed.

    Whether the operation took effect is unknown: read the instance again.
    """

    code = "driver_unavailable"


class DriverConfigError(DriverError):
    """The driver's configuration is wrong (unknown key, bad value, rejected credentials)."""

    code = "driver_config_error"


class Driver(abc.ABC):
    """One hypervisor behind an async interface; every method may raise a ``DriverError``.

    Power operations return once the hypervisor has accepted and finished the change.
    Each one raises ``InstanceNotFound`` for an unknown id, ``InvalidState`` when the
    power state does not allow it and ``OperationBlocked`` when a boot block forbids
    it. A boot block forbids every operation that can make the instance run again
    from a stopped, suspended or paused state: start, resume, unpause and hard reboot.
    The block is checked before the power state, as XAPI does.
    Drivers are used from one event loop; ``close`` releases the connection and the
    driver must not be used afterwards.
    """

    name: str

    @abc.abstractmethod
    async def list_instances(self) -> list[Instance]:
        """Every instance on the hypervisor (templates, snapshots and dom0 excluded)."""

    @abc.abstractmethod
    async def get_instance(self, instance_id: str) -> Instance:
        """The instance with this id; ``InstanceNotFound`` if there is none."""

    @abc.abstractmethod
    async def suspend(self, instance_id: str) -> None:
        """Save the RAM to disk and stop the instance (RUNNING -> SUSPENDED)."""

    @abc.abstractmethod
    async def resume(self, instance_id: str) -> None:
        """Restore a suspended instance (SUSPENDED -> RUNNING)."""

    @abc.abstractmethod
    async def start(self, instance_id: str) -> None:
        """Boot a stopped instance (SHUTDOWN -> RUNNING; drivers may also accept SUSPENDED)."""

    @abc.abstractmethod
    async def stop(self, instance_id: str) -> None:
        """Shut the instance down, gracefully if the guest allows (RUNNING/PAUSED -> SHUTDOWN)."""

    @abc.abstractmethod
    async def reboot(self, instance_id: str, hard: bool = False) -> None:
        """Reboot: soft from RUNNING asks the guest; hard from RUNNING or PAUSED resets it."""

    @abc.abstractmethod
    async def pause(self, instance_id: str) -> None:
        """Freeze the vCPUs, keeping the RAM allocated (RUNNING -> PAUSED)."""

    @abc.abstractmethod
    async def unpause(self, instance_id: str) -> None:
        """Thaw a paused instance (PAUSED -> RUNNING)."""

    @abc.abstractmethod
    async def set_boot_block(
        self, instance_id: str, blocked: bool, reason: str | None, *, lock_id: str | None = None
    ) -> None:
        """Place (``blocked=True``) or lift a boot block; idempotent, any power state.

        ``lock_id`` names the Statelock lock behind the block, where the hypervisor keeps it
        (libvirt's record, read by the qemu hook); drivers that have nowhere for it ignore it.

        ``reason`` is stored with the block (``DEFAULT_BLOCK_REASON`` when ``None``)
        and returned in ``Instance.boot_block_reason`` and ``OperationBlocked.reason``.
        """

    @abc.abstractmethod
    async def close(self) -> None:
        """Release the hypervisor connection; safe to call more than once."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
