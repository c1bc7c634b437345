"""The forwarder's HTTP/1.1 pool (sidecar.backends.http1) against servers that answer in every way HTTP allows.

Each server is a real asyncio TCP server speaking raw bytes, so the cases an
aiohttp upstream would never produce (a close-delimited body, an origin that
closes an idle connection, a garbled status line, a stalled body) are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from sidecar.backends.http1 import Http1Error, Http1Pool, Http1Timeout, Origin

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


class Server:
    """A raw TCP server; ``requests`` holds each request head it read, ``connections`` counts accepts."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self.requests: list[bytes] = []
        self.bodies: list[bytes] = []
        self.connections = 0
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self._handler(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    async def read_request(self, reader: asyncio.StreamReader) -> bytes:
        head = await reader.readuntil(b"\r\n\r\n")
        self.requests.append(head)
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        self.bodies.append(await reader.readexactly(length) if length else b"")
        return head


async def read_all(resp: object) -> bytes:
    chunks = [c async for c in resp.chunks()]  # type: ignore[attr-defined]
    return b"".join(chunks)


@pytest.fixture
async def pool_factory() -> AsyncIterator[Callable[..., Http1Pool]]:
    pools: list[Http1Pool] = []

    def make(url: str, **kw: float) -> Http1Pool:
        pool = Http1Pool(url, **kw)  # type: ignore[arg-type]
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()


def keep_alive_server(body: bytes = b'{"ok": true}') -> Server:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\n\r\n" + body)
            await writer.drain()

    server = Server(handler)
    return server


async def test_keep_alive_reuses_one_connection_and_sends_host_and_length(
        pool_factory: Callable[..., Http1Pool]) -> None:
    async with keep_alive_server() as server:
        pool = pool_factory(server.url)
        for n in range(3):
            resp = await pool.request("POST", f"/v2.1/servers/x/action?n={n}", [("X-Auth-Token", "t")], b'{"a":1}')
            assert resp.status == 200 and resp.length == 12
            assert ("Content-Type", "application/json") in resp.headers
            assert await read_all(resp) == b'{"ok": true}'
        assert server.connections == 1 and pool.connects == 1 and pool.idle == 1
        head = server.requests[2].decode()
        assert head.startswith("POST /v2.1/servers/x/action?n=2 HTTP/1.1\r\n")
        assert f"Host: {server.url.removeprefix('http://')}\r\n" in head
        assert "Content-Length: 7\r\n" in head and "X-Auth-Token: t\r\n" in head
        assert server.bodies == [b'{"a":1}'] * 3


def test_the_pool_runs_on_uvloop() -> None:
    import uvloop

    async def scenario() -> list[bytes]:
        async with keep_alive_server() as server:
            pool = Http1Pool(server.url)
            try:
                return [await read_all(await pool.request("GET", "/", [])) for _ in range(2)]
            finally:
                await pool.close()

    assert uvloop.run(scenario()) == [b'{"ok": true}'] * 2


async def test_a_get_carries_content_length_zero(pool_factory: Callable[..., Http1Pool]) -> None:
    async with keep_alive_server() as server:
        resp = await pool_factory(server.url).request("GET", "/v2.1/servers", [])
        await read_all(resp)
        assert b"Content-Length: 0\r\n" in server.requests[0]


async def test_the_base_path_of_the_url_goes_in_front(pool_factory: Callable[..., Http1Pool]) -> None:
    async with keep_alive_server() as server:
        resp = await pool_factory(server.url + "/compute/").request("GET", "/v2.1/servers", [])
        await read_all(resp)
        assert server.requests[0].startswith(b"GET /compute/v2.1/servers HTTP/1.1\r\n")


async def test_chunked_and_close_delimited_bodies_are_read_to_their_end(
        pool_factory: Callable[..., Http1Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        if server.connections == 1:
            writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                         b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n")
            await writer.drain()
            await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nto the end")
        await writer.drain()

    async with Server(handler) as server:
        pool = pool_factory(server.url)
        chunked = await pool.request("GET", "/a", [])
        assert chunked.length is None and await read_all(chunked) == b"hello world"
        delimited = await pool.request("GET", "/b", [])
        assert await read_all(delimited) == b"to the end"
        assert server.connections == 1 and pool.idle == 0


async def test_head_204_and_304_have_no_body(pool_factory: Callable[..., Http1Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await server.read_request(reader)
            if head.startswith(b"HEAD"):
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 20\r\n\r\n")
            elif b"/gone" in head:
                writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
            else:
                writer.write(b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n")
            await writer.drain()

    async with Server(handler) as server:
        pool = pool_factory(server.url)
        for method, path, status in (("DELETE", "/gone", 204), ("GET", "/same", 304), ("HEAD", "/x", 200)):
            resp = await pool.request(method, path, [])
            assert resp.status == status and await read_all(resp) == b""
        # NOTE: the connection served 204 and 304 on keep-alive; HEAD closes it (llhttp can't know).
        assert server.connections == 1 and pool.idle == 0


async def test_an_idle_connection_the_origin_closed_is_retried_for_idempotent_requests_only(
        pool_factory: Callable[..., Http1Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()
        # NOTE: then read the next request and drop the connection without answering, as an origin
        # whose keep-alive timer fired just as the request went out.
        server.requests.append(await reader.read(65536))

    async with Server(handler) as server:
        pool = pool_factory(server.url)
        first = await pool.request("GET", "/a", [])
        assert await read_all(first) == b"ok"
        again = await pool.request("GET", "/a", [])
        assert again.status == 200 and await read_all(again) == b"ok"
        assert pool.retries == 1 and server.connections == 2
        with pytest.raises(Http1Error, match="closed the connection before answering"):
            await pool.request("POST", "/v2.1/servers/x/action", [], b"{}")
        assert pool.retries == 1  # NOTE: the POST may have been acted on: never sent twice.
        assert sum(1 for r in server.requests if r.startswith(b"POST")) == 1


async def test_a_connection_the_origin_closed_while_idle_is_not_used(
        pool_factory: Callable[..., Http1Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    async with Server(handler) as server:
        pool = pool_factory(server.url)
        await read_all(await pool.request("GET", "/a", []))
        for _ in range(100):
            if pool.idle == 0:
                break
            await asyncio.sleep(0.01)
        assert pool.idle == 0  # NOTE: the origin's close took it out of the pool
        resp = await pool.request("POST", "/b", [], b"{}")
        assert await read_all(resp) == b"ok" and pool.retries == 0


async def test_timeouts_close_the_connection(pool_factory: Callable[..., Http1Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await server.read_request(reader)
        if b"/half" in head:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhalf")
            await writer.drain()
        await asyncio.sleep(5)

    async with Server(handler) as server:
        pool = pool_factory(server.url, timeout_s=0.2)
        with pytest.raises(Http1Timeout):
            await pool.request("GET", "/slow", [])
        resp = await pool.request("GET", "/half", [])
        with pytest.raises(Http1Timeout):
            await read_all(resp)
        assert pool.size == 0


async def test_an_unreachable_origin_is_an_error(pool_factory: Callable[..., Http1Pool]) -> None:
    async with keep_alive_server() as server:
        url = server.url
    with pytest.raises(Http1Error, match="could not be reached: ConnectionRefusedError"):
        await pool_factory(url).request("GET", "/", [])


@pytest.mark.parametrize("answer, message", [
    (b"HTTQ/1.1 200 OK\r\n\r\n", "malformed response"),
    (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", "closed the connection mid-response"),
    (b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n", "101"),
])
async def test_a_garbled_or_cut_answer_is_an_error(pool_factory: Callable[..., Http1Pool], answer: bytes,
                                                   message: str) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(answer)
        await writer.drain()

    async with Server(handler) as server:
        pool = pool_factory(server.url)
        with pytest.raises(Http1Error, match=message):
            resp = await pool.request("POST", "/x", [], b"{}")
            await read_all(resp)
        assert pool.size == 0


async def test_an_interim_100_is_skipped(pool_factory: Callable[..., Http1Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await server.read_request(reader)
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 202 Accepted\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        await reader.read(1)

    async with Server(handler) as server:
        resp = await pool_factory(server.url).request("POST", "/x", [], b"{}")
        assert resp.status == 202 and await read_all(resp) == b""


async def test_requests_wait_for_a_free_connection_at_the_limit(pool_factory: Callable[..., Http1Pool]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            await server.read_request(reader)
            await asyncio.sleep(0.02)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            await writer.drain()

    async with Server(handler) as server:
        pool = pool_factory(server.url, limit=2)

        async def one() -> bytes:
            return await read_all(await pool.request("GET", "/", []))

        assert await asyncio.gather(*(one() for _ in range(6))) == [b"ok"] * 6
        assert server.connections == 2 and pool.connects == 2


async def test_a_body_left_unread_closes_its_connection(pool_factory: Callable[..., Http1Pool]) -> None:
    async with keep_alive_server(b"x" * 100_000) as server:
        pool = pool_factory(server.url)
        resp = await pool.request("GET", "/", [])
        resp.release()
        assert pool.size == 0
        assert len(await read_all(await pool.request("GET", "/", []))) == 100_000
        assert pool.idle == 1


async def test_a_large_body_streams_with_flow_control(pool_factory: Callable[..., Http1Pool]) -> None:
    body = bytes(range(256)) * 8192  # 2 MiB
    async with keep_alive_server(body) as server:
        resp = await pool_factory(server.url).request("GET", "/", [])
        got = bytearray()
        async for chunk in resp.chunks():
            got += chunk
            await asyncio.sleep(0)  # NOTE: a slow reader; the socket is paused meanwhile
        assert bytes(got) == body


def test_a_header_with_a_line_break_is_refused() -> None:
    from sidecar.backends.http1 import _request_head

    with pytest.raises(Http1Error, match="line break"):
        _request_head("GET", "/", "h", [("X-A", "1\r\nX-Injected: 2")], b"")
    with pytest.raises(Http1Error, match="white space"):
        _request_head("GET", "/a b", "h", [], b"")


@pytest.mark.parametrize("url, host, port, header, base", [
    ("http://nova:8774", "nova", 8774, "nova:8774", ""),
    ("https://nova.example/compute/", "nova.example", 443, "nova.example", "/compute"),
    ("http://[::1]:8774/", "::1", 8774, "[::1]:8774", ""),
])
def test_origin_parse(url: str, host: str, port: int, header: str, base: str) -> None:
    origin = Origin.parse(url)
    assert (origin.host, origin.port, origin.host_header, origin.base_path) == (host, port, header, base)
