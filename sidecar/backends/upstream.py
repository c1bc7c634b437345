"""The upstream backend: a reverse proxy to a Nova-compatible compute API.

One pooled keep-alive ``ClientSession`` serves both faces: ``UpstreamForwarder``
sends requests out with the exact body bytes that were classified and an explicit
``Content-Length`` (Nova ignores chunked bodies), hop-by-hop headers dropped and
``X-Forwarded-*`` set; ``NovaInstanceOps`` (``sidecar.backends.nova_ops``) makes
Statelock's own calls. Client errors are translated to ``UpstreamError`` (502) and
``UpstreamTimeout`` (504) here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from multidict import CIMultiDict

from sidecar.backends.base import ForwardResponse, IncomingRequest
from sidecar.backends.nova_ops import NovaInstanceOps, ProjectDirectory, ServiceTokenSource
from sidecar.classify import Action
from sidecar.config import BackendConfig
from sidecar.errors import UpstreamError, UpstreamTimeout
from sidecar.identity import Subject

HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "trailers", "transfer-encoding", "upgrade", "proxy-connection", "content-length", "host",
    "expect",
})


def forwarded_headers(request: IncomingRequest) -> CIMultiDict[str]:
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


class UpstreamSession:
    """The one pooled keep-alive session to the upstream, opened in ``start``."""

    def __init__(self, cfg: BackendConfig) -> None:
        self._cfg = cfg
        self._session: aiohttp.ClientSession | None = None

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
        """The open session; UpstreamError before ``start`` or after ``close``."""
        if self._session is None:
            raise UpstreamError("upstream session is not open")
        return self._session


class UpstreamForwarder:
    """A Dispatcher that forwards the classified request bytes to ``backend.upstream_url``."""

    needs_subject = False

    def __init__(self, session: UpstreamSession, base_url: str) -> None:
        self._session = session
        self._base = base_url.rstrip("/")

    async def dispatch(self, request: IncomingRequest, action: Action,
                       subject: Subject | None) -> ForwardResponse:
        """Send ``request``'s body and headers to the classified path; return once the headers are in."""
        url = self._base + action.forward_path
        try:
            resp = await self._session.session.request(
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


class UpstreamBackend:
    """The upstream Backend: one session, its forwarder and Nova instance operations."""

    def __init__(self, cfg: BackendConfig, host_ttl_s: float = 30.0,
                 service_auth: ServiceTokenSource | None = None,
                 projects: ProjectDirectory | None = None) -> None:
        assert cfg.upstream_url is not None
        self._session = UpstreamSession(cfg)
        self.dispatcher = UpstreamForwarder(self._session, cfg.upstream_url)
        self.ops = NovaInstanceOps(self._session, cfg, host_ttl_s, service_auth, projects)

    async def start(self) -> None:
        await self._session.start()

    async def close(self) -> None:
        await self._session.close()
