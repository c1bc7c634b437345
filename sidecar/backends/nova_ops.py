"""Nova instance operations: what Statelock asks and does about an instance, as itself.

Statelock's own calls to the compute API (target lookups, the suspend and resume of
suspend-lock) carry its service identity (``backend.service_auth.token`` or the
Keystone service token), never a caller's token. Lookups are cached: an instance's
project never changes, its host only through a migration, so the host expires
(``target.host_ttl_s``) and is dropped when a host-changing action is forwarded.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Mapping
from typing import Any, Protocol

import aiohttp

from sidecar.backends.host_blocks import HostBootBlocks
from sidecar.config import BackendConfig
from sidecar.errors import NotFound, SidecarError, TargetUnresolved, UpstreamError, UpstreamTimeout
from sidecar.policy.input import Target

_PROJECT_CACHE_MAX = 100_000


class SessionSource(Protocol):
    """Where the pooled upstream session comes from (``UpstreamSession``)."""

    @property
    def session(self) -> aiohttp.ClientSession:
        """The open session."""


class ServiceTokenSource(Protocol):
    """Where Statelock's own token comes from when none is configured (Keystone)."""

    async def token(self) -> str:
        """A current token of Statelock's service user."""

    def invalidate(self) -> None:
        """Forget the token (the upstream refused it)."""


class ProjectDirectory(Protocol):
    """Who can say whether a project exists (Keystone)."""

    async def project_exists(self, project_id: str) -> bool | None:
        """True or False; None when it can't tell (not allowed to look)."""


