"""Request classification: method + path + headers + body -> Action.

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

import json
import math
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote_to_bytes

import yaml

from sidecar.errors import BadRequest, ConfigError, NotFound

KINDS = ("read", "state_change", "create", "delete", "lock", "unlock", "unknown")
_ROUTE_KINDS = (*KINDS, "action", "migration_action")
_STATE_KINDS = frozenset({"state_change", "create", "delete", "lock", "unlock"})
_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")
_PROJECT_RE = re.compile(r"^[0-9a-f-]+$")
# Characters a canonical path may hold once decoded; anything else is refused.
_SAFE_PATH_RE = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@/-]*$")
_JSON_TYPES = ("", "application/json", "application/vnd.openstack.compute+json", "text/plain")
_OVERRIDE_HEADERS = ("x-http-method-override", "x-http-method", "x-method-override")
# Headers Statelock or the upstream read as one value; a second copy is refused.
_SINGLE_HEADERS = ("content-type", "x-auth-token", "host")
# Connection options that are hop-by-hop anyway; any other names a header to strip.
_CONNECTION_OPTIONS = frozenset({"keep-alive", "close", "upgrade", "te", "trailer", "trailers",
                                 "transfer-encoding", "proxy-connection", "expect"})
_UNKNOWN_READS = ("forward", "deny")
_READ_METHODS = ("GET", "HEAD", "OPTIONS")
_QUERY_SPLIT_RE = re.compile("[&;]")


class LimitExceeded(BadRequest):
    """A request is over one of the ``limits.*``; ``code`` names the limit in metrics."""

    def __init__(self, message: str, code: str, status: int = 400) -> None:
        super().__init__(message, status)
        self.code = code


@dataclass(frozen=True)
class Action:
    """What one request asks for.

    ``name`` is the name the policy sees (a Nova action key or a route name),
    ``kind`` one of ``KINDS``, ``instance_id`` the canonical lowercase UUID or None,
    ``params`` the non-secret action parameters named in the route table.
    ``forward_path`` is the path (and query) to send upstream: the received bytes
    when they needed no decoding, else the canonical form that was classified.
    """

    name: str
    kind: str
    method: str
    path: str
    forward_path: str
    instance_id: str | None = None
    project_in_path: str | None = None
    microversion: tuple[int, int] = (2, 1)
    legacy_v2: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None

    @property
    def is_state_change(self) -> bool:
        return self.kind in _STATE_KINDS

    def at_least(self, major: int, minor: int) -> bool:
        """True when the effective microversion is at least major.minor."""
        return self.microversion >= (major, minor)


@dataclass(frozen=True)
class _Route:
    segments: tuple[str, ...]
    method: str
    kind: str
    name: str


@dataclass(frozen=True)
class _ActionSpec:
    kind: str
    name: str
    params: tuple[str, ...]


@dataclass(frozen=True)
class RouteTable:
    """The parsed ``actions.yaml``; built once at start-up, read on every request."""

    min_version: tuple[int, int]
    max_version: tuple[int, int]
    path_prefixes: tuple[str, ...]
    server_collections: frozenset[str]
    server_routes: tuple[_Route, ...]
    actions: Mapping[str, _ActionSpec]
    migration_actions: Mapping[str, _ActionSpec]
    other_resources: frozenset[str]
    other_routes: tuple[_Route, ...] = ()


def _parse_version(text: str) -> tuple[int, int]:
    m = _VERSION_RE.match(text.strip())
    if not m:
        raise ValueError(text)
    return int(m.group(1)), int(m.group(2))


def _route(r: Mapping[str, Any], i: int, path: str | Path, section: str) -> _Route:
    if r["kind"] not in _ROUTE_KINDS:
        raise ConfigError(f"{path}: {section}[{i}].kind {r['kind']!r} is not a kind")
    segs = tuple(s for s in str(r["path"]).split("/") if s)
    return _Route(segs, str(r["method"]).upper(), r["kind"], r["name"])


def load_route_table(path: str | Path) -> RouteTable:
    """Parse the route table; raises ConfigError naming the bad entry."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"classifier.actions: cannot load {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"classifier.actions: {path} must hold a mapping")
    try:
        mv = raw["microversion"]
        routes = [_route(r, i, path, "server_routes") for i, r in enumerate(raw["server_routes"])]

        def specs(section: Mapping[str, Any]) -> dict[str, _ActionSpec]:
            out = {}
            for key, spec in section.items():
                if spec["kind"] not in KINDS:
                    raise ConfigError(f"{path}: action {key}.kind {spec['kind']!r} is not a kind")
                out[key] = _ActionSpec(
                    spec["kind"], spec.get("name", key), tuple(spec.get("params", ()))
                )
            return out

        return RouteTable(
            min_version=_parse_version(mv["min"]),
            max_version=_parse_version(mv["max"]),
            path_prefixes=tuple(raw.get("path_prefixes", [""])),
            server_collections=frozenset(raw["server_collections"]),
            server_routes=tuple(routes),
            actions=specs(raw["actions"]),
            migration_actions=specs(raw.get("migration_actions", {})),
            other_resources=frozenset(raw.get("other_resources", [])),
            other_routes=tuple(_route(r, i, path, "other_routes")
                               for i, r in enumerate(raw.get("other_routes", []))),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"classifier.actions: {path} is malformed near {exc}") from exc


