"""Request checks: headers, query, path and microversion, read as the stack in front of Nova reads them.

Each check refuses with ``BadRequest`` what Statelock and the upstream could read
differently; none of them looks at the body (``sidecar.classify.body`` does).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import unquote_to_bytes

from sidecar.classify.routes import RouteTable, parse_version
from sidecar.errors import BadRequest

# Characters a canonical path may hold once decoded; anything else is refused.
_SAFE_PATH_RE = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@/-]*$")
_OVERRIDE_HEADERS = ("x-http-method-override", "x-http-method", "x-method-override")
# Headers Statelock or the upstream read as one value; a second copy is refused.
_SINGLE_HEADERS = ("content-type", "x-auth-token", "host")
# Connection options that are hop-by-hop anyway; any other names a header to strip.
_CONNECTION_OPTIONS = frozenset({"keep-alive", "close", "upgrade", "te", "trailer", "trailers",
                                 "transfer-encoding", "proxy-connection", "expect"})
_QUERY_SPLIT_RE = re.compile("[&;]")


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
        version = parse_version(value)
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
