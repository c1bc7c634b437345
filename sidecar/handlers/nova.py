"""The Nova-facing handler: every request that is not Statelock's own goes through here."""

from __future__ import annotations

import contextlib
import inspect

from aiohttp import web

from sidecar.appkeys import ENFORCER
from sidecar.enforce import IncomingRequest, Reply
from sidecar.faults import fault_body


async def nova_handler(request: web.Request) -> web.StreamResponse:
    """Read the request, run it through the Enforcer, and answer or stream the reply."""
    enforcer = request.app[ENFORCER]
    limit = enforcer.cfg.limits.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        return _too_large(limit)
    try:
        body = await request.read()
    except web.HTTPRequestEntityTooLarge:
        return _too_large(limit)
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
    reply = await enforcer.handle(incoming)
    return await send_reply(request, reply)


def _too_large(limit: int) -> web.Response:
    return web.Response(
        status=413, body=fault_body(413, f"Request body is larger than {limit} bytes."),
        content_type="application/json")


async def send_reply(request: web.Request, reply: Reply) -> web.StreamResponse:
    """Write a Reply: a local body, or the backend's streamed response."""
    if reply.stream is None:
        resp = web.Response(status=reply.status, body=reply.body)
        for name, value in reply.headers:
            resp.headers.add(name, value)
        if reply.content_type:
            resp.headers["Content-Type"] = f"{reply.content_type}; charset=UTF-8"
        return resp
    stream = reply.stream
    out = web.StreamResponse(status=reply.status)
    for name, value in reply.headers:
        out.headers.add(name, value)
    try:
        await out.prepare(request)
        async for chunk in stream.chunks:
            await out.write(chunk)
        await out.write_eof()
    finally:
        if stream.release is not None:
            res = stream.release()
            if inspect.isawaitable(res):
                with contextlib.suppress(Exception):
                    await res
    return out
