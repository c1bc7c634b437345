"""libvirt's errors, translated into the ``DriverError`` family where they enter the libvirt driver.

``translate`` maps a ``libvirtError`` to the driver error that says what happened:
an unknown domain, an invalid state, a start the Statelock qemu hook refused (its
message, ``blocked by Statelock lock ...: <reason>``, is the last line libvirt
appends), a lost connection (which the caller then forgets), or anything else.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable

import libvirt

from drivers.base import DriverError, DriverUnavailable, InstanceNotFound, InvalidState, OperationBlocked
from drivers.libvirt_hook.verdict import REFUSAL_PREFIX

_CONNECTION_CODES = frozenset(
    {libvirt.VIR_ERR_INVALID_CONN, libvirt.VIR_ERR_NO_CONNECT, libvirt.VIR_ERR_RPC}
)
_CONNECTION_DOMAINS = frozenset({libvirt.VIR_FROM_REMOTE, libvirt.VIR_FROM_RPC})


def discard_libvirt_error(_context: object, _error: object) -> None:
    """Drop libvirt's own report of an error; the raised ``libvirtError`` carries it."""


def valid_uuid(instance_id: str) -> str:
    try:
        return str(uuid.UUID(instance_id))
    except ValueError:
        raise InstanceNotFound(
            f"instance {instance_id} not found (not a UUID)", instance_id=instance_id
        ) from None


def hook_refusal(message: str) -> str | None:
    """``blocked by Statelock lock ...: <reason>`` from a libvirt error, or None if not there.

    libvirt's error for a failed hook ends with the hook's stderr.
    """
    _, found, tail = message.partition(REFUSAL_PREFIX)
    lines = tail.splitlines()
    return REFUSAL_PREFIX + (lines[0].rstrip() if lines else "") if found else None


def translate(exc: libvirt.libvirtError, instance_id: str | None, alive: Callable[[], bool]) -> DriverError:
    """The driver error for ``exc``; ``alive`` tells whether the connection still answers."""
    code, domain = exc.get_error_code(), exc.get_error_domain()
    message = f"libvirt: {exc.get_error_message() or exc}"
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return InstanceNotFound(f"instance {instance_id} not found", instance_id=instance_id)
    if code == libvirt.VIR_ERR_OPERATION_INVALID:
        return InvalidState(message, instance_id=instance_id)
    refusal = hook_refusal(message) if code == libvirt.VIR_ERR_HOOK_SCRIPT_FAILED else None
    if refusal is not None:
        return OperationBlocked(f"instance {instance_id}: the hypervisor refused: {refusal}",
                                instance_id=instance_id, reason=refusal.partition(": ")[2] or None)
    if code in _CONNECTION_CODES or domain in _CONNECTION_DOMAINS or not alive():
        return DriverUnavailable(message, instance_id=instance_id)
    return DriverError(message, instance_id=instance_id)
