"""Boot blocks written into the hypervisors behind Nova: defence in depth for upstream mode.

With ``backend.hypervisors`` (or ``backend.hypervisor_uri``), a suspend-lock through Nova
also writes Statelock's boot-block record into the libvirt domain on the instance's
host (the domain's UUID is Nova's instance UUID), which the Statelock qemu hook on that
host reads to refuse a start that goes around Nova (virsh, autostart, scripts); an
unlock-resume clears it before Nova resumes the instance (else the hook would refuse
Nova too). A host that can't be reached is reported, never raised: Statelock's own lock
is what holds, and the report goes into the decision's completion.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import drivers


def _shown(uri: str) -> str:
    """The URI without a password, for records."""
    parts = urlsplit(uri)
    if parts.password is None:
        return uri
    netloc = (f"{parts.username}@" if parts.username else "") + (parts.hostname or "")
    return urlunsplit((parts.scheme, netloc + (f":{parts.port}" if parts.port else ""), parts.path,
                       parts.query, parts.fragment))


class HostBootBlocks:
    """Writes and clears boot blocks on the compute hosts' libvirt (see module docstring)."""

    def __init__(self, hypervisors: Mapping[str, str], template: str | None) -> None:
        self._hypervisors = dict(hypervisors)
        self._template = template

    @property
    def configured(self) -> bool:
        return bool(self._hypervisors or self._template)

    def uri(self, host: str) -> str | None:
        """The libvirt URI of a Nova host, or None if none is configured for it."""
        if host in self._hypervisors:
            return self._hypervisors[host]
        return self._template.replace("{host}", host) if self._template else None

    async def write(self, instance_id: str, host: str | None, blocked: bool, reason: str | None,
                    lock_id: str | None) -> dict[str, Any]:
        """Place or clear the block on the instance's host; a report, ``error`` set when it failed."""
        report: dict[str, Any] = {"host": host, "blocked": blocked, "written": False, "error": None}
        uri = self.uri(host) if host else None
        if uri is None:
            report["error"] = "Nova shows no host" if not host else f"no libvirt URI for host {host!r}"
            return report
        report["uri"] = _shown(uri)
        try:
            driver = drivers.create("libvirt", {"uri": uri})
        except drivers.DriverError as exc:
            report["error"] = exc.message
            return report
        try:
            await driver.set_boot_block(instance_id, blocked, reason, lock_id=lock_id)
            report["written"] = True
        except drivers.DriverError as exc:
            report["error"] = exc.message
        finally:
            await driver.close()
        return report
