"""The XenAPI driver in the contract suite, through the real SDK against the XAPI double."""

from __future__ import annotations

from typing import Any

from drivers import Driver, PowerState
from drivers.xenapi import XenAPIDriver
from tests.support.driver_harness import OWNER, DriverHarness
from tests.support.process import free_port
from tests.support.xapi_double import XapiDouble

PASSWORD = "s3cret-pw"
TEMPLATE = "0c9d1c2e-5a55-4d0e-9f35-3f5d5ad0e004"
SNAPSHOT = "0c9d1c2e-5a55-4d0e-9f35-3f5d5ad0e005"
UNKNOWN = "0c9d1c2e-0000-0000-0000-000000000000"

_P = PowerState
_XAPI_STATES = {_P.RUNNING: "Running", _P.PAUSED: "Paused", _P.SHUTDOWN: "Halted", _P.SUSPENDED: "Suspended"}
_POWER_STATES = {xapi_state: state for state, xapi_state in _XAPI_STATES.items()}


class XenAPIHarness(DriverHarness[XenAPIDriver]):
    """A ``XenAPIDriver`` on a fresh ``XapiDouble`` (``xapi``) holding a template and a snapshot.

    ``states`` are XAPI's four power states: it has no crashed or state-less VM.
    """

    name = "xenapi"
    driver_class = XenAPIDriver
    states = frozenset(_XAPI_STATES)
    starts_suspended = False  # XAPI's VM.start needs a Halted VM
    not_found_ids = (UNKNOWN, TEMPLATE, SNAPSHOT)
    unreachable_message = "cannot reach XAPI"
    bad_configs = (
        ({"uri": "http://x/"}, "unknown config key"),
        ({"url": "xen1"}, "http:// or https://"),
        ({"username": ""}, "username is required"),
        ({"verify_tls": "no"}, "verify_tls"),
        ({"timeout": "soon"}, "timeout"),
    )
    host = "xen-1"

    def __init__(self) -> None:
        super().__init__()
        self.xapi = XapiDouble(username="root", password=PASSWORD, hostname=self.host)
        self.xapi.add_vm("Debian 12", vm_uuid=TEMPLATE, is_a_template=True)
        self.xapi.add_vm("vm backup", vm_uuid=SNAPSHOT, is_a_template=True, is_a_snapshot=True)
        self._port = 0

    def start_hypervisor(self) -> None:
        self.xapi.start()

    def stop_hypervisor(self) -> None:
        self.xapi.stop()

    def config(self, **overrides: Any) -> dict[str, Any]:
        return {"url": self.xapi.url, "username": "root", "password": PASSWORD, "default_owner": OWNER,
                **overrides}

    def make(self, state: PowerState) -> str:
        return self.xapi.add_vm(self.next_name(), power_state=_XAPI_STATES[state])

    def hypervisor_state(self, instance_id: str) -> PowerState:
        return _POWER_STATES[self.xapi.vm(instance_id).power_state]

    def hypervisor_record(self, instance_id: str) -> object:
        return self.xapi.vm(instance_id)

    def unreachable(self) -> Driver:
        # NOTE: a loopback port nobody listens on: the connection is refused at once.
        return XenAPIDriver(self.config(url=f"http://127.0.0.1:{free_port()}/", timeout=5))

    def cut(self) -> None:
        self._port = int(self.xapi.url.rsplit(":", 1)[1].rstrip("/"))
        self.xapi.stop()

    def restore(self) -> None:
        self.xapi.start(self._port)