class NovaInstanceOps:
    """InstanceOps over the compute API (see module docstring)."""

    resolves_cheaply = False

    def __init__(self, session: SessionSource, cfg: BackendConfig, host_ttl_s: float = 30.0,
                 service_auth: ServiceTokenSource | None = None,
                 projects: ProjectDirectory | None = None) -> None:
        assert cfg.upstream_url is not None
        self._projects_directory = projects
        self._host_blocks = HostBootBlocks(cfg.hypervisors, cfg.hypervisor_uri)
        self._session = session
        self._base = cfg.upstream_url.rstrip("/")
        self._cfg = cfg
        self._service_auth = service_auth
        self._host_ttl = host_ttl_s
        self._projects: dict[str, str] = {}
        self._hosts: dict[str, tuple[str | None, float]] = {}

    def forget_host(self, instance_id: str) -> None:
        """Drop the cached host (after a migrate, evacuate or unshelve was forwarded)."""
        self._hosts.pop(instance_id, None)

    async def _service_headers(self) -> dict[str, str]:
        """Statelock's own identity: the configured token, else the Keystone service token."""
        headers = {"Accept": "application/json", "OpenStack-API-Version": "compute 2.1"}
        if self._cfg.service_auth.token:
            headers["X-Auth-Token"] = self._cfg.service_auth.token
        elif self._service_auth is not None:
            headers["X-Auth-Token"] = await self._service_auth.token()
        return headers

    async def _service_call(self, method: str, url: str, body: bytes | None = None
                            ) -> tuple[int, bytes]:
        """One call as Statelock's service identity; a 401 refreshes a Keystone token once."""
        for attempt in (1, 2):
            headers = await self._service_headers()
            if body is not None:
                headers["Content-Type"] = "application/json"
            async with self._session.session.request(method, url, data=body, headers=headers,
                                            timeout=aiohttp.ClientTimeout(total=10)) as resp:
                data = await resp.read()
                if resp.status == 401 and attempt == 1 and self._service_auth is not None \
                        and not self._cfg.service_auth.token:
                    self._service_auth.invalidate()
                    continue
                return resp.status, data
        raise AssertionError("unreachable")  # pragma: no cover

    async def _get_server(self, instance_id: str) -> Mapping[str, Any]:
        url = f"{self._base}/v2.1/servers/{instance_id}"
        try:
            status, data = await self._service_call("GET", url)
            if status == 404:
                raise NotFound(f"Instance {instance_id} could not be found.")
            if status != 200:
                raise TargetUnresolved(f"cannot look up instance {instance_id}: upstream answered {status}")
            doc = json.loads(data)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TargetUnresolved(f"cannot look up instance {instance_id}: {exc}") from exc
        server = doc.get("server") if isinstance(doc, Mapping) else None
        if not isinstance(server, Mapping) or not isinstance(server.get("tenant_id"), str):
            raise TargetUnresolved(f"cannot look up instance {instance_id}: no tenant_id")
        self._remember(instance_id, server)
        return server

    def _remember(self, instance_id: str, server: Mapping[str, Any]) -> Target:
        project = str(server["tenant_id"])
        host = server.get("OS-EXT-SRV-ATTR:host")
        host = host if isinstance(host, str) and host else None
        if len(self._projects) >= _PROJECT_CACHE_MAX:
            self._projects.clear()
        self._projects[instance_id] = project
        self._hosts[instance_id] = (host, time.monotonic() + self._host_ttl)
        return Target(instance_id, project, host)

    async def resolve(self, instance_id: str) -> Target:
        project = self._projects.get(instance_id)
        cached_host = self._hosts.get(instance_id)
        if project is not None and cached_host is not None and cached_host[1] > time.monotonic():
            return Target(instance_id, project, cached_host[0])
        return self._remember(instance_id, await self._get_server(instance_id))

    async def status(self, instance_id: str) -> str:
        return str((await self._get_server(instance_id)).get("status", ""))

    async def power(self, instance_id: str, operation: str) -> int:
        url = f"{self._base}/v2.1/servers/{instance_id}/action"
        try:
            status, data = await self._service_call("POST", url, json.dumps({operation: None}).encode())
        except TimeoutError as exc:
            raise UpstreamTimeout(f"{operation} of {instance_id} timed out upstream") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"{operation} of {instance_id}: upstream unreachable") from exc
        if status >= 300:
            text = data[:300].decode(errors="replace")
            raise UpstreamError(f"{operation} of {instance_id} failed upstream: {status} {text}")
        return status

    async def set_boot_block(self, instance_id: str, blocked: bool, reason: str | None,
                             lock_id: str | None = None) -> dict[str, Any] | None:
        """Write the block into the domain on the instance's host, when hypervisors are configured.

        Nova itself has no boot block: Statelock's lock table enforces in front of it. Never
        raises; the report says what happened on the host.
        """
        if not self._host_blocks.configured:
            return None
        try:
            host = (await self.resolve(instance_id)).host
        except SidecarError as exc:
            return {"host": None, "blocked": blocked, "written": False, "error": exc.message}
        return await self._host_blocks.write(instance_id, host, blocked, reason, lock_id)

    async def knows(self, scope: str, target: str) -> str | None:
        """A project through Keystone (else Nova's servers of it); a host through os-services."""
        if scope == "project" and self._projects_directory is not None:
            exists = await self._projects_directory.project_exists(target)
            if exists is not None:
                return None if exists else f"Keystone has no project {target!r}"
        quoted = urllib.parse.quote(target, safe="")
        if scope == "project":
            url = f"{self._base}/v2.1/servers?all_tenants=1&project_id={quoted}&limit=1"
            key, why = "servers", f"Nova has no server in project {target!r} (and no Keystone to ask)"
        else:
            url = f"{self._base}/v2.1/os-services?binary=nova-compute&host={quoted}"
            key, why = "services", f"Nova has no compute service on host {target!r}"
        try:
            status, data = await self._service_call("GET", url)
            doc = json.loads(data) if status == 200 else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise TargetUnresolved(f"cannot look up {scope} {target!r}: {exc}") from exc
        if not isinstance(doc, Mapping) or not isinstance(doc.get(key), list):
            raise TargetUnresolved(f"cannot look up {scope} {target!r}: upstream answered {status}")
        return None if doc[key] else why
