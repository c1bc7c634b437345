"""The error boundary: the one place a ``SidecarError`` becomes a Nova-shaped fault.

``error_boundary`` is an aiohttp middleware around every route. Whatever raises a
``SidecarError`` below it (classification, identity, the policy, a store, a backend,
a handler's own validation) is answered here: Nova's fault body for the status,
the microversion headers Nova echoes, the error's own headers (a 401's
WWW-Authenticate, a 503's Retry-After), the ``X-Statelock-Decision-Id`` of the record
that holds it, and a closed connection when the request must not be followed.
"""

from __future__ import annotations

from aiohttp import web
from aiohttp.typedefs import Handler

from sidecar.errors import SidecarError
from sidecar.faults import fault_body, version_headers
from sidecar.recorder import DECISION_HEADER


def fault_response(exc: SidecarError) -> web.Response:
    """The Nova-shaped answer to ``exc``."""
    resp = web.Response(status=exc.status, body=fault_body(exc.status, exc.message),
                        content_type="application/json", charset="UTF-8")
    for name, value in (*version_headers(exc.microversion), *exc.headers):
        resp.headers.add(name, value)
    if exc.decision_id:
        resp.headers[DECISION_HEADER] = exc.decision_id
    if exc.close_connection:
        resp.force_close()
    return resp


@web.middleware
async def error_boundary(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer any SidecarError raised by ``handler`` with ``fault_response``."""
    try:
        return await handler(request)
    except SidecarError as exc:
        return fault_response(exc)
