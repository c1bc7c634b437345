"""An in-process XAPI test double speaking XAPI's real XML-RPC wire protocol.

It serves ``POST /`` on 127.0.0.1 (a free port) from a background thread, with
``methodName`` = ``Class.message`` and the session ref as the first parameter of
every call but the login. Replies are ``{"Status": "Success", "Value": ...}`` or
``{"Status": "Failure", "ErrorDescription": [code, ...]}``, so the real ``XenAPI``
SDK talks to it unchanged.

It enforces what the drivers rely on, in XAPI's order
(``ocaml/xapi/xapi_vm_lifecycle.ml`` ``check_operation_error``): an operation in
``blocked_operations`` fails with ``OPERATION_BLOCKED [vm_ref, stored reason]``
before anything else; then a wrong power state fails with
``VM_BAD_POWER_STATE [vm_ref, expected, actual]`` (lowercase, as XAPI's
``Record_util.power_to_string``); then templates, snapshots and control domains
are refused. A double that stored blocks without enforcing them would prove nothing.
"""

from __future__ import annotations

import copy
import socketserver
import threading
import uuid
import xmlrpc.client
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, Self
from xmlrpc.server import SimpleXMLRPCRequestHandler, SimpleXMLRPCServer

# NOTE: the vm_operations enum (ocaml/idl/datamodel_vm.ml); XAPI refuses other keys
# in blocked_operations when it unmarshals the map.
VM_OPERATIONS = frozenset(
    {
        "snapshot", "clone", "copy", "create_template", "revert", "checkpoint",
        "snapshot_with_quiesce", "provision", "start", "start_on", "pause", "unpause",
        "clean_shutdown", "clean_reboot", "hard_shutdown", "power_state_reset", "hard_reboot",
        "suspend", "csvm", "resume", "resume_on", "pool_migrate", "migrate_send",
        "get_boot_record", "send_sysrq", "send_trigger", "query_services", "shutdown",
        "call_plugin", "changing_memory_live", "awaiting_memory_live", "changing_dynamic_range",
        "changing_static_range", "changing_memory_limits", "changing_shadow_memory",
        "changing_shadow_memory_live", "changing_VCPUs", "changing_VCPUs_live",
        "changing_NVRAM", "assert_operation_valid", "data_source_op",
        "update_allowed_operations", "make_into_template", "import", "export",
        "metadata_export", "reverting", "destroy", "create_vtpm", "sysprep",
    }
)  # fmt: skip

# op -> (power states it may start from, in XAPI's order; the state it leaves)
_TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "start": (("Halted",), "Running"),
    "resume": (("Suspended",), "Running"),
    "suspend": (("Running",), "Suspended"),
    "clean_shutdown": (("Running",), "Halted"),
    "hard_shutdown": (("Paused", "Suspended", "Running"), "Halted"),
    "clean_reboot": (("Running",), "Running"),
    "hard_reboot": (("Paused", "Running"), "Running"),
    "pause": (("Running",), "Paused"),
    "unpause": (("Paused",), "Running"),
}
_NEEDS_PV_DRIVERS = frozenset({"clean_shutdown", "clean_reboot"})


class XapiFailure(Exception):
    """Raised inside a handler; becomes ``{"Status": "Failure", "ErrorDescription": ...}``."""

    def __init__(self, *description: str) -> None:
        super().__init__(*description)
        self.description = list(description)


@dataclass
class VmRecord:
    """The VM fields the double keeps; ``as_xapi`` renders them as XAPI's record struct."""

    uuid: str
    name_label: str
    power_state: str = "Halted"
    is_a_template: bool = False
    is_control_domain: bool = False
    is_a_snapshot: bool = False
    other_config: dict[str, str] = field(default_factory=dict)
    blocked_operations: dict[str, str] = field(default_factory=dict)
    resident_on: str = "OpaqueRef:NULL"
    metrics: str = "OpaqueRef:NULL"
    pv_drivers: bool = True

    def as_xapi(self) -> dict[str, Any]:
        return {
            "uuid": self.uuid,
            "name_label": self.name_label,
            "name_description": "",
            "power_state": self.power_state,
            "is_a_template": self.is_a_template,
            "is_control_domain": self.is_control_domain,
            "is_a_snapshot": self.is_a_snapshot,
            "other_config": dict(self.other_config),
            "blocked_operations": dict(self.blocked_operations),
            "resident_on": self.resident_on,
            "metrics": self.metrics,
            "domid": "-1" if self.power_state in ("Halted", "Suspended") else "1",
        }


class _Server(socketserver.ThreadingMixIn, SimpleXMLRPCServer):
    daemon_threads = True


