"""Request limits end to end: slow clients, oversized and concurrent requests, a slow upstream.

Each test runs its own Statelock with tight limits, so every wait here is bounded
to a few seconds; each limit answers Nova-shaped and is counted in /metrics.
"""

from __future__ import annotations

import re
import socket
import threading
import time
from pathlib import Path

import pytest

from sidecar.config import LimitsConfig
from sidecar.handlers.nova import header_limit, server_settings
from tests.adversarial.harness import OWNER, LiveStack, RawResponse, exchange, live_stack


def _head(stack: LiveStack, method: str, path: str, length: int) -> bytes:
    return (f"{method} {path} HTTP/1.1\r\nHost: statelock\r\nX-Auth-Token: {OWNER}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {length}\r\n\r\n").encode()


def _refusal_count(stack: LiveStack, code: str) -> float:
    text = stack.request("GET", "/metrics").body.decode()
    pattern = r'statelock_refused_requests_total\{code="' + re.escape(code) + r'"\} ([0-9.e+]+)'
    m = re.search(pattern, text)
    return float(m.group(1)) if m else 0.0


def _closed_within(sock: socket.socket, seconds: float) -> float | None:
    """Seconds until the server closed ``sock`` (None if it stayed open)."""
    start = time.monotonic()
    sock.settimeout(0.05)
    while time.monotonic() - start < seconds:
        try:
            if sock.recv(4096) == b"":
                return time.monotonic() - start
        except TimeoutError:
            pass
        except ConnectionResetError:
            return time.monotonic() - start
        try:
            sock.sendall(b"X")
        except OSError:
            return time.monotonic() - start
    return None


def test_slowloris_connections_are_cut_off_and_the_sidecar_stays_healthy(tmp_path: Path) -> None:
    with live_stack(tmp_path, limits={"header_timeout_s": 1.0}) as stack:
        socks = [socket.create_connection(("127.0.0.1", stack.port)) for _ in range(30)]
        try:
            for s in socks:
                s.sendall(b"POST /v2.1/servers/" + stack.locked.encode() + b"/action HTTP/1.1\r\nHost: x\r\nX-A: ")
            assert stack.health().status == 200
            closed = [_closed_within(s, 4.0) for s in socks]
        finally:
            for s in socks:
                s.close()
        assert all(c is not None and c < 3.0 for c in closed), closed
        assert stack.health().status == 200
        assert stack.forbidden_executions() == []


def test_slow_body_gets_408(tmp_path: Path) -> None:
    with live_stack(tmp_path, limits={"request_timeout_s": 1.0}) as stack:
        path = f"/v2.1/servers/{stack.locked}/action"
        started = time.monotonic()
        got = exchange(stack.port, b"", timeout=5,
                       chunks=[(_head(stack, "POST", path, 100), 0.0), (b'{"suspend"', 0.0)])
        assert got.responses and got.responses[0].status == 408
        assert time.monotonic() - started < 3.5
        assert got.responses[0].json()["computeFault"]["code"] == 408
        assert _refusal_count(stack, "limit_request_timeout") >= 1
        assert stack.forbidden_executions() == []
        assert stack.health().status == 200


def _poll(stack: LiveStack, method: str, path: str, status: int, seconds: float) -> RawResponse:
    deadline = time.monotonic() + seconds
    while True:
        resp = stack.request(method, path)
        if resp.status == status or time.monotonic() > deadline:
            return resp
        time.sleep(0.05)


def test_concurrent_requests_over_the_cap_get_503(tmp_path: Path) -> None:
    with live_stack(tmp_path, limits={"max_concurrent_requests": 2, "request_timeout_s": 4.0}) as stack:
        path = f"/v2.1/servers/{stack.free}/action"
        held = [socket.create_connection(("127.0.0.1", stack.port)) for _ in range(2)]
        try:
            for s in held:
                s.sendall(_head(stack, "POST", path, 50) + b"{")
            resp = _poll(stack, "DELETE", f"/v2.1/servers/{stack.locked}", 503, 3.0)
            assert resp.status == 503
            assert resp.json()["serviceUnavailable"]["code"] == 503
            assert resp.header("Retry-After") == "1"
            assert stack.health().status == 200
        finally:
            for s in held:
                s.close()
        assert _poll(stack, "DELETE", f"/v2.1/servers/{stack.locked}", 409, 6.0).status == 409
        assert _refusal_count(stack, "limit_concurrency") >= 1


