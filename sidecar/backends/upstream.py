"""The upstream backend: a reverse proxy to a Nova-compatible compute API.

``UpstreamForwarder`` sends each decided request out on the lean keep-alive pool of
``sidecar.backends.http1``: to the classified path (``Action.forward_path``, byte for
byte), with the exact body bytes that were classified and an explicit
``Content-Length`` (Nova ignores chunked bodies), hop-by-hop headers dropped and
``X-Forwarded-*`` set. ``NovaInstanceOps`` (``sidecar.backends.nova_ops``) makes
Statelock's own calls on a pooled ``aiohttp.ClientSession``. Both have
``backend.pool_size`` connections at most, ``connect_timeout_s`` and ``timeout_s``.
Client errors are translated to ``UpstreamError`` (502) and ``UpstreamTimeout``
(504) here.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp

from sidecar.backends.base import ForwardResponse, IncomingRequest
from sidecar.backends.http1 import Http1Error, Http1Pool, Http1Timeout
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


def forwarded_header_list(request: IncomingRequest) -> list[tuple[str, str]]:
    """The headers to send upstream: the client's, less hop-by-hop, plus X-Forwarded-*.

    Host and Content-Length are the sender's to set (the upstream's host; the body's length).
    """
    connection = request.headers.get("Connection")
    tokens = {t.strip().lower() for t in connection.split(",")} if connection else ()
    out = [(name, value) for name, value in request.headers.items()
           if not ((low := name.lower()) in HOP_BY_HOP or low in tokens or low.startswith("x-forwarded-"))]
    out += (("X-Forwarded-For", request.client_ip), ("X-Forwarded-Proto", request.scheme),
            ("X-Forwarded-Host", request.host))
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

    def __init__(self, cfg: BackendConfig) -> None:
        assert cfg.upstream_url is not None
        self.pool = Http1Pool(cfg.upstream_url, limit=cfg.pool_size, connect_timeout_s=cfg.connect_timeout_s,
                              timeout_s=cfg.timeout_s)

    async def dispatch(self, request: IncomingRequest, action: Action,
                       subject: Subject | None) -> ForwardResponse:
        """Send ``request``'s body and headers to the classified path; return once the headers are in."""
        try:
            resp = await self.pool.request(request.method, action.forward_path, forwarded_header_list(request),
                                           request.body)
        except Http1Timeout as exc:
            raise UpstreamTimeout("The compute API did not answer in time.") from exc
        except Http1Error as exc:
            raise UpstreamError(f"The compute API could not be reached: {exc}") from exc
        headers = [(k, v) for k, v in resp.headers if k.lower() not in HOP_BY_HOP]
        return ForwardResponse(resp.status, headers, _body(resp.chunks()), release=resp.release,
                               length=resp.length)

    async def close(self) -> None:
        await self.pool.close()


async def _body(chunks: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    """The upstream's body, its faults as the errors the boundary answers."""
    try:
        async for chunk in chunks:
            yield chunk
    except Http1Timeout as exc:
        raise UpstreamTimeout("The compute API did not answer in time.") from exc
    except Http1Error as exc:
        raise UpstreamError("The compute API broke off its response.") from exc


class UpstreamBackend:
    """The upstream Backend: one session, its forwarder and Nova instance operations."""

    def __init__(self, cfg: BackendConfig, host_ttl_s: float = 30.0,
                 service_auth: ServiceTokenSource | None = None,
                 projects: ProjectDirectory | None = None) -> None:
        assert cfg.upstream_url is not None
        self._session = UpstreamSession(cfg)
        self.dispatcher = UpstreamForwarder(cfg)
        self.ops = NovaInstanceOps(self._session, cfg, host_ttl_s, service_auth, projects)

    async def start(self) -> None:
        await self._session.start()

    async def close(self) -> None:
        await self.dispatcher.close()
        await self._session.close()