class XapiDouble:
    """A one-host pool: ``add_vm`` VMs, ``start()``, point the SDK at ``url``, ``stop()``.

    ``calls`` lists every method name received (logins included), so a test can see
    which calls reached the "hypervisor". Usable as a context manager.
    """

    HOST_REF = "OpaqueRef:host-1"
    POOL_REF = "OpaqueRef:pool-1"

    def __init__(
        self, username: str = "root", password: str = "secret", hostname: str = "xen-1"
    ) -> None:
        self.username = username
        self.password = password
        self.hostname = hostname
        self.calls: list[str] = []
        self._vms: dict[str, VmRecord] = {}
        self._metrics: dict[str, dict[str, Any]] = {}
        self._sessions: set[str] = set()
        self._caller = ""
        self._lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.add_vm("Control domain on host: xen-1", power_state="Running", is_control_domain=True)

    # -- set-up and inspection ---------------------------------------------------------

    def add_vm(
        self,
        name_label: str,
        *,
        power_state: str = "Halted",
        vm_uuid: str | None = None,
        is_a_template: bool = False,
        is_a_snapshot: bool = False,
        is_control_domain: bool = False,
        other_config: dict[str, str] | None = None,
        blocked_operations: dict[str, str] | None = None,
        install_time: str = "20260101T12:00:00Z",
        pv_drivers: bool = True,
    ) -> str:
        """Add a VM and its metrics object; returns the VM's uuid."""
        vm_uuid = vm_uuid or str(uuid.uuid4())
        ref = f"OpaqueRef:{uuid.uuid4()}"
        metrics_ref = f"OpaqueRef:{uuid.uuid4()}"
        with self._lock:
            self._metrics[metrics_ref] = {
                "uuid": str(uuid.uuid4()),
                "install_time": xmlrpc.client.DateTime(install_time),
            }
            self._vms[ref] = VmRecord(
                uuid=vm_uuid,
                name_label=name_label,
                power_state=power_state,
                is_a_template=is_a_template,
                is_a_snapshot=is_a_snapshot,
                is_control_domain=is_control_domain,
                other_config=dict(other_config or {}),
                blocked_operations=dict(blocked_operations or {}),
                resident_on=(
                    self.HOST_REF if power_state in ("Running", "Paused") else "OpaqueRef:NULL"
                ),
                metrics=metrics_ref,
                pv_drivers=pv_drivers,
            )
        return vm_uuid

    def vm(self, vm_uuid: str) -> VmRecord:
        """A copy of the VM with this uuid, for assertions."""
        with self._lock:
            for record in self._vms.values():
                if record.uuid == vm_uuid:
                    return copy.deepcopy(record)
        raise KeyError(vm_uuid)

    def drop_sessions(self) -> None:
        """Forget every session, as a restarted XAPI does; callers get ``SESSION_INVALID``."""
        with self._lock:
            self._sessions.clear()

    @property
    def url(self) -> str:
        """``http://127.0.0.1:<port>/`` once started."""
        if self._server is None:
            raise RuntimeError("XapiDouble is not started")
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}/"

    # -- lifecycle ---------------------------------------------------------------------

    def start(self, port: int = 0) -> Self:
        """Listen on 127.0.0.1 (``port``, or a free one) and serve from a daemon thread.

        Restarting on the old port after ``stop`` models a XAPI that came back: VMs
        and sessions are kept.
        """
        server = _Server(
            ("127.0.0.1", port),
            requestHandler=SimpleXMLRPCRequestHandler,
            logRequests=False,
            allow_none=True,
        )
        for name, handler in self._handlers().items():
            server.register_function(self._wire(name, handler), name)
        self._server = server
        # NOTE: a short poll interval, so stop() (server.shutdown) returns at once.
        self._thread = threading.Thread(
            target=server.serve_forever, args=(0.01,), name="xapi-double", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close the socket; ``url`` keeps no meaning afterwards."""
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- wire --------------------------------------------------------------------------

    def _wire(self, name: str, handler: Callable[..., Any]) -> Callable[..., dict[str, Any]]:
        def call(*params: Any) -> dict[str, Any]:
            with self._lock:
                self.calls.append(name)
                try:
                    if not name.startswith("session.login"):
                        if not params or params[0] not in self._sessions:
                            raise XapiFailure("SESSION_INVALID", str(params[0] if params else ""))
                        self._caller, params = params[0], params[1:]
                    value = handler(*params)
                except XapiFailure as failure:
                    return {"Status": "Failure", "ErrorDescription": failure.description}
                except TypeError as exc:
                    return {
                        "Status": "Failure",
                        "ErrorDescription": ["MESSAGE_PARAMETER_COUNT_MISMATCH", name, str(exc)],
                    }
            return {"Status": "Success", "Value": "" if value is None else value}

        return call

    def _handlers(self) -> dict[str, Callable[..., Any]]:
        handlers: dict[str, Callable[..., Any]] = {
            "session.login_with_password": self._login,
            "session.logout": self._logout,
            "VM.get_all_records": lambda: {ref: vm.as_xapi() for ref, vm in self._vms.items()},
            "VM.get_record": lambda ref: self._vm(ref).as_xapi(),
            "VM.get_by_uuid": self._by_uuid,
            "VM.get_power_state": lambda ref: self._vm(ref).power_state,
            "VM.get_blocked_operations": lambda ref: dict(self._vm(ref).blocked_operations),
            "VM.set_blocked_operations": self._set_blocked,
            "VM.add_to_blocked_operations": self._add_blocked,
            "VM.remove_from_blocked_operations": self._remove_blocked,
            "VM.start": lambda ref, start_paused, force: self._power(ref, "start", start_paused),
            "VM.resume": lambda ref, start_paused, force: self._power(ref, "resume", start_paused),
            "host.get_all_records": lambda: {self.HOST_REF: self._host_record()},
            "host.get_record": lambda ref: self._host(ref),
            "host.get_hostname": lambda ref: self._host(ref)["hostname"],
            "pool.get_all_records": lambda: {
                self.POOL_REF: {"uuid": "pool-1", "name_label": "", "master": self.HOST_REF}
            },
            "VM_metrics.get_all_records": lambda: dict(self._metrics),
            "VM_metrics.get_record": self._metrics_record,
            "VM_metrics.get_install_time": lambda ref: self._metrics_record(ref)["install_time"],
        }
        for op in ("suspend", "clean_shutdown", "hard_shutdown", "clean_reboot", "hard_reboot",
                   "pause", "unpause"):  # fmt: skip
            handlers[f"VM.{op}"] = lambda ref, op=op: self._power(ref, op, False)
        return handlers

    # -- handlers (called with self._lock held) ----------------------------------------

    def _login(self, username: str, password: str, version: str, originator: str) -> str:
        if username != self.username or password != self.password:
            raise XapiFailure("SESSION_AUTHENTICATION_FAILED", username, "Authentication failure")
        session = f"OpaqueRef:{uuid.uuid4()}"
        self._sessions.add(session)
        return session

    def _logout(self) -> None:
        self._sessions.discard(self._caller)

    def _vm(self, ref: str) -> VmRecord:
        vm = self._vms.get(ref)
        if vm is None:
            raise XapiFailure("HANDLE_INVALID", "VM", ref)
        return vm

    def _by_uuid(self, vm_uuid: str) -> str:
        for ref, vm in self._vms.items():
            if vm.uuid == vm_uuid:
                return ref
        raise XapiFailure("UUID_INVALID", "VM", vm_uuid)

    def _host_record(self) -> dict[str, Any]:
        return {"uuid": "host-1", "name_label": self.hostname, "hostname": self.hostname}

    def _host(self, ref: str) -> dict[str, Any]:
        if ref != self.HOST_REF:
            raise XapiFailure("HANDLE_INVALID", "host", ref)
        return self._host_record()

    def _metrics_record(self, ref: str) -> dict[str, Any]:
        if ref not in self._metrics:
            raise XapiFailure("HANDLE_INVALID", "VM_metrics", ref)
        return dict(self._metrics[ref])

    def _check_blocked_keys(self, keys: list[str]) -> None:
        unknown = sorted(set(keys) - VM_OPERATIONS)
        if unknown:
            raise XapiFailure("FIELD_TYPE_ERROR", "blocked_operations", ", ".join(unknown))

    def _set_blocked(self, ref: str, value: dict[str, str]) -> None:
        vm = self._vm(ref)
        self._check_blocked_keys(list(value))
        vm.blocked_operations = {str(k): str(v) for k, v in value.items()}

    def _add_blocked(self, ref: str, key: str, value: str) -> None:
        vm = self._vm(ref)
        self._check_blocked_keys([key])
        if key in vm.blocked_operations:
            raise XapiFailure("MAP_DUPLICATE_KEY", "VM", "blocked_operations", ref, key)
        vm.blocked_operations[key] = value

    def _remove_blocked(self, ref: str, key: str) -> None:
        self._vm(ref).blocked_operations.pop(key, None)

    def _power(self, ref: str, op: str, start_paused: bool) -> None:
        vm = self._vm(ref)
        if op in vm.blocked_operations:
            raise XapiFailure("OPERATION_BLOCKED", ref, vm.blocked_operations[op])
        allowed, after = _TRANSITIONS[op]
        if vm.power_state not in allowed:
            expected = ", ".join(state.lower() for state in allowed)
            raise XapiFailure("VM_BAD_POWER_STATE", ref, expected, vm.power_state.lower())
        if vm.is_a_template and not vm.is_a_snapshot:
            raise XapiFailure("VM_IS_TEMPLATE", ref, op)
        if vm.is_a_snapshot:
            raise XapiFailure("VM_IS_SNAPSHOT", ref, op)
        if vm.is_control_domain:
            raise XapiFailure("OPERATION_NOT_ALLOWED", "Operations on domain 0 are not allowed")
        if op in _NEEDS_PV_DRIVERS and not vm.pv_drivers:
            raise XapiFailure("VM_MISSING_PV_DRIVERS", ref)
        vm.power_state = "Paused" if start_paused and after == "Running" else after
        running = vm.power_state in ("Running", "Paused")
        vm.resident_on = self.HOST_REF if running else "OpaqueRef:NULL"
