"""JSON request bodies, parsed as Nova parses them, refusing what Nova would read differently."""

from __future__ import annotations

import json
import math
from typing import Any

from sidecar.errors import BadRequest, LimitExceeded

_JSON_TYPES = ("", "application/json", "application/vnd.openstack.compute+json", "text/plain")


def _reject_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise BadRequest(f"Malformed request body: duplicate key {key!r}")
        out[key] = value
    return out


def _reject_constant(name: str) -> Any:
    # NOTE: NaN and Infinity are not JSON; Python (and so Nova) reads them, but no Nova
    # schema accepts them and the policy input could not carry them.
    raise BadRequest(f"Malformed request body: {name} is not a number")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BadRequest(f"Malformed request body: {text[:40]} is out of range")
    return value


def _depth(value: Any, limit: int) -> None:
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, d = stack.pop()
        if d > limit:
            raise LimitExceeded(f"Malformed request body: JSON nested deeper than {limit}",
                                "limit_json_depth")
        if isinstance(item, dict):
            stack.extend((v, d + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, d + 1) for v in item)


def parse_json_body(body: bytes, content_type: str, max_depth: int) -> Any:
    """Parse a request body as Nova would, refusing what Nova would read differently.

    Returns the decoded JSON value, or None for an empty body. Raises BadRequest
    (415 for a content type Nova refuses, 400 otherwise).
    """
    mime = content_type.split(";", 1)[0].strip()
    if mime not in _JSON_TYPES:
        raise BadRequest("Unsupported Content-Type", status=415)
    if not body:
        return None
    if body.startswith(b"\xef\xbb\xbf"):
        raise BadRequest("Malformed request body: byte order mark")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("Malformed request body: not UTF-8") from None
    try:
        value = json.loads(text, object_pairs_hook=_reject_duplicates,
                           parse_constant=_reject_constant, parse_float=_finite_float)
    except RecursionError:
        raise LimitExceeded("Malformed request body: JSON nested too deeply",
                            "limit_json_depth") from None
    except ValueError as exc:
        if isinstance(exc, BadRequest):  # pragma: no cover - BadRequest is not a ValueError
            raise
        raise BadRequest("Malformed request body") from None
    _depth(value, max_depth)
    return value
