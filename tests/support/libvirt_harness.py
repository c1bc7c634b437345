"""The libvirt driver in the contract suite, on libvirt's built-in ``test:///default`` hypervisor.

``test:///default`` keeps its state in the process and shares it between the
connections open at the same time; it starts fresh (one running persistent domain
called ``test``) once every connection is closed. So each harness opens its own
connection (``conn``) and driver, checks that they start from fresh state, and
closes both afterwards, undefining the domains it defined first. A harness for real
QEMU guests would subclass this one with its own ``uri``, ``domain_xml`` (a bootable
guest) and ``opened`` (a real host has other domains).
"""

from __future__ import annotations

import contextlib
import gc
import sys
import uuid
from typing import Any

import libvirt

from drivers import Driver, PowerState
from drivers.libvirt import LibvirtDriver
from tests.support.driver_harness import OWNER, DriverHarness

_P = PowerState
# (libvirt state, has a managed-save image) -> the power state that describes it
_HYPERVISOR_STATES = {
    (libvirt.VIR_DOMAIN_RUNNING, False): _P.RUNNING,
    (libvirt.VIR_DOMAIN_PAUSED, False): _P.PAUSED,
    (libvirt.VIR_DOMAIN_SHUTOFF, False): _P.SHUTDOWN,
    (libvirt.VIR_DOMAIN_SHUTOFF, True): _P.SUSPENDED,
}


class LibvirtHarness(DriverHarness[LibvirtDriver]):
    """A ``LibvirtDriver`` on ``uri``; ``make`` defines a new persistent domain and moves it with raw calls.

    ``states`` leaves out CRASHED and NOSTATE: the test hypervisor has no way to
    crash a domain or leave it in no state.
    """

    name = "libvirt"
    driver_class = LibvirtDriver
    uri = "test:///default"
    states = frozenset({_P.RUNNING, _P.PAUSED, _P.SHUTDOWN, _P.SUSPENDED})
    starts_suspended = True  # virDomainCreate restores the managed-save image
    not_found_ids = ("7a1f0c1e-9d3b-4c2a-8f5e-000000000000", "not-a-uuid")
    unreachable_message = "cannot connect"
    bad_configs = (
        ({"url": "test:///default"}, "unknown config key"),
        ({"default_owner": {"project_id": "p"}}, "user_id is required"),
        ({"shutdown_timeout": -1}, "shutdown_timeout"),
        ({"uri": 5}, "uri must be a string"),
    )
    exceptions = {
        "comes_back": "test:///default lives inside this process and cannot be taken away from a driver;"
        " reconnecting after a dropped connection is test_libvirt_driver.py::test_a_dead_connection_is_reopened",
    }

    conn: Any
    """The harness's own ``virConnect``, beside the driver's."""

    def __init__(self) -> None:
        super().__init__()
        self._defined: list[str] = []

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"uri": self.uri, "default_owner": OWNER, "shutdown_timeout": 5, **overrides}

    def start_hypervisor(self) -> None:
        # NOTE: pytest keeps the last failed test's exception for post-mortem debugging
        # (sys.last_value); its traceback holds that test's domain objects, and through
        # them test:///default's state: without this, one failure fails every later setup.
        sys.last_type = sys.last_value = sys.last_traceback = None
        gc.collect()
        self.conn = libvirt.open(self.uri)
        self.host = str(self.conn.getHostname())

    async def opened(self) -> None:
        instances = await self.driver.list_instances()
        assert [(i.name, i.power_state, i.boot_blocked) for i in instances] == [
            ("test", PowerState.RUNNING, False)
        ], f"{self.uri} did not start fresh: a connection from an earlier test is open"

    def stop_hypervisor(self) -> None:
        for instance_id in self._defined:
            with contextlib.suppress(libvirt.libvirtError):
                dom = self.domain(instance_id)
                if dom.isActive():
                    dom.destroy()
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        self.conn.close()
        # NOTE: a domain object kept alive by a reference cycle (an exception's
        # traceback, say) keeps its connection, and so test:///default's state, alive.
        gc.collect()

    def domain_xml(self, name: str, metadata: str = "") -> str:
        """A minimal domain definition with a new UUID and ``metadata`` inside ``<metadata>``."""
        return (
            f"<domain type='test'><name>{name}</name><uuid>{uuid.uuid4()}</uuid>"
            "<memory>1024</memory><os><type>hvm</type></os>"
            f"<metadata>{metadata}</metadata></domain>"
        )

    def domain(self, instance_id: str) -> Any:
        """The libvirt domain, through the harness's own connection."""
        return self.conn.lookupByUUIDString(instance_id)

    def define(self, name: str | None = None, metadata: str = "") -> str:
        """Define a persistent, shut-off domain; returns its UUID."""
        xml = self.domain_xml(name or self.next_name(), metadata)
        instance_id = str(self.conn.defineXML(xml).UUIDString()).lower()
        self._defined.append(instance_id)
        return instance_id

    def make(self, state: PowerState) -> str:
        instance_id = self.define()
        dom = self.domain(instance_id)
        if state is not PowerState.SHUTDOWN:
            dom.create()
        if state is PowerState.PAUSED:
            dom.suspend()
        elif state is PowerState.SUSPENDED:
            dom.managedSave(0)
        return instance_id

    def hypervisor_state(self, instance_id: str) -> PowerState:
        """SUSPENDED is a shut-off domain with a managed-save image (Nova's suspend)."""
        dom = self.domain(instance_id)
        key = (dom.state()[0], bool(dom.hasManagedSaveImage(0)))
        if key not in _HYPERVISOR_STATES:
            raise AssertionError(f"libvirt reports (state, managed save) {key}: no power state fits")
        return _HYPERVISOR_STATES[key]

    def hypervisor_record(self, instance_id: str) -> object:
        dom = self.domain(instance_id)
        return (
            tuple(dom.state()),
            dom.hasManagedSaveImage(0),
            dom.autostart(),
            dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE),
        )

    def unreachable(self) -> Driver:
        return LibvirtDriver({"uri": "test:///nonexistent/statelock.xml"})
