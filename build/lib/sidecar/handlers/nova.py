"""The Nova-facing handler: every request that is not Statelock's own goes through here.

Before anything is classified the request is held to ``limits.*``: header line,
size and count (414/431), body size (413), the time to send the body (408) and
the number of requests in flight (503); each answer is Nova-shaped and counted in
``statelock_refused_requests`` under ``limit_<name>``. The aiohttp server's own
parser limits and header timeout come from ``server_settings``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from sidecar.appkeys import CONFIG, METRICS, PIPELINE
from sidecar.backends.base import IncomingRequest, drain
from sidecar.config import LimitsConfig
from sidecar.errors import LimitExceeded, SidecarError
from sidecar.metrics import Metrics
from sidecar.pipeline import Reply


@dataclass
class RequestLimiter:
    """Per-application state of the limits: how many requests are in flight."""

    in_flight: int = 0


LIMITER = web.AppKey("nova_request_limiter", RequestLimiter)


def add_limits(app: web.Application) -> RequestLimiter:
    """Give ``app`` its RequestLimiter (idempotent); without one, ``max_concurrent_requests`` is not enforced."""
    if LIMITER not in app:
        app[LIMITER] = RequestLimiter()
    return app[LIMITER]


def server_settings(limits: LimitsConfig) -> dict[str, Any]:
    """The aiohttp server settings for ``web.Application(handler_args=...)``.

    The parser's hard ceilings are twice the configured limits, so a request just
    over a limit still reaches ``nova_handler`` and gets a Nova-shaped 414/431; far
    over, the parser answers a plain 400 and closes. ``keepalive_timeout`` is also
    aiohttp's deadline for a request's headers (slow clients are disconnected).
    """
    return {
        "max_line_size": 2 * limits.max_header_line_bytes,
        "max_field_size": 2 * limits.max_header_line_bytes,
        "max_headers": 2 * limits.max_header_count,
        "keepalive_timeout": limits.header_timeout_s,
    }


def header_limit(limits: LimitsConfig, method: str, raw_path: str,
                 raw_headers: Sequence[tuple[bytes, bytes]]) -> tuple[int, str, str] | None:
    """The first header limit a request is over, as (status, limit code, message), or None."""
    if len(method) + len(raw_path.encode("utf-8", "surrogateescape")) + 10 > limits.max_header_line_bytes:
        return 414, "limit_header_line", "Request-URI Too Long"
    if len(raw_headers) > limits.max_header_count:
        return 431, "limit_header_count", f"More than {limits.max_header_count} header lines."
    total = 0
    for name, value in raw_headers:
        line = len(name) + len(value) + 2
        if line > limits.max_header_line_bytes:
            return 431, "limit_header_line", (f"A header line is longer than {limits.max_header_line_bytes} "
                                              "bytes.")
        total += line + 2
    if total > limits.max_header_bytes:
        return 431, "limit_header_bytes", f"Headers are larger than {limits.max_header_bytes} bytes."
    return None


async def nova_handler(request: web.Request) -> web.StreamResponse:
    """Hold the request to the limits, run it through the Pipeline, answer or stream the reply."""
    limits = request.app[CONFIG].limits
    metrics = request.app[METRICS]
    over = header_limit(limits, request.method, request.raw_path, request.raw_headers)
    if over is not None:
        raise _over_limit(metrics, *over)
    limiter = request.app.get(LIMITER)
    if limiter is not None and limiter.in_flight >= limits.max_concurrent_requests:
        raise _over_limit(metrics, 503, "limit_concurrency", "Too many requests in flight; retry.",
                          retry_after=True)
    if limiter is not None:
        limiter.in_flight += 1
    try:
        body = await _read_body(request, limits, metrics)
        peer = request.transport.get_extra_info("peername") if request.transport else None
        incoming = IncomingRequest(
            method=request.method,
            raw_path=request.raw_path,
            headers=request.headers,
            body=body,
            client_ip=str(peer[0]) if peer else "",
            scheme=request.scheme,
            host=request.host,
        )
        reply = await request.app[PIPELINE].handle(incoming)
        return await send_reply(request, reply)
    finally:
        if limiter is not None:
            limiter.in_flight -= 1


async def _read_body(request: web.Request, limits: LimitsConfig, metrics: Metrics) -> bytes:
    limit = limits.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise _over_limit(metrics, 413, "limit_body_bytes", f"Request body is larger than {limit} bytes.")
    try:
        async with asyncio.timeout(limits.request_timeout_s):
            return await request.read()
    except web.HTTPRequestEntityTooLarge:
        raise _over_limit(metrics, 413, "limit_body_bytes",
                          f"Request body is larger than {limit} bytes.") from None
    except TimeoutError:
        raise _over_limit(metrics, 408, "limit_request_timeout",
                          f"The request body did not arrive within {limits.request_timeout_s:g} s.") from None


def _over_limit(metrics: Metrics, status: int, code: str, message: str,
                retry_after: bool = False) -> LimitExceeded:
    """The error for a request over a limit (counted); its connection is closed after the answer."""
    metrics.refusals.labels(code).inc()
    return LimitExceeded(message, code, status, headers=(("Retry-After", "1"),) if retry_after else (),
                         close_connection=True)


_BUFFERED_MAX = 1 << 20


async def send_reply(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Write a Reply: a local body, or the backend's streamed response."""
    if reply.stream is None:
        resp = web.Response(status=reply.status, body=reply.body)
        for name, value in reply.headers:
            resp.headers.add(name, value)
        return resp
    stream = reply.stream
    if stream.length is not None and stream.length <= _BUFFERED_MAX:
        # NOTE: a small response of known size goes out in one write, not chunked.
        body = await drain(stream)
        resp = web.Response(status=reply.status, body=body)
        for name, value in reply.headers:
            resp.headers.add(name, value)
        return resp
    out = web.StreamResponse(status=reply.status)
    for name, value in reply.headers:
        out.headers.add(name, value)
    try:
        await out.prepare(request)
        try:
            async for chunk in stream.chunks:
                await out.write(chunk)
        except SidecarError as exc:
            # NOTE: the status line is sent; the client can only see the body cut short.
            raise ConnectionResetError(f"backend response broke off: {exc.message}") from exc
        await out.write_eof()
    finally:
        if stream.release is not None:
            res = stream.release()
            if inspect.isawaitable(res):
                with contextlib.suppress(Exception):
                    await res
    return out
