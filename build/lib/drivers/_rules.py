"""The power-state rules shared by the drivers that enforce them themselves (libvirt, fake).

XAPI enforces its own rules (and ``blocked_operations``) server side, so the XenAPI
driver does not use this table; these rules match libvirt's behaviour and, apart
from ``start`` also accepting a SUSPENDED instance (libvirt restores the managed save),
XAPI's.
"""

from __future__ import annotations

import enum
from types import MappingProxyType

from drivers.base import InvalidState, OperationBlocked, PowerState

_P = PowerState


class Operation(enum.Enum):
    """A power operation of the ``Driver`` interface."""

    SUSPEND = "suspend"
    RESUME = "resume"
    START = "start"
    STOP = "stop"
    REBOOT = "reboot"
    HARD_REBOOT = "hard_reboot"
    PAUSE = "pause"
    UNPAUSE = "unpause"


ALLOWED_FROM = MappingProxyType(
    {
        Operation.SUSPEND: frozenset({_P.RUNNING}),
        Operation.RESUME: frozenset({_P.SUSPENDED}),
        Operation.START: frozenset({_P.SHUTDOWN, _P.SUSPENDED}),
        Operation.STOP: frozenset({_P.RUNNING, _P.PAUSED, _P.CRASHED}),
        Operation.REBOOT: frozenset({_P.RUNNING}),
        Operation.HARD_REBOOT: frozenset({_P.RUNNING, _P.PAUSED}),
        Operation.PAUSE: frozenset({_P.RUNNING}),
        Operation.UNPAUSE: frozenset({_P.PAUSED}),
    }
)
"""The power states each operation may start from."""

RESULT = MappingProxyType(
    {
        Operation.SUSPEND: _P.SUSPENDED,
        Operation.RESUME: _P.RUNNING,
        Operation.START: _P.RUNNING,
        Operation.STOP: _P.SHUTDOWN,
        Operation.REBOOT: _P.RUNNING,
        Operation.HARD_REBOOT: _P.RUNNING,
        Operation.PAUSE: _P.PAUSED,
        Operation.UNPAUSE: _P.RUNNING,
    }
)
"""The power state each operation leaves the instance in."""

BOOT_OPERATIONS = frozenset(
    {Operation.START, Operation.RESUME, Operation.UNPAUSE, Operation.HARD_REBOOT}
)
"""The operations a boot block refuses: each can make a non-running instance run."""


def check_transition(
    instance_id: str,
    state: PowerState,
    operation: Operation,
    boot_block_reason: str | None,
) -> None:
    """Raise if ``operation`` may not run now; return ``None`` if it may.

    ``boot_block_reason`` is the stored reason when the instance is boot-blocked,
    else ``None``. The block is checked first, as XAPI does: a blocked start of a
    running instance is ``OperationBlocked``, not ``InvalidState``.
    """
    if boot_block_reason is not None and operation in BOOT_OPERATIONS:
        raise OperationBlocked(
            f"{operation.value} of instance {instance_id} is blocked: {boot_block_reason}",
            instance_id=instance_id,
            reason=boot_block_reason,
        )
    allowed = ALLOWED_FROM[operation]
    if state not in allowed:
        expected = ", ".join(sorted(s.name for s in allowed))
        raise InvalidState(
            f"cannot {operation.value} instance {instance_id} in power state {state.name}"
            f" (needs {expected})",
            instance_id=instance_id,
        )
