"""A lean HTTP/1.1 client for the forwarding path: a keep-alive pool over asyncio Protocols.

The forwarder sends every request it is given to one origin, with headers it has
already cleaned, and streams the answer back. ``aiohttp.ClientSession`` does that
with a tenth of a millisecond of Python per request (URL objects, header
multidicts, a response object, stream readers, timers); this client does it with
one ``asyncio.Protocol`` per connection and ``httptools``' C parser (llhttp, the
parser Node.js uses), measured side by side in ``bench.compare``.

What it keeps from a mature client:

* A pool of at most ``limit`` connections to the origin (LIFO: the warmest is
  reused); a caller waits for a free one when all are busy. An idle connection is
  dropped after ``keepalive_s``, or as soon as the origin closes it.
* ``connect_timeout_s`` bounds the connect (TLS included); ``timeout_s`` bounds the
  whole exchange, from the first byte sent to the last byte of the body.
  ``Http1Timeout`` says which; the connection is closed.
* Nothing is sent twice that may have been acted on: a request is retried once, on
  a new connection, only when it is idempotent (GET, HEAD, PUT, DELETE, OPTIONS) and
  a reused connection was found closed before any byte of the answer came back
  (the origin closed an idle keep-alive connection as the request went out).
* A response body is streamed with flow control: reading from the socket pauses
  while more than 256 KiB wait for the consumer.
* A connection goes back to the pool only after a complete message that the
  origin did not ask to close; an answer to HEAD, a body cut short, a parse error
  or an interim ``1xx`` other than 100 close it.

It speaks only what the forwarder needs: no redirects, cookies, proxies,
decompression or request streaming (bodies are bytes, sent with Content-Length).
"""

from __future__ import annotations

import asyncio
import collections
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

from sidecar.backends.http1_conn import Connection, Http1Error, Http1Response, Http1Timeout

__all__ = ["IDEMPOTENT", "Http1Error", "Http1Pool", "Http1Response", "Http1Timeout", "Origin"]

IDEMPOTENT = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


@dataclass(frozen=True)
class Origin:
    """Where the pool connects: scheme, host, port and the Host header it sends."""

    scheme: str
    host: str
    port: int
    host_header: str
    base_path: str

    @classmethod
    def parse(cls, url: str) -> Origin:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http(s) URL with a host")
        default = 443 if parts.scheme == "https" else 80
        port = parts.port or default
        host = parts.hostname
        shown = f"[{host}]" if ":" in host else host
        header = shown if port == default else f"{shown}:{port}"
        return cls(parts.scheme, host, port, header, parts.path.rstrip("/"))


class Http1Pool:
    """Keep-alive connections to one origin (see the module docstring)."""

    def __init__(self, url: str, *, limit: int = 100, connect_timeout_s: float = 5.0,
                 timeout_s: float = 60.0, keepalive_s: float = 30.0,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        if limit < 1:
            raise ValueError("limit must be at least 1")
        self.origin = Origin.parse(url)
        self._limit = limit
        self._connect_timeout = connect_timeout_s
        self._timeout = timeout_s
        self._keepalive = keepalive_s
        self._ssl: ssl.SSLContext | None = None
        if self.origin.scheme == "https":
            self._ssl = ssl_context or ssl.create_default_context()
        self._idle: list[Connection] = []
        self._open: set[Connection] = set()
        self._connecting = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.connects = 0
        self.retries = 0

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    @property
    def size(self) -> int:
        """Connections open (idle or busy) or being opened."""
        return len(self._open) + self._connecting

    @property
    def idle(self) -> int:
        return len(self._idle)

    async def request(self, method: str, target: str, headers: list[tuple[str, str]],
                      body: bytes = b"") -> Http1Response:
        """Send one request; return once the answer's status line and headers are in.

        ``target`` is the path and query (the origin's base path is put in front);
        ``headers`` must not hold Host or Content-Length (the pool sets them; Content-Length
        is always sent, 0 for no body, as Nova ignores a chunked one).
        """
        if self._closed:
            raise Http1Error("the connection pool to the compute API is closed")
        loop = self.loop
        head = _request_head(method, self.origin.base_path + target, self.origin.host_header, headers, body)
        head_only = method.upper() == "HEAD"
        may_retry = method.upper() in IDEMPOTENT
        for attempt in (0, 1):
            conn = await self._acquire()
            reused = conn.used
            conn.used = True
            deadline = loop.time() + self._timeout
            try:
                return await conn.send(head, body, head_only, deadline)
            except BaseException as exc:
                conn.close()
                # NOTE: exactly Http1Error, not Http1Timeout: a request that timed out may have been acted on.
                stale = (type(exc) is Http1Error and attempt == 0 and reused and may_retry
                         and not conn.received)
                if not stale:
                    raise
                self.retries += 1
        raise AssertionError("unreachable")  # pragma: no cover

    async def _acquire(self) -> Connection:
        now = time.monotonic()
        while True:
            while self._idle:
                conn = self._idle.pop()
                if conn.closed or now - conn.idle_since > self._keepalive:
                    conn.close()
                    continue
                return conn
            if self.size < self._limit:
                return await self._connect()
            waiter = self.loop.create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
            now = time.monotonic()

    async def _connect(self) -> Connection:
        self._connecting += 1
        try:
            conn = Connection(self)
            origin = self.origin
            try:
                async with asyncio.timeout(self._connect_timeout):
                    await self.loop.create_connection(
                        lambda: conn, origin.host, origin.port, ssl=self._ssl,
                        server_hostname=origin.host if self._ssl is not None else None)
            except TimeoutError as exc:
                raise Http1Timeout("the compute API did not accept a connection in time") from exc
            except (OSError, ssl.SSLError) as exc:
                raise Http1Error(f"the compute API could not be reached: {type(exc).__name__}") from exc
        finally:
            self._connecting -= 1
            self._wake_one()
        self._open.add(conn)
        self.connects += 1
        if self._closed:
            conn.close()
            raise Http1Error("the connection pool to the compute API is closed")
        return conn

    def put_back(self, conn: Connection) -> None:
        if self._closed or conn.closed:
            conn.close()
            return
        conn.idle_since = time.monotonic()
        self._idle.append(conn)
        self._wake_one()

    def forget(self, conn: Connection) -> None:
        """A connection closed: it no longer counts against the limit."""
        if conn in self._open:
            self._open.discard(conn)
            if conn in self._idle:
                self._idle.remove(conn)
            self._wake_one()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def close(self) -> None:
        """Close every connection; a request in flight fails with Http1Error."""
        self._closed = True
        conns = list(self._open)
        for conn in conns:
            conn.close()
        for conn in conns:
            await conn.wait_closed()
        self._idle.clear()


def _request_head(method: str, target: str, host: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
    """The request line and headers, with Host and Content-Length, as bytes on the wire."""
    if " " in target or "\r" in target or "\n" in target:
        raise Http1Error("the request target holds white space")
    lines = [f"{method} {target or '/'} HTTP/1.1", f"Host: {host}"]
    for name, value in headers:
        if "\r" in name or "\n" in name or "\r" in value or "\n" in value:
            raise Http1Error(f"header {name!r} holds a line break")
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(body)}")
    # NOTE: aiohttp's server decoded the path and headers as UTF-8 with surrogateescape: the same bytes go out.
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
