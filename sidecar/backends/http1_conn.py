"""One connection of the forwarder's HTTP/1.1 pool (``sidecar.backends.http1``) and its answers.

``Connection`` is the ``asyncio.Protocol`` of one keep-alive connection: it writes a
request, feeds what comes back to ``httptools``' response parser (llhttp) and hands
the status, headers and body pieces to the waiting caller, pausing the socket while
more than ``_HIGH_WATER`` bytes of body wait to be read. A timer per exchange bounds
it (``Http1Timeout``); any fault closes the connection (``Http1Error``).
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import AsyncIterator
from typing import Protocol, cast

import httptools

_HIGH_WATER = 256 * 1024
_LOW_WATER = 64 * 1024


class Http1Error(Exception):
    """The origin could not be reached, or broke off or garbled its answer."""


class Http1Timeout(Http1Error):
    """The connect or the exchange took longer than its timeout."""


class PoolSide(Protocol):
    """What a connection needs of its pool."""

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop the pool runs in."""

    def put_back(self, conn: Connection) -> None:
        """A finished, reusable connection goes back to the idle list."""

    def forget(self, conn: Connection) -> None:
        """A closed connection no longer counts against the limit."""


class Http1Response:
    """One answer: ``status``, ``headers`` (as sent, latin-1), ``length`` and the streamed body.

    Iterate ``chunks()`` once; the connection goes back to the pool when the body has
    been read to its end, and is closed when ``release()`` is called before that.
    """

    __slots__ = ("_conn", "headers", "length", "status")

    def __init__(self, conn: Connection, status: int, headers: list[tuple[str, str]],
                 length: int | None) -> None:
        self.status = status
        self.headers = headers
        self.length = length
        self._conn: Connection | None = conn

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, as it arrives; Http1Error / Http1Timeout if it breaks off."""
        conn = self._conn
        if conn is None:
            return
        try:
            while True:
                chunk = await conn.next_chunk()
                if chunk is None:
                    break
                yield chunk
        finally:
            self.release()

    def release(self) -> None:
        """Done with this answer: its connection is reused if the body was read to its end, else closed."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finish()


