"""Request classification: method + path + headers + body -> Action (the router).

A pure function over the route table in ``config/actions.yaml``. It reads a request
the way Nova's API stack does (percent-decoded PATH_INFO, ``//`` collapsed, Python
``json`` with ``\\u`` escapes decoded) but refuses, with ``BadRequest``, everything
where Statelock and the upstream could read the request differently: duplicate JSON
keys, zero or several action keys, non-UTF-8, odd path segments, unknown actions,
a ``_method`` query parameter (Routes, in front of Nova's controllers, routes
``GET /servers/X?_method=DELETE`` to the delete), header names with ``_`` (the WSGI
server reads ``OpenStack_API_Version`` as ``OpenStack-API-Version``), a repeated
Content-Type or X-Auth-Token, and Connection options that would strip a header
Statelock read before forwarding. Nothing that raises here is ever forwarded.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from sidecar.classify.action import Action
from sidecar.classify.body import parse_json_body
from sidecar.classify.checks import check_headers, check_query, effective_microversion, normalise_path
from sidecar.classify.routes import RouteTable, as_action_kind
from sidecar.errors import BadRequest, NotFound

_PROJECT_RE = re.compile(r"^[0-9a-f-]+$")
_UNKNOWN_READS = ("forward", "deny")
_READ_METHODS = ("GET", "HEAD", "OPTIONS")


def _canonical_uuid(segment: str) -> str | None:
    try:
        return str(uuid.UUID(segment))
    except ValueError:
        return None


def _match(route: tuple[str, ...], segs: list[str]) -> bool:
    if len(route) != len(segs):
        return False
    return all(r in ("{id}", "*") or r == s for r, s in zip(route, segs, strict=True))


def classify(
    method: str,
    raw_path: str,
    headers: Mapping[str, str],
    body: bytes,
    table: RouteTable,
    max_json_depth: int = 32,
    unknown_reads: str = "forward",
) -> Action:
    """Classify one request. Raises BadRequest or NotFound for what must not be forwarded.

    ``unknown_reads`` is ``forward`` (a GET, HEAD or OPTIONS to a route the table
    does not list is a read) or ``deny`` (only a GET of a listed route is a read;
    anything else unlisted is ``unknown``, which is never forwarded).
    """
    if unknown_reads not in _UNKNOWN_READS:
        raise ValueError(f"unknown_reads must be one of {_UNKNOWN_READS}")
    method = method.upper()
    check_headers(headers)
    path, query, changed = normalise_path(raw_path)
    check_query(query)
    forward_path = (quote(path, safe="/:@!$&'()*+,;=-._~") if changed else path) + (
        "?" + query if query else ""
    )
    if method in ("GET", "HEAD", "DELETE") and body:
        raise BadRequest(f"A {method} request must not carry a body")

    segs = path.split("/")[1:]
    if segs and segs[-1] == "":
        segs = segs[:-1]
        trailing = True
    else:
        trailing = False
    base: dict[str, Any] = {"method": method, "path": path, "forward_path": forward_path}
    rest = None
    legacy = False
    project = None
    for prefix in table.path_prefixes:
        pre = [s for s in prefix.split("/") if s]
        if segs[: len(pre)] != pre or len(segs) <= len(pre):
            continue
        version = segs[len(pre)]
        if version not in ("v2", "v2.1"):
            continue
        legacy = version == "v2"
        rest = segs[len(pre) + 1 :]
        if rest and rest[0] not in table.server_collections and rest[0] not in table.other_resources \
                and _PROJECT_RE.match(rest[0]):
            project, rest = rest[0], rest[1:]
        break
    if rest is None:
        return _unknown_or_read(method, base, "unversioned", unknown_reads, listed=path == "/")

    mv = (2, 1) if legacy else effective_microversion(headers, table)
    base.update(microversion=mv, legacy_v2=legacy, project_in_path=project)
    if not rest:
        return _unknown_or_read(method, base, "version_document", unknown_reads, listed=True)
    if rest[0] in table.server_collections:
        if trailing and method not in ("GET", "HEAD"):
            raise NotFound("The resource could not be found.")
        return _classify_server(method, rest[1:], headers, body, table, max_json_depth, base,
                                unknown_reads)
    special = next((r for r in table.other_routes if r.method == method and _match(r.segments, rest)),
                   None)
    if special is not None:
        return Action(name=special.name, kind=as_action_kind(special.kind), **base)
    if rest[0] in table.other_resources:
        if method in _READ_METHODS:
            return _unknown_or_read(method, base, rest[0], unknown_reads, listed=True)
        if method in ("POST", "PUT"):
            body_value = parse_json_body(body, headers.get("Content-Type", ""), max_json_depth)
        else:
            body_value = None
        return Action(name=rest[0], kind="state_change", body=body_value, **base)
    return _unknown_or_read(method, base, "unknown_route", unknown_reads)


def _unknown_or_read(method: str, base: dict[str, Any], name: str, unknown_reads: str,
                     listed: bool = False) -> Action:
    """A read for GET/HEAD/OPTIONS (with ``unknown_reads: deny``, only a GET of a listed route)."""
    if method in _READ_METHODS and (unknown_reads == "forward" or (listed and method == "GET")):
        return Action(name=name, kind="read", **base)
    return Action(name=name, kind="unknown", **base)


def _classify_server(
    method: str,
    segs: list[str],
    headers: Mapping[str, str],
    body: bytes,
    table: RouteTable,
    max_json_depth: int,
    base: dict[str, Any],
    unknown_reads: str,
) -> Action:
    route = next(
        (r for r in table.server_routes if r.method == method and _match(r.segments, segs)),
        None,
    )
    if route is None:
        return _unknown_or_read(method, base, "unknown_route", unknown_reads)
    instance_id = None
    if route.segments and route.segments[0] == "{id}":
        instance_id = _canonical_uuid(segs[0])
        if instance_id is None:
            if route.kind == "read":
                return Action(name=route.name, kind="read", **base)
            raise NotFound(f"Instance {segs[0]} could not be found.")
    if route.kind == "read":
        return Action(name=route.name, kind="read", instance_id=instance_id, **base)
    content_type = headers.get("Content-Type", "")
    value = parse_json_body(body, content_type, max_json_depth) if method in ("POST", "PUT") \
        else None
    if route.kind in ("action", "migration_action"):
        specs = table.actions if route.kind == "action" else table.migration_actions
        if not isinstance(value, dict) or len(value) != 1:
            raise BadRequest("Malformed request body")
        key, arg = next(iter(value.items()))
        spec = specs.get(key)
        if spec is None:
            raise BadRequest(f"There is no such action: {key}")
        params = {p: arg[p] for p in spec.params if isinstance(arg, dict) and p in arg
                  and isinstance(arg[p], str | int | float | bool | None)}
        if spec.kind == "lock" and isinstance(arg, dict) and "locked_reason" in arg:
            params["locked_reason"] = arg["locked_reason"]
        return Action(name=spec.name, kind=spec.kind, instance_id=instance_id, params=params,
                      body=value, **base)
    return Action(name=route.name, kind=as_action_kind(route.kind), instance_id=instance_id,
                  body=value, **base)


class Classifier:
    """The classify stage: ``classify`` bound to the route table and the classifier settings."""

    def __init__(self, table: RouteTable, max_json_depth: int = 32,
                 unknown_reads: str = "forward") -> None:
        if unknown_reads not in _UNKNOWN_READS:
            raise ValueError(f"unknown_reads must be one of {_UNKNOWN_READS}")
        self.table = table
        self.max_json_depth = max_json_depth
        self.unknown_reads = unknown_reads

    def classify(self, method: str, raw_path: str, headers: Mapping[str, str], body: bytes) -> Action:
        """The Action of one request; BadRequest or NotFound for what must not be forwarded."""
        return classify(method, raw_path, headers, body, self.table, self.max_json_depth,
                        self.unknown_reads)
