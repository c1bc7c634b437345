"""The XenAPI driver (PyPI ``XenAPI``): one XML-RPC session, calls serialised in worker threads.

Config keys: ``url`` (the pool master, e.g. ``https://xen1/``), ``username``,
``password``, ``default_owner: {project_id, user_id}``, ``host`` (default: the
hostname of the host a VM runs on, else the pool master's), ``timeout`` (seconds
per XML-RPC call, default 60) and ``verify_tls`` (default true).

XAPI enforces power-state rules and ``blocked_operations`` itself, so this driver
asks it and translates its ``Failure`` codes. Owners come from the VM's
``other_config`` keys ``statelock_project_id`` and ``statelock_user_id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
import ssl
import threading
import urllib.parse
import xmlrpc.client
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import XenAPI

from drivers import _config
from drivers._xapi_transport import TimeoutSafeTransport, TimeoutTransport, redacted
from drivers.base import (
    DEFAULT_BLOCK_REASON,
    UNKNOWN_CREATED,
    Driver,
    DriverConfigError,
    DriverError,
    DriverUnavailable,
    Instance,
    InstanceNotFound,
    InvalidState,
    OperationBlocked,
    PowerState,
)

_T = TypeVar("_T")

_CONFIG_KEYS = frozenset(
    {"url", "username", "password", "default_owner", "host", "timeout", "verify_tls"}
)
_API_VERSION = "2.3"
_ORIGINATOR = "statelock"
_NULL_REF = "OpaqueRef:NULL"

BOOT_BLOCK_OPERATIONS = ("start", "start_on", "resume", "resume_on", "unpause", "hard_reboot")
"""The ``vm_operations`` a boot block puts in ``blocked_operations``.

Everything that can make a halted, suspended or paused VM run: ``hard_reboot`` is
allowed from Paused in XAPI, so it is blocked as well. Statelock owns these keys:
lifting the block removes them whoever set them.
"""

_POWER_STATES = {
    "Running": PowerState.RUNNING,
    "Halted": PowerState.SHUTDOWN,
    "Paused": PowerState.PAUSED,
    "Suspended": PowerState.SUSPENDED,
}
# NOTE: when clean_shutdown cannot work (no PV drivers, no ACPI support), stop falls
# back to hard_shutdown as Nova's XenAPI driver did.
_CLEAN_SHUTDOWN_UNSUPPORTED = frozenset(
    {"VM_MISSING_PV_DRIVERS", "VM_LACKS_FEATURE", "VM_LACKS_FEATURE_SHUTDOWN"}
)
_XAPI_TIME = re.compile(r"^(\d{4})(\d{2})(\d{2})T(\d{2}):(\d{2}):(\d{2})")


def _rfc3339(value: object) -> str:
    """XAPI's ``dateTime.iso8601`` (``20260101T12:00:00Z``) as RFC 3339."""
    match = _XAPI_TIME.match(str(getattr(value, "value", value)))
    if not match:
        return UNKNOWN_CREATED
    year, month, day, hour, minute, second = match.groups()
    return f"{year}-{month}-{day}T{hour}:{minute}:{second}Z"


def _is_instance(record: Mapping[str, Any]) -> bool:
    return not (
        record.get("is_a_template")
        or record.get("is_control_domain")
        or record.get("is_a_snapshot")
    )


