"""Nova-shaped error bodies and the microversion headers Nova echoes (pure; used by the boundary)."""

from __future__ import annotations

import json

FAULT_NAMES = {
    400: "badRequest",
    401: "unauthorized",
    403: "forbidden",
    404: "itemNotFound",
    405: "badMethod",
    409: "conflictingRequest",
    413: "overLimit",
    414: "overLimit",
    415: "badMediaType",
    429: "overLimit",
    431: "overLimit",
    501: "notImplemented",
    503: "serviceUnavailable",
}


def fault_body(status: int, message: str) -> bytes:
    """``{"<faultName>": {"code": status, "message": message}}`` as Nova's wsgi.Fault sends."""
    if status == 401:
        # NOTE: keystonemiddleware answers before Nova, in the keystone error shape.
        doc = {"error": {"code": 401, "title": "Unauthorized", "message": message}}
    else:
        doc = {FAULT_NAMES.get(status, "computeFault"): {"code": status, "message": message}}
    return json.dumps(doc).encode()


def version_headers(microversion: tuple[int, int] | None) -> list[tuple[str, str]]:
    """The microversion headers Nova echoes on every v2.1 response (none for legacy v2)."""
    if microversion is None:
        return []
    text = f"{microversion[0]}.{microversion[1]}"
    return [
        ("OpenStack-API-Version", f"compute {text}"),
        ("X-OpenStack-Nova-API-Version", text),
        ("Vary", "OpenStack-API-Version"),
        ("Vary", "X-OpenStack-Nova-API-Version"),
    ]
