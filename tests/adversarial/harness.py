"""A running Statelock in front of ``nova_wsgi``, driven with raw bytes over plain sockets.

``live_stack()`` starts the upstream (wsgiref, in a thread), then the real Statelock
application on its own event loop in another thread, and places the locks every
adversarial test runs against: ``locked`` holds a lock placed by an admin (which no
token bypasses), ``owner_locked`` one placed by its owner. ``send()`` writes bytes to
a fresh connection and parses what comes back, so transport tricks reach aiohttp's
parser exactly as written.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from sidecar.app import create_app
from sidecar.config import Config
from sidecar.handlers import nova as nova_handler
from tests.functional.conftest import make_config
from tests.support.nova_wsgi import MARKER, NovaWSGI, serve

PROJECT = "0123456789abcdef0123456789abcdef"
OWNER = f"alice:{PROJECT}"
ADMIN = "admin:fedcba9876543210fedcba9876543210"


@dataclass
class RawResponse:
    """One HTTP response as read off the socket."""

    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def from_upstream(self) -> bool:
        return self.header(MARKER) is not None

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Exchange:
    """What one connection returned: the final responses and whether the server closed it."""

    responses: list[RawResponse] = field(default_factory=list)
    closed: bool = False


def _read_line(sock: socket.socket, buf: bytearray, deadline: float) -> bytes | None:
    while b"\r\n" not in buf:
        if not _fill(sock, buf, deadline):
            return None
    line, _, rest = bytes(buf).partition(b"\r\n")
    buf[:] = rest
    return line


def _fill(sock: socket.socket, buf: bytearray, deadline: float) -> bool:
    remaining = deadline - time.monotonic()
    if remaining <= 0:
        return False
    sock.settimeout(remaining)
    try:
        data = sock.recv(65536)
    except (TimeoutError, ConnectionResetError):
        return False
    buf.extend(data)
    return bool(data)


def _read_exact(sock: socket.socket, buf: bytearray, n: int, deadline: float) -> bytes | None:
    while len(buf) < n:
        if not _fill(sock, buf, deadline):
            return None
    out = bytes(buf[:n])
    del buf[:n]
    return out


def _read_response(sock: socket.socket, buf: bytearray, deadline: float,
                   head: bool) -> RawResponse | None:
    line = _read_line(sock, buf, deadline)
    if not line:
        return None
    status = int(line.split(b" ", 2)[1])
    headers: list[tuple[str, str]] = []
    while True:
        hline = _read_line(sock, buf, deadline)
        if hline is None:
            return None
        if hline == b"":
            break
        name, _, value = hline.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    lookup = {k.lower(): v for k, v in headers}
    if head or status < 200 or status in (204, 304):
        return RawResponse(status, headers, b"")
    if lookup.get("transfer-encoding", "").lower() == "chunked":
        body = bytearray()
        while True:
            size_line = _read_line(sock, buf, deadline)
            if size_line is None:
                return None
            size = int(size_line.split(b";")[0], 16)
            chunk = _read_exact(sock, buf, size + 2, deadline)
            if chunk is None:
                return None
            if size == 0:
                return RawResponse(status, headers, bytes(body))
            body.extend(chunk[:-2])
    if "content-length" in lookup:
        data = _read_exact(sock, buf, int(lookup["content-length"]), deadline)
        return None if data is None else RawResponse(status, headers, data)
    while _fill(sock, buf, deadline):
        pass
    data = bytes(buf)
    buf.clear()
    return RawResponse(status, headers, data)


def exchange(port: int, raw: bytes, responses: int = 1, timeout: float = 10.0, head: bool = False,
             chunks: list[tuple[bytes, float]] | None = None) -> Exchange:
    """Send ``raw`` (or timed ``chunks``: (bytes, seconds to wait after)) and read ``responses``."""
    deadline = time.monotonic() + timeout
    out = Exchange()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            if chunks is None:
                sock.sendall(raw)
            else:
                for data, pause in chunks:
                    sock.sendall(data)
                    time.sleep(pause)
        except (BrokenPipeError, ConnectionResetError):
            out.closed = True
        buf = bytearray()
        while len(out.responses) < responses:
            resp = _read_response(sock, buf, deadline, head)
            if resp is None:
                out.closed = True
                break
            if resp.status >= 200:
                out.responses.append(resp)
    return out


@dataclass
class LiveStack:
    """Statelock (``port``) in front of ``nova`` with ``locked`` and ``owner_locked`` locked."""

    nova: NovaWSGI
    cfg: Config
    port: int
    locked: str
    owner_locked: str
    free: str
    app: web.Application

    @property
    def locked_ids(self) -> tuple[str, str]:
        return self.locked, self.owner_locked

    def send(self, raw: bytes, **kwargs: Any) -> Exchange:
        return exchange(self.port, raw, **kwargs)

    def request(self, method: str, path: str, token: str = OWNER, body: bytes = b"",
                headers: dict[str, str] | None = None) -> RawResponse:
        head = [f"{method} {path} HTTP/1.1", "Host: statelock", f"X-Auth-Token: {token}",
                "Connection: close"]
        head += [f"{k}: {v}" for k, v in (headers or {}).items()]
        if body:
            head.append(f"Content-Length: {len(body)}")
        raw = ("\r\n".join(head) + "\r\n\r\n").encode() + body
        got = self.send(raw)
        assert got.responses, f"no response to {method} {path}"
        return got.responses[0]

    def health(self) -> RawResponse:
        return self.request("GET", "/statelock/v1/health")

    def lock_count(self) -> int:
        return int(self.health().json()["lockstore"]["locks"])

    def forbidden_executions(self) -> list[Any]:
        """State changes ``nova_wsgi`` executed on a locked server (must stay empty)."""
        return [e for sid in self.locked_ids for e in self.nova.changes_to(sid)]


def _lock(port: int, server_id: str, token: str) -> None:
    body = json.dumps({"lock": {"locked_reason": "adversarial"}}).encode()
    raw = (f"POST /v2.1/servers/{server_id}/action HTTP/1.1\r\nHost: statelock\r\n"
           f"X-Auth-Token: {token}\r\nContent-Type: application/json\r\n"
           f"OpenStack-API-Version: compute 2.73\r\nContent-Length: {len(body)}\r\n"
           "Connection: close\r\n\r\n").encode() + body
    got = exchange(port, raw)
    assert got.responses and got.responses[0].status == 202, got


@contextlib.contextmanager
def live_stack(tmp_path: Path, **overrides: Any) -> Iterator[LiveStack]:
    """Run the stack for the ``with`` block; ``overrides`` go to the config as in make_config."""
    nova = NovaWSGI()
    locked, owner_locked, free = (nova.add_server(PROJECT) for _ in range(3))
    with serve(nova) as url:
        overrides = {**overrides, "audit": {"fsync": False, **overrides.get("audit", {})}}
        cfg = make_config(tmp_path, url, **overrides)
        app = create_app(cfg)
        nova_handler.add_limits(app)
        runner = web.AppRunner(app, access_log=None, **nova_handler.server_settings(cfg.limits))
        loop = asyncio.new_event_loop()
        started = threading.Event()
        ports: list[int] = []

        async def start() -> None:
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            ports.append(int(runner.addresses[0][1]))

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(start())
            started.set()
            loop.run_forever()

        thread = threading.Thread(target=run, name="statelock", daemon=True)
        thread.start()
        assert started.wait(30), "Statelock did not start"
        try:
            port = ports[0]
            _lock(port, locked, ADMIN)
            _lock(port, owner_locked, OWNER)
            nova.clear()
            yield LiveStack(nova, cfg, port, locked, owner_locked, free, app)
        finally:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(30)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(30)
            loop.close()
