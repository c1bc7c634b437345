"""The driver backend: Statelock itself serves Nova's server API from a hypervisor driver.

It answers ``GET /servers``, ``/servers/detail``, ``/servers/{id}`` and the power
actions of ``POST /servers/{id}/action`` (suspend, resume, os-start, os-stop,
reboot, pause, unpause) for the driver's instances, after the same classification,
policy, guard and audit path as the upstream backend. As Nova does, a caller sees
only its own project's instances unless it is an admin (others get 404).
Driver errors are translated here: not found 404, invalid state or a boot refused
by the hypervisor 409, hypervisor unreachable 503.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any

import drivers
from drivers import Driver, DriverError, Instance
from sidecar.backends.base import ForwardRequest, ForwardResponse, TargetInfo
from sidecar.config import BackendConfig
from sidecar.errors import BackendError, NotFound, SidecarError, TargetUnresolved
from sidecar.faults import fault_body
from sidecar.identity import Identifier, Subject

_SERVERS_RE = re.compile(r"^(?:/[^/]+)*?/v2(?:\.1)?(?:/[0-9a-f-]+)?/servers(?:/(?P<rest>.*))?$")
_DRIVER_STATUS = {
    "instance_not_found": 404, "invalid_state": 409, "operation_blocked": 409,
    "driver_unavailable": 503, "driver_config_error": 500,
}
_ACTIONS = ("suspend", "resume", "os-start", "os-stop", "reboot", "pause", "unpause")


def _translate(exc: DriverError) -> SidecarError:
    status = _DRIVER_STATUS.get(exc.code, 500)
    if status == 404:
        return NotFound(str(exc))
    return BackendError(str(exc), exc.code, status)


def server_view(inst: Instance, base_url: str, detail: bool) -> dict[str, Any]:
    """An instance in Nova's server representation (list entry or detail)."""
    links = [{"rel": "self", "href": f"{base_url}/v2.1/servers/{inst.id}"},
             {"rel": "bookmark", "href": f"{base_url}/servers/{inst.id}"}]
    if not detail:
        return {"id": inst.id, "name": inst.name, "links": links}
    return {
        "id": inst.id, "name": inst.name, "status": inst.nova_status,
        "tenant_id": inst.project_id, "user_id": inst.user_id,
        "created": inst.created, "updated": inst.created, "links": links,
        "addresses": {}, "metadata": {}, "image": "", "flavor": {},
        "hostId": "", "accessIPv4": "", "accessIPv6": "", "key_name": None,
        "OS-EXT-STS:vm_state": inst.vm_state, "OS-EXT-STS:power_state": inst.nova_power_state,
        "OS-EXT-STS:task_state": None, "OS-EXT-SRV-ATTR:host": inst.host,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": inst.host,
        "statelock:boot_blocked": inst.boot_blocked,
    }


def _versions(base: str, version: str) -> dict[str, Any]:
    """Nova's version documents, so clients' version discovery works against the driver."""
    doc = {"id": "v2.1", "status": "CURRENT", "version": "2.104", "min_version": "2.1",
           "updated": "2013-07-23T11:33:21Z", "links": [{"rel": "self", "href": f"{base}/v2.1/"}],
           "media-types": [{"base": "application/json",
                            "type": "application/vnd.openstack.compute+json;version=2.1"}]}
    return {"version": doc} if version else {"versions": [doc]}


async def _one(data: bytes) -> AsyncIterator[bytes]:
    yield data


def _response(status: int, doc: Any | None) -> ForwardResponse:
    body = b"" if doc is None else json.dumps(doc).encode()
    headers = [("Content-Type", "application/json")] if doc is not None else []
    return ForwardResponse(status, headers, _one(body), length=len(body))


def _fault(exc: SidecarError) -> ForwardResponse:
    return ForwardResponse(exc.status, [("Content-Type", "application/json; charset=UTF-8"),
                                        *exc.headers], _one(fault_body(exc.status, exc.message)))