def effective_microversion(
    headers: Mapping[str, str], table: RouteTable
) -> tuple[int, int]:
    """Nova's microversion algorithm (``microversion_parse``); BadRequest if unparseable.

    The standard ``OpenStack-API-Version`` header wins, scanned from its last
    comma-separated item for service ``compute``; then the legacy
    ``X-OpenStack-Nova-API-Version`` (its last item); else 2.1.
    """
    value: str | None = None
    std = _joined(headers, "OpenStack-API-Version")
    if std:
        for item in reversed(std.split(",")):
            parts = item.strip().split(None, 1)
            if len(parts) == 2 and parts[0].lower() == "compute":
                value = parts[1].strip()
                break
    if value is None:
        legacy = _joined(headers, "X-OpenStack-Nova-API-Version")
        if legacy:
            value = legacy.split(",")[-1].strip()
    if value is None:
        return table.min_version
    if value.lower() == "latest":
        return table.max_version
    try:
        version = _parse_version(value)
    except ValueError:
        raise BadRequest(f"API Version String {value} is of invalid format. Must be of format "
                         "MajorNum.MinorNum.") from None
    if not table.min_version <= version <= table.max_version:
        lo, hi = table.min_version, table.max_version
        raise BadRequest(
            f"Version {value} is not supported by the API. Minimum is {lo[0]}.{lo[1]} and "
            f"maximum is {hi[0]}.{hi[1]}.",
            status=406,
        )
    return version


def _values(headers: Mapping[str, str], name: str) -> list[str]:
    getall = getattr(headers, "getall", None)
    if getall is not None:
        return list(getall(name, []))
    value = headers.get(name)
    return [] if value is None else [value]


def _joined(headers: Mapping[str, str], name: str) -> str | None:
    """Every copy of a header joined with ``,``, as the WSGI server in front of Nova does."""
    values = _values(headers, name)
    return ",".join(values) if values else None


def check_headers(headers: Mapping[str, str]) -> None:
    """Refuse headers the upstream could read differently from Statelock (BadRequest).

    Method-override headers; names with ``_`` (WSGI servers fold ``_`` and ``-``
    into the same environ key); a second Content-Type, X-Auth-Token or Host;
    Connection options naming a header that forwarding would then strip.
    """
    for name in headers:
        low = name.lower()
        if low in _OVERRIDE_HEADERS:
            raise BadRequest(f"Method override header {name} is not accepted")
        if "_" in name:
            raise BadRequest(f"Header name {name!r} is not accepted: it holds '_'")
    for name in _SINGLE_HEADERS:
        if len(_values(headers, name)) > 1:
            raise BadRequest(f"Header {name} is repeated")
    for value in _values(headers, "Connection"):
        for option in value.split(","):
            if option.strip() and option.strip().lower() not in _CONNECTION_OPTIONS:
                raise BadRequest(f"Connection option {option.strip()!r} is not accepted")


def check_query(query: str) -> None:
    """Refuse a ``_method`` query parameter (BadRequest).

    Routes' RoutesMiddleware, in front of Nova's controllers, matches a request whose
    query holds ``_method=X`` as if its method were X: ``GET /servers/ID?_method=DELETE``
    deletes the server. Names are compared percent-decoded, since the forwarding
    client re-quotes ``%5F`` as ``_``.
    """
    if "_" not in query and "%" not in query:
        return
    for piece in _QUERY_SPLIT_RE.split(query):
        name = piece.split("=", 1)[0].replace("+", " ")
        if unquote_to_bytes(name).strip().lower() == b"_method":
            raise BadRequest("The _method query parameter is not accepted")


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


def _canonical_uuid(segment: str) -> str | None:
    try:
        return str(uuid.UUID(segment))
    except ValueError:
        return None


def normalise_path(raw_path: str) -> tuple[str, str, bool]:
    """Decode and canonicalise a request path as the WSGI server in front of Nova would.

    Returns (canonical path, query string, whether the raw path needed decoding).
    Raises BadRequest for paths that could be read two ways: non-UTF-8 or control
    characters after decoding, ``.`` or ``..`` segments, a backslash.
    """
    path, _, query = raw_path.partition("?")
    decoded_bytes = unquote_to_bytes(path)
    try:
        decoded = decoded_bytes.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("Malformed request URL: not UTF-8") from None
    if not decoded.startswith("/"):
        raise BadRequest("Malformed request URL")
    if not _SAFE_PATH_RE.fullmatch(decoded):
        raise BadRequest("Malformed request URL: unexpected characters in path")
    segments = decoded.split("/")
    if any(s in (".", "..") for s in segments):
        raise BadRequest("Malformed request URL: '.' or '..' segment")
    canonical = re.sub("/{2,}", "/", decoded)
    return canonical, query, canonical != path


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
        return Action(name=special.name, kind=special.kind, **base)
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
    return Action(name=route.name, kind=route.kind, instance_id=instance_id, body=value, **base)
