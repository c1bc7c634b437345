"""The libvirt driver (libvirt-python): one lazily opened connection, calls in worker threads.

Config keys: ``uri`` (default ``test:///default``), ``default_owner: {project_id,
user_id}`` (for domains whose metadata names no owner), ``host`` (default: the
connection's hostname) and ``shutdown_timeout`` (seconds a guest gets to shut down
before ``stop`` destroys it; default 60, 0 destroys at once).

Suspend is Nova's: ``virDomainManagedSave``, so the domain is shut off with a
managed-save image and the next ``virDomainCreate`` restores it. Instance ids are
domain UUIDs; owners and boot blocks live in the domain metadata
(see ``drivers._libvirt_metadata``), and a boot block is also written into the
domain XML of the managed-save image, which is what a restore boots from.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Iterator, Mapping
from typing import Any

import libvirt

from drivers import _config, _libvirt_bootblock
from drivers._libvirt_errors import discard_libvirt_error, translate, valid_uuid
from drivers._rules import Operation, check_transition
from drivers.base import (
    DEFAULT_BLOCK_REASON,
    UNKNOWN_CREATED,
    Driver,
    DriverUnavailable,
    Instance,
    InstanceNotFound,
    PowerState,
)

_CONFIG_KEYS = frozenset({"uri", "default_owner", "host", "shutdown_timeout"})
_POLL_SECONDS = 0.5

# NOTE: as Nova maps them (nova/virt/libvirt/host.py); SHUTOFF with a managed-save
# image is refined to SUSPENDED in _power_state.
_STATES = {
    libvirt.VIR_DOMAIN_NOSTATE: PowerState.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.SUSPENDED,
}
class LibvirtDriver(Driver):
    """Domains of one libvirt connection as Nova-style instances.

    A boot block is a record (``<statelock:bootblock>``) that this driver honours,
    refusing start, resume, unpause and hard reboot with ``OperationBlocked``; it
    also turns the domain's autostart off while blocked (and back on when lifted).
    libvirt itself does not read the record: ``virsh start`` or any other client
    would restore a managed save whatever it says, unless Statelock's qemu hook is
    installed on the host (``statelock hypervisor install-hook``, see
    ``drivers.libvirt_hook``). With it, libvirt refuses ``prepare``/``restore``
    of a blocked domain, and this driver reports such a refusal as
    ``OperationBlocked`` too.
    """

    name = "libvirt"

    def __init__(self, config: Mapping[str, Any]) -> None:
        _config.check_keys("libvirt driver", config, _CONFIG_KEYS)
        self._uri = _config.optional_str("libvirt", config, "uri") or "test:///default"
        self._default_owner = _config.default_owner("libvirt", config)
        self._host = _config.optional_str("libvirt", config, "host")
        self._shutdown_timeout = _config.positive_float("libvirt", config, "shutdown_timeout", 60.0)
        self._lock = threading.Lock()
        self._conn: Any = None
        self._hostname = ""
        self._closed = False

    # -- connection --------------------------------------------------------------------

    async def raw_connection(self) -> Any:
        """The open ``libvirt.virConnect`` (opening it if needed), for tests and diagnostics.

        Calls on it block: make them from a worker thread in production code.
        """
        return await asyncio.to_thread(self._connection)

    def _connection(self) -> Any:
        with self._lock:
            if self._closed:
                raise DriverUnavailable("libvirt driver is closed")
            if self._conn is not None:
                try:
                    if self._conn.isAlive():
                        return self._conn
                except libvirt.libvirtError:
                    pass
                self._forget_connection()
            # NOTE: libvirt prints every error to stderr by default; Nova silences it the
            # same way. The handler is process-wide, which is why it is re-set per open.
            libvirt.registerErrorHandler(discard_libvirt_error, None)
            try:
                conn = libvirt.open(self._uri)
            except libvirt.libvirtError as exc:
                raise DriverUnavailable(f"cannot connect to libvirt at {self._uri}: {exc}") from exc
            try:
                self._hostname = self._host or str(conn.getHostname())
            except libvirt.libvirtError as exc:
                conn.close()
                raise DriverUnavailable(f"libvirt at {self._uri}: {exc}") from exc
            self._conn = conn
            return conn

    def _forget_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.close()

    @contextlib.contextmanager
    def _translated(self, instance_id: str | None) -> Iterator[None]:
        """Turn a ``libvirtError`` raised inside the block into the ``DriverError`` family."""
        try:
            yield
        except libvirt.libvirtError as exc:
            error = translate(exc, instance_id, self._alive)
            if isinstance(error, DriverUnavailable):
                with self._lock:
                    self._forget_connection()
            raise error from exc

    def _alive(self) -> bool:
        try:
            return self._conn is not None and bool(self._conn.isAlive())
        except libvirt.libvirtError:
            return False

    # -- reading -----------------------------------------------------------------------

    def _domain(self, instance_id: str) -> Any:
        domain_uuid = valid_uuid(instance_id)
        conn = self._connection()
        with self._translated(instance_id):
            return conn.lookupByUUIDString(domain_uuid)

    def _power_state(self, dom: Any) -> PowerState:
        state = _STATES.get(int(dom.state()[0]), PowerState.NOSTATE)
        if state is PowerState.SHUTDOWN and not dom.isActive() and dom.hasManagedSaveImage(0):
            return PowerState.SUSPENDED
        return state

    def _instance(self, dom: Any) -> Instance:
        metadata = _libvirt_bootblock.read_metadata(dom)
        owner = metadata.owner or self._default_owner
        return Instance(
            id=str(dom.UUIDString()).lower(),
            name=str(dom.name()),
            power_state=self._power_state(dom),
            project_id=owner.project_id,
            user_id=owner.user_id,
            host=self._hostname,
            boot_blocked=metadata.boot_block_reason is not None,
            boot_block_reason=metadata.boot_block_reason,
            created=metadata.created or UNKNOWN_CREATED,
        )

    def _list(self) -> list[Instance]:
        conn = self._connection()
        instances = []
        with self._translated(None):
            domains = conn.listAllDomains(0)
        for dom in domains:
            try:
                with self._translated(None):
                    instances.append(self._instance(dom))
            except InstanceNotFound:
                continue  # undefined between the listing and the read
        return sorted(instances, key=lambda instance: (instance.name, instance.id))

    def _get(self, instance_id: str) -> Instance:
        dom = self._domain(instance_id)
        with self._translated(instance_id):
            return self._instance(dom)

    async def list_instances(self) -> list[Instance]:
        """Every domain, active or not, sorted by name."""
        return await asyncio.to_thread(self._list)

    async def get_instance(self, instance_id: str) -> Instance:
        """The domain with this UUID; ``InstanceNotFound`` if none (or not a UUID)."""
        return await asyncio.to_thread(self._get, instance_id)

    # -- power operations --------------------------------------------------------------

    def _checked(self, instance_id: str, operation: Operation) -> tuple[Any, PowerState]:
        """The domain and its power state, once the boot block and state rules allow it."""
        dom = self._domain(instance_id)
        with self._translated(instance_id):
            instance = self._instance(dom)
        check_transition(instance.id, instance.power_state, operation, instance.boot_block_reason)
        return dom, instance.power_state

    def _run(self, instance_id: str, operation: Operation) -> None:
        dom, state = self._checked(instance_id, operation)
        with self._translated(instance_id):
            if operation is Operation.SUSPEND:
                dom.managedSave(0)
            elif operation in (Operation.RESUME, Operation.START) and dom.isActive():
                dom.pMWakeup(0)  # NOTE: a PMSUSPENDED guest (S3) is still an active domain
            elif operation in (Operation.RESUME, Operation.START):
                dom.create()  # restores the managed-save image when there is one
            elif operation is Operation.REBOOT:
                dom.reboot(0)
            elif operation is Operation.HARD_REBOOT:
                self._hard_reboot(dom, state)
            elif operation is Operation.PAUSE:
                dom.suspend()
            elif operation is Operation.UNPAUSE:
                dom.resume()
            else:
                raise AssertionError(f"not a simple operation: {operation}")

    def _hard_reboot(self, dom: Any, state: PowerState) -> None:
        if state is PowerState.RUNNING:
            try:
                dom.reset(0)
                return
            except libvirt.libvirtError as exc:
                if exc.get_error_code() != libvirt.VIR_ERR_NO_SUPPORT:
                    raise
        dom.destroy()
        dom.create()

    async def suspend(self, instance_id: str) -> None:
        """Managed save (RAM to disk, domain shut off); RUNNING only."""
        await asyncio.to_thread(self._run, instance_id, Operation.SUSPEND)

    async def resume(self, instance_id: str) -> None:
        """Restore the managed save with ``virDomainCreate``; SUSPENDED only, not if blocked."""
        await asyncio.to_thread(self._run, instance_id, Operation.RESUME)

    async def start(self, instance_id: str) -> None:
        """``virDomainCreate`` from SHUTDOWN (or SUSPENDED, which restores); not if blocked."""
        await asyncio.to_thread(self._run, instance_id, Operation.START)

    async def reboot(self, instance_id: str, hard: bool = False) -> None:
        """Soft: ``virDomainReboot`` (RUNNING). Hard: reset, or destroy and create (PAUSED)."""
        operation = Operation.HARD_REBOOT if hard else Operation.REBOOT
        await asyncio.to_thread(self._run, instance_id, operation)

    async def pause(self, instance_id: str) -> None:
        """``virDomainSuspend``: vCPUs frozen, RAM kept; RUNNING only."""
        await asyncio.to_thread(self._run, instance_id, Operation.PAUSE)

    async def unpause(self, instance_id: str) -> None:
        """``virDomainResume``; PAUSED only, not if blocked."""
        await asyncio.to_thread(self._run, instance_id, Operation.UNPAUSE)

    def _begin_stop(self, instance_id: str) -> bool:
        """Ask a running guest to shut down (or destroy at once); True once it is off."""
        dom, state = self._checked(instance_id, Operation.STOP)
        with self._translated(instance_id):
            if state is PowerState.RUNNING and self._shutdown_timeout > 0:
                dom.shutdown()
            else:
                dom.destroy()
            return not dom.isActive()

    def _is_off(self, instance_id: str) -> bool:
        dom = self._domain(instance_id)
        with self._translated(instance_id):
            return not dom.isActive()

    def _force_off(self, instance_id: str) -> None:
        dom = self._domain(instance_id)
        with self._translated(instance_id):
            try:
                dom.destroy()
            except libvirt.libvirtError:
                if dom.isActive():
                    raise  # else the guest finished shutting down by itself meanwhile

    async def stop(self, instance_id: str) -> None:
        """Shut down: ACPI request, then destroy after ``shutdown_timeout`` seconds.

        PAUSED and CRASHED domains cannot answer a shutdown request and are destroyed
        at once. Returns when the domain is off.
        """
        if await asyncio.to_thread(self._begin_stop, instance_id):
            return
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self._shutdown_timeout
        while (remaining := deadline - loop.time()) > 0:
            await asyncio.sleep(min(_POLL_SECONDS, remaining))
            if await asyncio.to_thread(self._is_off, instance_id):
                return
        await asyncio.to_thread(self._force_off, instance_id)

    # -- boot block --------------------------------------------------------------------

    def _set_boot_block(
        self, instance_id: str, blocked: bool, reason: str | None, lock_id: str | None
    ) -> None:
        dom = self._domain(instance_id)
        with self._translated(instance_id):
            if blocked:
                _libvirt_bootblock.place(dom, reason or DEFAULT_BLOCK_REASON, lock_id)
            else:
                _libvirt_bootblock.lift(dom)

    async def set_boot_block(
        self, instance_id: str, blocked: bool, reason: str | None, *, lock_id: str | None = None
    ) -> None:
        """Store or remove ``<statelock:bootblock>``, clearing or restoring autostart.

        ``lock_id`` names the Statelock lock behind the block; it is recorded with
        it, and Statelock's qemu hook names it when it refuses a start. The record
        goes into the persistent definition (and the live one of a running
        domain) and into the domain XML of a managed-save image. Idempotent: a
        second block replaces the reason and lock id.
        """
        await asyncio.to_thread(self._set_boot_block, instance_id, blocked, reason, lock_id)

    async def close(self) -> None:
        """Close the connection; later calls raise ``DriverUnavailable``."""
        await asyncio.to_thread(self._close)

    def _close(self) -> None:
        with self._lock:
            self._closed = True
            self._forget_connection()
