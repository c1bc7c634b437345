"""The upstream backend: a reverse proxy to a Nova-compatible compute API.

One pooled keep-alive ``ClientSession``. Requests go out with the exact body bytes
that were classified and an explicit ``Content-Length`` (Nova ignores chunked
bodies); hop-by-hop headers are dropped and ``X-Forwarded-*`` set. Client errors
are translated to ``UpstreamError`` (502) and ``UpstreamTimeout`` (504) here.
Target lookups use Statelock's own service identity and a cache: an instance's
project never changes, its host only through a migration, so the host expires.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Mapping
from typing import Any, Protocol

import aiohttp
from multidict import CIMultiDict

from sidecar.backends.base import ForwardRequest, ForwardResponse, TargetInfo
from sidecar.config import BackendConfig
from sidecar.errors import NotFound, TargetUnresolved, UpstreamError, UpstreamTimeout


class ServiceTokenSource(Protocol):
    """Where Statelock's own token comes from when none is configured (Keystone)."""

    async def token(self) -> str:
        """A current token of Statelock's service user."""

    def invalidate(self) -> None:
        """Forget the token (the upstream refused it)."""


HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection", "content-length", "host",
    "expect",
})
_PROJECT_CACHE_MAX = 100_000


def forwarded_headers(request: ForwardRequest) -> CIMultiDict[str]:
    """The headers to send upstream: the client's, less hop-by-hop, plus X-Forwarded-*."""
    out: CIMultiDict[str] = CIMultiDict()
    connection_tokens = {
        t.strip().lower() for t in request.headers.get("Connection", "").split(",") if t.strip()
    }
    for name, value in request.headers.items():
        low = name.lower()
        if low in HOP_BY_HOP or low in connection_tokens or low.startswith("x-forwarded-"):
            continue
        out.add(name, value)
    out["X-Forwarded-For"] = request.client_ip
    out["X-Forwarded-Proto"] = request.scheme
    out["X-Forwarded-Host"] = request.host
    out["Content-Length"] = str(len(request.body))
    return out


class UpstreamBackend:
    """A Backend forwarding to ``backend.upstream_url`` (see module docstring)."""

    def __init__(self, cfg: BackendConfig, host_ttl_s: float = 30.0,
                 service_auth: ServiceTokenSource | None = None) -> None:
        assert cfg.upstream_url is not None
        self._service_auth = service_auth
        self._base = cfg.upstream_url.rstrip("/")
        self._cfg = cfg
        self._session: aiohttp.ClientSession | None = None
        self._host_ttl = host_ttl_s
        self._projects: dict[str, str] = {}
        self._hosts: dict[str, tuple[str | None, float]] = {}

    async def start(self) -> None:
        connector = aiohttp.TCPConnector(limit=self._cfg.pool_size, keepalive_timeout=30,
                                         enable_cleanup_closed=True)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self._cfg.timeout_s,
                                          sock_connect=self._cfg.connect_timeout_s),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
        )

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise UpstreamError("upstream session is not open")
        return self._session

    async def forward(self, request: ForwardRequest) -> ForwardResponse:
        url = self._base + request.path
        try:
            resp = await self.session.request(
                request.method, url, headers=forwarded_headers(request), data=request.body or None,
                allow_redirects=False, skip_auto_headers=("User-Agent", "Content-Type",
                                                          "Accept-Encoding", "Accept"),
            )
        except TimeoutError as exc:
            raise UpstreamTimeout("The compute API did not answer in time.") from exc
        except aiohttp.ClientError as exc:
            raise UpstreamError(f"The compute API could not be reached: {type(exc).__name__}") \
                from exc
        headers = [(k, v) for k, v in resp.headers.items() if k.lower() not in HOP_BY_HOP]

        async def chunks() -> AsyncIterator[bytes]:
            try:
                async for chunk in resp.content.iter_any():
                    yield chunk
            except TimeoutError as exc:
                raise UpstreamTimeout("The compute API did not answer in time.") from exc
            except aiohttp.ClientError as exc:
                raise UpstreamError("The compute API broke off its response.") from exc

        return ForwardResponse(resp.status, headers, chunks(), release=resp.release,
                               length=resp.content_length)

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
            async with self.session.request(method, url, data=body, headers=headers,
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

    def _remember(self, instance_id: str, server: Mapping[str, Any]) -> TargetInfo:
        project = str(server["tenant_id"])
        host = server.get("OS-EXT-SRV-ATTR:host")
        host = host if isinstance(host, str) and host else None
        if len(self._projects) >= _PROJECT_CACHE_MAX:
            self._projects.clear()
        self._projects[instance_id] = project
        self._hosts[instance_id] = (host, time.monotonic() + self._host_ttl)
        return TargetInfo(instance_id, project, host)

    async def resolve(self, instance_id: str) -> TargetInfo:
        project = self._projects.get(instance_id)
        cached_host = self._hosts.get(instance_id)
        if project is not None and cached_host is not None and cached_host[1] > time.monotonic():
            return TargetInfo(instance_id, project, cached_host[0])
        return self._remember(instance_id, await self._get_server(instance_id))

    async def status(self, instance_id: str) -> str:
        return str((await self._get_server(instance_id)).get("status", ""))

    async def power(self, instance_id: str, operation: str) -> None:
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

    async def set_boot_block(self, instance_id: str, blocked: bool, reason: str | None) -> None:
        """Nothing to do: Nova has no hypervisor-level boot block; the lock table enforces."""
