"""The server's own life: requests in flight, and whether it is draining for a stop.

``ServerState`` is set up by ``create_app``; ``count_in_flight`` (a middleware around
every route) keeps ``in_flight``; ``serve`` sets ``draining`` when SIGTERM or SIGINT
arrives, and from then on ``/statelock/v1/readyz`` answers 503 while the requests
already in flight finish.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiohttp import web
from aiohttp.typedefs import Handler


@dataclass
class ServerState:
    """What the stop sequence and readiness need to know."""

    in_flight: int = 0
    draining: bool = False
    served: int = 0
    cut_off: int = 0


STATE = web.AppKey("server_state", ServerState)


@web.middleware
async def count_in_flight(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Count the request as in flight until its answer is written."""
    state = request.app[STATE]
    state.in_flight += 1
    try:
        response = await handler(request)
    except asyncio.CancelledError:
        state.cut_off += 1
        raise
    finally:
        state.in_flight -= 1
    state.served += 1
    return response