class DriverBackend:
    """A Backend over a hypervisor driver (see module docstring)."""

    def __init__(self, cfg: BackendConfig, identifier: Identifier, admin_role: str = "admin") -> None:
        settings = dict(cfg.driver)
        self._name = str(settings.pop("name"))
        self._settings = settings
        self._identifier = identifier
        self._admin_role = admin_role
        self._driver: Driver | None = None

    @property
    def driver(self) -> Driver:
        if self._driver is None:
            raise BackendError("driver backend is not started", "driver_unavailable", 503)
        return self._driver

    async def start(self) -> None:
        try:
            self._driver = drivers.create(self._name, self._settings)
            await self._driver.list_instances()
        except DriverError as exc:
            raise _translate(exc) from exc

    async def close(self) -> None:
        if self._driver is not None:
            await self._driver.close()
            self._driver = None

    async def _instance(self, instance_id: str, subject: Subject | None) -> Instance:
        try:
            inst = await self.driver.get_instance(instance_id)
        except DriverError as exc:
            raise _translate(exc) from exc
        if subject is not None and not subject.has_role(self._admin_role) \
                and inst.project_id != subject.project_id:
            raise NotFound(f"Instance {instance_id} could not be found.")
        return inst

    async def forward(self, request: ForwardRequest) -> ForwardResponse:
        try:
            return await self._serve(request)
        except SidecarError as exc:
            if isinstance(exc, BackendError) and exc.status >= 500:
                raise
            return _fault(exc)

    async def _serve(self, request: ForwardRequest) -> ForwardResponse:
        path = request.path.partition("?")[0]
        base = f"{request.scheme}://{request.host}"
        if request.method in ("GET", "HEAD") and path.rstrip("/") in ("", "/v2.1", "/v2"):
            return _response(200, _versions(base, path.strip("/")))
        m = _SERVERS_RE.match(path)
        if m is None:
            raise NotFound("The resource could not be found.")
        subject = await self._identifier.identify(request.headers)
        rest = [p for p in (m.group("rest") or "").split("/") if p]
        if request.method in ("GET", "HEAD") and len(rest) <= 1:
            if not rest or rest == ["detail"]:
                try:
                    found = await self.driver.list_instances()
                except DriverError as exc:
                    raise _translate(exc) from exc
                visible = [i for i in found if subject.has_role(self._admin_role)
                           or i.project_id == subject.project_id]
                return _response(200, {"servers": [server_view(i, base, bool(rest))
                                                   for i in visible]})
            inst = await self._instance(rest[0], subject)
            return _response(200, {"server": server_view(inst, base, True)})
        if request.method == "POST" and len(rest) == 2 and rest[1] == "action":
            inst = await self._instance(rest[0], subject)
            doc = json.loads(request.body)
            key, arg = next(iter(doc.items()))
            await self._act(inst.id, key, arg)
            return _response(202, None)
        raise BackendError(f"The {self._name} driver backend does not serve "
                           f"{request.method} {path}.", "not_implemented", 501)

    async def _act(self, instance_id: str, key: str, arg: Any) -> None:
        if key not in _ACTIONS:
            raise BackendError(f"The {self._name} driver backend does not implement '{key}'.",
                               "not_implemented", 501)
        d = self.driver
        try:
            if key == "reboot":
                hard = isinstance(arg, dict) and str(arg.get("type", "")).upper() == "HARD"
                await d.reboot(instance_id, hard=hard)
            else:
                op = {"suspend": d.suspend, "resume": d.resume, "os-start": d.start,
                      "os-stop": d.stop, "pause": d.pause, "unpause": d.unpause}[key]
                await op(instance_id)
        except DriverError as exc:
            raise _translate(exc) from exc

    async def resolve(self, instance_id: str) -> TargetInfo:
        try:
            inst = await self._instance(instance_id, None)
        except BackendError as exc:
            raise TargetUnresolved(f"cannot look up instance {instance_id}: {exc.message}") from exc
        return TargetInfo(inst.id, inst.project_id, inst.host)

    async def status(self, instance_id: str) -> str:
        return (await self._instance(instance_id, None)).nova_status

    async def power(self, instance_id: str, operation: str) -> None:
        await self._act(instance_id, operation, None)

    async def set_boot_block(self, instance_id: str, blocked: bool, reason: str | None) -> None:
        try:
            await self.driver.set_boot_block(instance_id, blocked, reason)
        except DriverError as exc:
            raise _translate(exc) from exc

    def forget_host(self, instance_id: str) -> None:
        """Nothing is cached: the driver is asked every time."""
