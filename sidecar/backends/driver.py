"""The driver backend: Statelock itself serves Nova's server API from a hypervisor driver.

``DriverDispatcher`` executes the classified ``Action``: its name, its instance id
and its params, after the same classification, identity, policy, guard and audit
path as the upstream backend. It never reads the request's path or body again, so
what was decided is exactly what is executed. It serves the version documents, the
server list, detail and show, and the power actions (suspend, resume, os-start,
os-stop, reboot, pause, unpause); other Nova routes answer 501, paths outside
Nova's server API 404. As Nova does, a caller sees only its own project's
instances unless it is an admin (others get 404).

Driver errors are translated here: not found 404, invalid state or a boot refused
by the hypervisor 409, hypervisor unreachable 503.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import drivers
from drivers import Driver, DriverError, Instance
from sidecar.backends.base import ForwardResponse, IncomingRequest
from sidecar.backends.nova_views import server_view, versions
from sidecar.classify import Action
from sidecar.config import BackendConfig
from sidecar.errors import BackendError, NotFound, SidecarError, TargetUnresolved
from sidecar.identity import Subject
from sidecar.policy.input import Target

_DRIVER_STATUS = {
    "instance_not_found": 404, "invalid_state": 409, "operation_blocked": 409,
    "driver_unavailable": 503, "driver_config_error": 500,
}
POWER_ACTIONS = ("suspend", "resume", "os-start", "os-stop", "reboot", "pause", "unpause")
_SERVER_READS = ("list", "list_detail", "show")
_NOT_NOVA = ("unversioned", "unknown_route")


def translate(exc: DriverError) -> SidecarError:
    """The SidecarError a DriverError is answered with."""
    status = _DRIVER_STATUS.get(exc.code, 500)
    if status == 404:
        return NotFound(str(exc))
    return BackendError(str(exc), exc.code, status)


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _response(status: int, doc: Any | None) -> ForwardResponse:
    body = b"" if doc is None else json.dumps(doc).encode()
    headers = [("Content-Type", "application/json")] if doc is not None else []
    return ForwardResponse(status, headers, _one(body), length=len(body))


class DriverHandle:
    """The driver of a driver backend: built and checked in ``start``, closed in ``close``."""

    def __init__(self, name: str, settings: dict[str, Any]) -> None:
        self.name = name
        self._settings = settings
        self._driver: Driver | None = None

    @property
    def driver(self) -> Driver:
        """The started driver; BackendError (503) before ``start``."""
        if self._driver is None:
            raise BackendError("driver backend is not started", "driver_unavailable", 503)
        return self._driver

    async def call(self, fn: Callable[[Driver], Awaitable[Any]]) -> Any:
        """Run one driver call, its DriverError translated."""
        try:
            return await fn(self.driver)
        except DriverError as exc:
            raise translate(exc) from exc

    async def start(self) -> None:
        try:
            self._driver = drivers.create(self.name, self._settings)
            await self._driver.list_instances()
        except DriverError as exc:
            raise translate(exc) from exc

    async def close(self) -> None:
        if self._driver is not None:
            await self._driver.close()
            self._driver = None


class DriverDispatcher:
    """A Dispatcher executing classified actions on a driver (see module docstring)."""

    needs_subject = True

    def __init__(self, handle: DriverHandle, admin_role: str = "admin") -> None:
        self._handle = handle
        self._admin_role = admin_role

    def _may_see(self, subject: Subject | None, inst: Instance) -> bool:
        return subject is not None and (subject.has_role(self._admin_role)
                                        or inst.project_id == subject.project_id)

    async def _visible(self, instance_id: str, subject: Subject | None) -> Instance:
        inst: Instance = await self._handle.call(lambda d: d.get_instance(instance_id))
        if not self._may_see(subject, inst):
            raise NotFound(f"Instance {instance_id} could not be found.")
        return inst

    async def dispatch(self, request: IncomingRequest, action: Action,
                       subject: Subject | None) -> ForwardResponse:
        """Serve ``action`` for ``subject``; ``request`` only gives the base URL for links."""
        base = f"{request.scheme}://{request.host}"
        if action.kind == "read":
            return await self._read(action, subject, base)
        if action.kind == "state_change" and action.name in POWER_ACTIONS \
                and action.instance_id is not None:
            await self._visible(action.instance_id, subject)
            await self.power(action.instance_id, action.name, action.params)
            return _response(202, None)
        raise BackendError(f"The {self._handle.name} driver backend does not implement "
                           f"'{action.name}'.", "not_implemented", 501)

    async def _read(self, action: Action, subject: Subject | None, base: str) -> ForwardResponse:
        if action.name == "version_document" or (action.name == "unversioned" and action.path == "/"):
            return _response(200, versions(base, action.name == "version_document"))
        if action.name in _NOT_NOVA or action.name not in _SERVER_READS:
            if action.name in _NOT_NOVA or action.instance_id is None:
                raise NotFound("The resource could not be found.")
            raise BackendError(f"The {self._handle.name} driver backend does not serve "
                               f"{action.name}.", "not_implemented", 501)
        if action.name == "show":
            if action.instance_id is None:
                raise NotFound("The resource could not be found.")
            inst = await self._visible(action.instance_id, subject)
            return _response(200, {"server": server_view(inst, base, True)})
        found: list[Instance] = await self._handle.call(lambda d: d.list_instances())
        detail = action.name == "list_detail"
        return _response(200, {"servers": [server_view(i, base, detail) for i in found
                                           if self._may_see(subject, i)]})

    async def power(self, instance_id: str, name: str, params: Any = None) -> None:
        """Run one power action by its Nova name (``reboot`` reads ``params["type"]``)."""
        if name == "reboot":
            hard = isinstance(params, dict) and str(params.get("type", "")).upper() == "HARD"
            await self._handle.call(lambda d: d.reboot(instance_id, hard=hard))
            return
        ops: dict[str, Callable[[Driver], Awaitable[None]]] = {
            "suspend": lambda d: d.suspend(instance_id), "resume": lambda d: d.resume(instance_id),
            "os-start": lambda d: d.start(instance_id), "os-stop": lambda d: d.stop(instance_id),
            "pause": lambda d: d.pause(instance_id), "unpause": lambda d: d.unpause(instance_id)}
        op = ops.get(name)
        if op is None:
            raise BackendError(f"The {self._handle.name} driver backend does not implement '{name}'.",
                               "not_implemented", 501)
        await self._handle.call(op)


class DriverInstanceOps:
    """InstanceOps asking the driver every time (nothing is cached)."""

    resolves_cheaply = True

    def __init__(self, handle: DriverHandle, dispatcher: DriverDispatcher) -> None:
        self._handle = handle
        self._dispatcher = dispatcher

    async def _instance(self, instance_id: str) -> Instance:
        inst: Instance = await self._handle.call(lambda d: d.get_instance(instance_id))
        return inst

    async def resolve(self, instance_id: str) -> Target:
        try:
            inst = await self._instance(instance_id)
        except BackendError as exc:
            raise TargetUnresolved(f"cannot look up instance {instance_id}: {exc.message}") from exc
        return Target(inst.id, inst.project_id, inst.host)

    async def status(self, instance_id: str) -> str:
        return (await self._instance(instance_id)).nova_status

    async def power(self, instance_id: str, operation: str) -> int:
        await self._dispatcher.power(instance_id, operation)
        return 202

    async def set_boot_block(self, instance_id: str, blocked: bool, reason: str | None,
                             lock_id: str | None = None) -> dict[str, Any] | None:
        await self._handle.call(lambda d: d.set_boot_block(instance_id, blocked, reason, lock_id=lock_id))
        return None

    def forget_host(self, instance_id: str) -> None:
        """Nothing is cached: the driver is asked every time."""

    async def knows(self, scope: str, target: str) -> str | None:
        found: list[Instance] = await self._handle.call(lambda d: d.list_instances())
        attribute = "project_id" if scope == "project" else "host"
        if any(getattr(i, attribute) == target for i in found):
            return None
        return f"no instance of the {self._handle.name} hypervisor has {scope} {target!r}"


class DriverBackend:
    """The driver Backend: one driver, its dispatcher and instance operations."""

    def __init__(self, cfg: BackendConfig, admin_role: str = "admin") -> None:
        settings = dict(cfg.driver)
        self.handle = DriverHandle(str(settings.pop("name")), settings)
        self.dispatcher = DriverDispatcher(self.handle, admin_role)
        self.ops = DriverInstanceOps(self.handle, self.dispatcher)

    @property
    def driver(self) -> Driver:
        """The started driver (for tests and diagnostics)."""
        return self.handle.driver

    async def start(self) -> None:
        await self.handle.start()

    async def close(self) -> None:
        await self.handle.close()
