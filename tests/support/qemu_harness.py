"""The libvirt driver in the contract suite on a real ``qemu:///system``, with diskless QEMU guests.

The same contract as on ``test:///default`` (``LibvirtHarness``), on the real thing:
each instance is a 64 MiB diskless guest (KVM when the host offers it, TCG otherwise)
with a unique name, so suspend is a real managed save and pause a real vCPU freeze.
The host is shared (other tests' guests may be there), so ``opened`` checks only that
listing works, and every guest defined here is destroyed and undefined, its save
image with it. The session's ``qemu_host`` fixture (``tests/support/libvirtd.py``)
brings libvirtd up first: the contract suite asks for it when this harness runs.
"""

from __future__ import annotations

import uuid
from typing import Any

import libvirt

from drivers import PowerState
from tests.support.libvirt_harness import LibvirtHarness
from tests.support.libvirtd import GUEST_PREFIX, URI, guest_xml, virt_type


class QemuHarness(LibvirtHarness):
    """A ``LibvirtDriver`` on ``qemu:///system``; ``make`` defines and moves real guests."""

    label = "libvirt-qemu"
    uri = URI
    states = frozenset({PowerState.RUNNING, PowerState.PAUSED, PowerState.SHUTDOWN, PowerState.SUSPENDED})
    exceptions = {
        "comes_back": "the system libvirtd is shared by every real-guest test of the session; taking it "
        "away mid-session would fail the others (reconnecting is covered on test:///default)",
    }

    def start_hypervisor(self) -> None:
        self.conn = libvirt.open(self.uri)
        self.host = str(self.conn.getHostname())
        self.virt_type = virt_type(self.conn)

    async def opened(self) -> None:
        await self.driver.list_instances()

    def config(self, **overrides: Any) -> dict[str, Any]:
        # NOTE: a diskless guest has no OS to answer an ACPI shutdown: stop falls back to
        # destroy after this long, as on a guest that ignores the request.
        return {**super().config(), "shutdown_timeout": 0.5, **overrides}

    def next_name(self) -> str:
        return f"{GUEST_PREFIX}contract-{uuid.uuid4().hex[:12]}"

    def domain_xml(self, name: str, metadata: str = "") -> str:
        return guest_xml(self.virt_type, name, metadata)