class XenAPIDriver(Driver):
    """The VMs of one XAPI pool (templates, snapshots and control domains left out).

    A boot block is XAPI's own ``blocked_operations`` (see ``BOOT_BLOCK_OPERATIONS``),
    so the hypervisor refuses a blocked start or resume from any client, with the
    stored reason in its ``OPERATION_BLOCKED`` error. Only vm-admin and above may
    change it, so the configured user needs that role.
    """

    name = "xenapi"

    def __init__(self, config: Mapping[str, Any]) -> None:
        _config.check_keys("xenapi driver", config, _CONFIG_KEYS)
        self._url = _config.required_str("xenapi", config, "url")
        if urllib.parse.urlsplit(self._url).scheme not in ("http", "https"):
            raise DriverConfigError("xenapi driver: url must be http:// or https://")
        self._username = _config.required_str("xenapi", config, "username")
        self._password = _config.optional_str("xenapi", config, "password") or ""
        self._default_owner = _config.default_owner("xenapi", config)
        self._host = _config.optional_str("xenapi", config, "host")
        self._timeout = _config.positive_float("xenapi", config, "timeout", 60.0)
        verify_tls = config.get("verify_tls", True)
        if not isinstance(verify_tls, bool):
            raise DriverConfigError("xenapi driver: verify_tls must be true or false")
        self._verify_tls = verify_tls
        # NOTE: xmlrpc.client.ServerProxy is not thread-safe; one lock serialises all
        # calls on the session, including the login.
        self._lock = threading.Lock()
        self._session: Any = None
        self._closed = False

    def __repr__(self) -> str:
        return f"XenAPIDriver(url={redacted(self._url)!r}, username={self._username!r})"

    # -- session -----------------------------------------------------------------------

    def _transport(self) -> xmlrpc.client.Transport:
        if urllib.parse.urlsplit(self._url).scheme == "https":
            context = ssl.create_default_context()
            if not self._verify_tls:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            return TimeoutSafeTransport(self._timeout, context)
        return TimeoutTransport(self._timeout)

    def _logged_in(self) -> Any:
        """The session's ``xenapi`` proxy, logging in first if needed; hold ``_lock``."""
        if self._closed:
            raise DriverUnavailable("xenapi driver is closed")
        if self._session is None:
            session = XenAPI.Session(self._url, transport=self._transport())
            session.xenapi.login_with_password(
                self._username, self._password, _API_VERSION, _ORIGINATOR
            )
            self._session = session
        return self._session.xenapi

    def _call(self, instance_id: str | None, work: Callable[[Any], _T]) -> _T:
        """Run ``work(xenapi)`` on the session, translating every failure where it enters."""
        with self._lock:
            try:
                return work(self._logged_in())
            except XenAPI.Failure as exc:
                raise self._translate(exc, instance_id) from exc
            except xmlrpc.client.Fault as exc:
                # NOTE: the SDK raises a Fault after three SESSION_INVALID re-logins.
                self._session = None
                raise DriverUnavailable(
                    f"XAPI at {redacted(self._url)}: {exc.faultString}", instance_id=instance_id
                ) from exc
            except xmlrpc.client.ProtocolError as exc:
                raise DriverUnavailable(
                    f"XAPI at {redacted(self._url)} answered HTTP {exc.errcode} {exc.errmsg}",
                    instance_id=instance_id,
                ) from exc
            except (OSError, http.client.HTTPException) as exc:
                raise DriverUnavailable(
                    f"cannot reach XAPI at {redacted(self._url)}: {exc}", instance_id=instance_id
                ) from exc

    def _translate(self, exc: Any, instance_id: str | None) -> DriverError:
        details = [str(detail) for detail in exc.details]
        code = details[0] if details else "UNKNOWN"
        params = details[1:]
        if code == "OPERATION_BLOCKED":
            reason = params[1] if len(params) > 1 else ""
            return OperationBlocked(
                f"XAPI refused: the operation is blocked on instance {instance_id}: {reason}",
                instance_id=instance_id,
                reason=reason,
            )
        if code in ("HANDLE_INVALID", "UUID_INVALID"):
            return InstanceNotFound(f"instance {instance_id} not found", instance_id=instance_id)
        if code == "VM_BAD_POWER_STATE":
            expected, actual = [*params, "?", "?"][1:3]
            return InvalidState(
                f"instance {instance_id} is {actual}; XAPI needs {expected}",
                instance_id=instance_id,
            )
        if code == "OTHER_OPERATION_IN_PROGRESS":
            busy = params[0] if params else "another operation"
            return InvalidState(
                f"instance {instance_id} is busy with {busy}", instance_id=instance_id
            )
        if code in ("SESSION_AUTHENTICATION_FAILED", "HOST_IS_SLAVE", "RBAC_PERMISSION_DENIED"):
            if code != "RBAC_PERMISSION_DENIED":
                self._session = None
            hint = {
                "SESSION_AUTHENTICATION_FAILED": f"XAPI rejected the password of {self._username}",
                "HOST_IS_SLAVE": f"url must be the pool master ({', '.join(params)})",
                "RBAC_PERMISSION_DENIED": f"{self._username} lacks the XAPI role: {params}",
            }[code]
            return DriverConfigError(f"xenapi driver: {hint} ({code})", instance_id=instance_id)
        return DriverError(f"XAPI failure: {details}", instance_id=instance_id)

    # -- reading -----------------------------------------------------------------------

    def _vm(self, api: Any, instance_id: str) -> tuple[str, dict[str, Any]]:
        ref = str(api.VM.get_by_uuid(instance_id.lower()))
        record = dict(api.VM.get_record(ref))
        if not _is_instance(record):
            raise InstanceNotFound(
                f"instance {instance_id} not found (a template, snapshot or control domain)",
                instance_id=instance_id,
            )
        return ref, record

    def _master_hostname(self, api: Any, hosts: Mapping[str, Any]) -> str:
        for pool in dict(api.pool.get_all_records()).values():
            master = hosts.get(str(pool.get("master", "")))
            if master is not None:
                return str(master.get("hostname", ""))
        return ""

    def _hostname(self, api: Any, record: Mapping[str, Any], hosts: Mapping[str, Any]) -> str:
        if self._host:
            return self._host
        resident = hosts.get(str(record.get("resident_on", _NULL_REF)))
        if resident is not None:
            return str(resident.get("hostname", ""))
        return self._master_hostname(api, hosts)

    def _instance(self, record: Mapping[str, Any], hostname: str, created: str) -> Instance:
        other = record.get("other_config") or {}
        project_id, user_id = other.get("statelock_project_id"), other.get("statelock_user_id")
        if not (project_id and user_id):
            project_id = self._default_owner.project_id
            user_id = self._default_owner.user_id
        blocked = record.get("blocked_operations") or {}
        reasons = [str(blocked[op]) for op in BOOT_BLOCK_OPERATIONS if op in blocked]
        return Instance(
            id=str(record["uuid"]).lower(),
            name=str(record.get("name_label", "")),
            power_state=_POWER_STATES.get(str(record.get("power_state")), PowerState.NOSTATE),
            project_id=str(project_id),
            user_id=str(user_id),
            host=hostname,
            boot_blocked=bool(reasons),
            boot_block_reason=reasons[0] if reasons else None,
            created=created,
        )

    def _list(self, api: Any) -> list[Instance]:
        records = dict(api.VM.get_all_records())
        hosts = dict(api.host.get_all_records())
        metrics = dict(api.VM_metrics.get_all_records())
        instances = []
        for record in records.values():
            if not _is_instance(record):
                continue
            vm_metrics = metrics.get(str(record.get("metrics", _NULL_REF))) or {}
            created = _rfc3339(vm_metrics.get("install_time", ""))
            instances.append(self._instance(record, self._hostname(api, record, hosts), created))
        return sorted(instances, key=lambda instance: (instance.name, instance.id))

    def _get(self, api: Any, instance_id: str) -> Instance:
        _ref, record = self._vm(api, instance_id)
        hosts = dict(api.host.get_all_records())
        try:
            created = _rfc3339(api.VM_metrics.get_install_time(record.get("metrics", _NULL_REF)))
        except XenAPI.Failure:
            created = UNKNOWN_CREATED  # a halted VM may have no metrics object
        return self._instance(record, self._hostname(api, record, hosts), created)

    async def list_instances(self) -> list[Instance]:
        """Every VM that is not a template, snapshot or control domain, sorted by name."""
        return await asyncio.to_thread(self._call, None, self._list)

    async def get_instance(self, instance_id: str) -> Instance:
        """The VM with this uuid; ``InstanceNotFound`` if none or not an instance."""
        return await asyncio.to_thread(
            self._call, instance_id, lambda api: self._get(api, instance_id)
        )

    # -- power operations --------------------------------------------------------------

    async def _on_vm(self, instance_id: str, action: Callable[[Any, str], object]) -> None:
        def work(api: Any) -> None:
            ref, _record = self._vm(api, instance_id)
            action(api, ref)

        await asyncio.to_thread(self._call, instance_id, work)

    async def suspend(self, instance_id: str) -> None:
        """``VM.suspend``: Running -> Suspended."""
        await self._on_vm(instance_id, lambda api, ref: api.VM.suspend(ref))

    async def resume(self, instance_id: str) -> None:
        """``VM.resume(vm, start_paused=False, force=False)``: Suspended -> Running."""
        await self._on_vm(instance_id, lambda api, ref: api.VM.resume(ref, False, False))

    async def start(self, instance_id: str) -> None:
        """``VM.start(vm, start_paused=False, force=False)``: Halted -> Running only.

        Unlike libvirt, XAPI does not start a Suspended VM: that is ``InvalidState``.
        """
        await self._on_vm(instance_id, lambda api, ref: api.VM.start(ref, False, False))

    async def stop(self, instance_id: str) -> None:
        """``VM.clean_shutdown``, or ``VM.hard_shutdown`` when the guest can't shut down cleanly.

        A Paused VM is hard-shut-down at once; Halted or Suspended is ``InvalidState``.
        """

        def shut_down(api: Any, ref: str) -> None:
            if api.VM.get_power_state(ref) == "Paused":
                api.VM.hard_shutdown(ref)
                return
            try:
                api.VM.clean_shutdown(ref)
            except XenAPI.Failure as exc:
                if not exc.details or exc.details[0] not in _CLEAN_SHUTDOWN_UNSUPPORTED:
                    raise
                api.VM.hard_shutdown(ref)

        await self._on_vm(instance_id, shut_down)

    async def reboot(self, instance_id: str, hard: bool = False) -> None:
        """``VM.clean_reboot`` (Running) or, when ``hard``, ``VM.hard_reboot`` (Running, Paused)."""
        if hard:
            await self._on_vm(instance_id, lambda api, ref: api.VM.hard_reboot(ref))
        else:
            await self._on_vm(instance_id, lambda api, ref: api.VM.clean_reboot(ref))

    async def pause(self, instance_id: str) -> None:
        """``VM.pause``: Running -> Paused."""
        await self._on_vm(instance_id, lambda api, ref: api.VM.pause(ref))

    async def unpause(self, instance_id: str) -> None:
        """``VM.unpause``: Paused -> Running."""
        await self._on_vm(instance_id, lambda api, ref: api.VM.unpause(ref))

    async def set_boot_block(
        self, instance_id: str, blocked: bool, reason: str | None, *, lock_id: str | None = None
    ) -> None:
        """Put ``BOOT_BLOCK_OPERATIONS`` into the VM's ``blocked_operations``, or take them out.

        Other keys (e.g. a ``destroy`` block) are kept. Idempotent.
        """
        stored = reason or DEFAULT_BLOCK_REASON

        def update(api: Any, ref: str) -> None:
            # NOTE: one set_blocked_operations call rather than six add/remove calls: it
            # never leaves a half-applied block, and XAPI's add_to_* refuses existing keys.
            current = {str(k): str(v) for k, v in dict(api.VM.get_blocked_operations(ref)).items()}
            wanted = {k: v for k, v in current.items() if k not in BOOT_BLOCK_OPERATIONS}
            if blocked:
                wanted.update(dict.fromkeys(BOOT_BLOCK_OPERATIONS, stored))
            if wanted != current:
                api.VM.set_blocked_operations(ref, wanted)

        await self._on_vm(instance_id, update)

    async def close(self) -> None:
        """Log the session out; later calls raise ``DriverUnavailable``."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            session, self._session = self._session, None
            if session is not None:
                # NOTE: a failed logout is harmless: XAPI drops idle sessions by itself.
                with contextlib.suppress(
                    XenAPI.Failure, xmlrpc.client.Error, OSError, http.client.HTTPException
                ):
                    session.xenapi.session.logout()