class Connection(asyncio.Protocol):
    """One connection to the origin and the exchange in progress on it."""

    def __init__(self, pool: PoolSide) -> None:
        self._pool = pool
        self._loop = pool.loop
        self.transport: asyncio.Transport | None = None
        self.closed = False
        self.idle_since = 0.0
        self.used = False
        self._parser: httptools.HttpResponseParser | None = None
        self._head_only = False
        self._received = False
        self._status = 0
        self._headers: list[tuple[str, str]] = []
        self._head: asyncio.Future[Http1Response] | None = None
        self._body: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._paused = False
        self._waiter: asyncio.Future[None] | None = None
        self._complete = False
        self._keep_alive = False
        self._error: Http1Error | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._lost: asyncio.Future[None] = self._loop.create_future()

    # -- the asyncio Protocol side --------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # NOTE: no isinstance check: uvloop's TCPTransport is not a subclass of asyncio.Transport.
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        parser = self._parser
        if parser is None:  # NOTE: bytes nobody asked for: the connection can't be trusted.
            self._fail(Http1Error("the compute API sent bytes outside a response"))
            return
        self._received = True
        try:
            parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self._fail(Http1Error("the compute API switched protocols"))
        except httptools.HttpParserError as exc:
            self._fail(Http1Error(f"the compute API sent a malformed response: {exc}"))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self._lost.done():
            self._lost.set_result(None)
        self._pool.forget(self)
        if self._parser is None or self._complete:
            return
        if self._head is None and self._status and not self._chunked_or_sized():
            # NOTE: no Content-Length and not chunked: the body ends where the connection does.
            self.on_message_complete()
            return
        self._fail(Http1Error("the compute API closed the connection"
                              + (" before answering" if not self._received else " mid-response")))

    def pause_writing(self) -> None:  # NOTE: request bodies are small and sent whole.
        pass

    def resume_writing(self) -> None:
        pass

    # -- httptools callbacks --------------------------------------------------------------

    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers.append((name.decode("latin-1"), value.decode("latin-1")))

    def on_headers_complete(self) -> None:
        assert self._parser is not None
        status = self._parser.get_status_code()
        if 100 <= status < 200:
            if status == 100:  # NOTE: an interim answer; the real one follows.
                self._headers = []
                return
            self._fail(Http1Error(f"the compute API answered {status}, which Statelock does not forward"))
            return
        self._status = status
        self._keep_alive = self._parser.should_keep_alive()
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_result(Http1Response(self, status, self._headers, self._length()))
        if self._head_only or status in (204, 304):
            # NOTE: no body follows (llhttp can't be told the request was HEAD): done, and not reused
            # for HEAD, where a misbehaving origin may yet send one.
            if self._head_only:
                self._keep_alive = False
            self.on_message_complete()

    def on_body(self, body: bytes) -> None:
        self._body.append(body)
        self._buffered += len(body)
        if self._buffered > _HIGH_WATER and not self._paused and self.transport is not None:
            self._paused = True
            self.transport.pause_reading()
        self._wake()

    def on_message_complete(self) -> None:
        if self._complete or not self._status:
            return
        self._complete = True
        self._cancel_timer()
        self._wake()

    # -- the client side ------------------------------------------------------------------

    def send(self, head: bytes, body: bytes, head_only: bool, deadline: float) -> asyncio.Future[Http1Response]:
        """Start an exchange: write the request, return the future of the response's head."""
        assert self.transport is not None
        self._parser = httptools.HttpResponseParser(self)
        self._head_only = head_only
        self._received = False
        self._status = 0
        self._headers = []
        self._body.clear()
        self._buffered = 0
        self._complete = False
        self._keep_alive = False
        self._error = None
        self._head = self._loop.create_future()
        self._timer = self._loop.call_at(deadline, self._timed_out)
        if body:
            self.transport.writelines((head, body))
        else:
            self.transport.write(head)
        return self._head

    async def next_chunk(self) -> bytes | None:
        """The next piece of the body; None at its end."""
        while True:
            if self._body:
                chunk = self._body.popleft()
                self._buffered -= len(chunk)
                if self._paused and self._buffered < _LOW_WATER and self.transport is not None:
                    self._paused = False
                    self.transport.resume_reading()
                return chunk
            if self._error is not None:
                raise self._error
            if self._complete:
                return None
            self._waiter = self._loop.create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None

    def finish(self) -> None:
        """The caller is done with the exchange: back to the pool, or closed."""
        self._cancel_timer()
        self._parser = None
        if (self._complete and self._keep_alive and self._error is None and not self._body
                and not self.closed):
            self._pool.put_back(self)
        else:
            self.close()

    def close(self) -> None:
        self._cancel_timer()
        if self.transport is not None and not self.closed:
            self.transport.close()
        self.closed = True
        self._pool.forget(self)

    async def wait_closed(self) -> None:
        if self.transport is not None:
            await self._lost

    @property
    def received(self) -> bool:
        return self._received

    # -- internals ------------------------------------------------------------------------

    def _length(self) -> int | None:
        if any(name.lower() == "transfer-encoding" for name, _ in self._headers):
            return None
        for name, value in self._headers:
            if name.lower() == "content-length":
                try:
                    return int(value)
                except ValueError:
                    return None
        return None

    def _chunked_or_sized(self) -> bool:
        return any(name.lower() in ("content-length", "transfer-encoding") for name, _ in self._headers)

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _timed_out(self) -> None:
        self._timer = None
        self._fail(Http1Timeout("the compute API did not answer in time"))

    def _fail(self, err: Http1Error) -> None:
        if self._error is None:
            self._error = err
        self._cancel_timer()
        head, self._head = self._head, None
        if head is not None and not head.done():
            head.set_exception(err)
        self._wake()
        if self.transport is not None and not self.closed:
            self.transport.abort()
        self.closed = True
        self._pool.forget(self)