def test_slow_upstream_gets_504(tmp_path: Path) -> None:
    with live_stack(tmp_path, backend={"timeout_s": 1.0}) as stack:
        stack.nova.stall_s["server_diagnostics.index"] = 3.0
        started = time.monotonic()
        resp = stack.request("GET", f"/v2.1/servers/{stack.free}/diagnostics")
        assert resp.status == 504 and not resp.from_upstream
        assert resp.json()["computeFault"]["code"] == 504
        assert time.monotonic() - started < 2.5
        assert _refusal_count(stack, "limit_upstream_timeout") >= 1
        assert stack.health().status == 200


@pytest.mark.parametrize(("request_bytes", "code"), [
    ("DELETE /v2.1/servers/{sid} HTTP/1.1\r\nHost: s\r\n" + "X-P: v\r\n" * 150 + "\r\n", "limit_header_count"),
    ("DELETE /v2.1/servers/{sid} HTTP/1.1\r\nHost: s\r\nX-Big: " + "a" * 20000 + "\r\n\r\n", "limit_header_line"),
    ("POST /v2.1/servers/{sid}/action HTTP/1.1\r\nHost: s\r\nContent-Length: 200000\r\n\r\n", "limit_body_bytes"),
])
def test_each_limit_hit_is_counted(tmp_path: Path, request_bytes: str, code: str) -> None:
    with live_stack(tmp_path) as stack:
        before = _refusal_count(stack, code)
        got = stack.send(request_bytes.format(sid=stack.locked).encode())
        assert got.responses and got.responses[0].status in (413, 431)
        assert "overLimit" in got.responses[0].json()
        assert _refusal_count(stack, code) == before + 1


def test_json_depth_limit_is_configurable_and_counted(tmp_path: Path) -> None:
    with live_stack(tmp_path, limits={"max_json_depth": 4}) as stack:
        body = b'{"suspend": [[[[1]]]]}'
        resp = stack.request("POST", f"/v2.1/servers/{stack.free}/action", body=body)
        assert resp.status == 400 and "badRequest" in resp.json()
        assert _refusal_count(stack, "limit_json_depth") == 1
        ok = stack.request("POST", f"/v2.1/servers/{stack.free}/action", body=b'{"suspend": [[1]]}')
        assert ok.status == 202


def test_header_limit_is_pure_and_ordered() -> None:
    limits = LimitsConfig(max_header_line_bytes=100, max_header_bytes=150, max_header_count=3)
    assert header_limit(limits, "GET", "/", [(b"a", b"b")]) is None
    assert header_limit(limits, "GET", "/" + "x" * 100, []) == (414, "limit_header_line", "Request-URI Too Long")
    assert header_limit(limits, "GET", "/", [(b"a", b"b")] * 4)[1] == "limit_header_count"  # type: ignore[index]
    assert header_limit(limits, "GET", "/", [(b"a", b"b" * 99)])[1] == "limit_header_line"  # type: ignore[index]
    assert header_limit(limits, "GET", "/", [(b"a", b"b" * 60)] * 3)[1] == "limit_header_bytes"  # type: ignore[index]


def test_server_settings_give_the_parser_room_above_the_limits() -> None:
    limits = LimitsConfig(max_header_line_bytes=1000, max_header_count=10, header_timeout_s=7.0)
    assert server_settings(limits) == {"max_line_size": 2000, "max_field_size": 2000, "max_headers": 20,
                                       "keepalive_timeout": 7.0}


def test_stalled_reads_do_not_block_other_requests(tmp_path: Path) -> None:
    with live_stack(tmp_path, backend={"timeout_s": 5.0}) as stack:
        stack.nova.stall_s["server_diagnostics.index"] = 1.5
        slow = threading.Thread(target=stack.request, args=("GET", f"/v2.1/servers/{stack.free}/diagnostics"))
        slow.start()
        time.sleep(0.2)
        started = time.monotonic()
        assert stack.request("DELETE", f"/v2.1/servers/{stack.locked}").status == 409
        assert time.monotonic() - started < 1.0
        slow.join(5)
