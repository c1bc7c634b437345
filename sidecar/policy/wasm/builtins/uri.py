"""``uri.parse`` and ``uri.is_valid``: a URI read as Go's ``net/url.Parse`` reads it.

``uri.parse`` gives the non-empty parts OPA reports: scheme (lowercased), hostname
and port (of ``[user@]host[:port]``), path (unescaped) and raw_path (as written
when that differs from the path escaped again, else the path), raw_query, and
fragment (unescaped). What Go refuses (a control byte, a colon in a first path
segment, a bad port or escape, a malformed IP literal) makes ``uri.parse``
undefined and ``uri.is_valid`` false; so does the empty string for ``uri.is_valid``.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sidecar.policy.wasm import values
from sidecar.policy.wasm.builtins.operands import string_operand
from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, Halt, register

__all__: list[str] = []

_PATH, _HOST, _ZONE, _USER, _FRAGMENT = "path", "host", "zone", "user", "fragment"
_HEX = frozenset(b"0123456789abcdefABCDEF")
_ALNUM = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_USERINFO = _ALNUM | frozenset(b"-._:~!$&'()*+,;=%@")


class _URLError(ValueError):
    """Go's url.Parse refuses the text."""


def _should_escape(c: int, mode: str) -> bool:
    """Go's shouldEscape for the modes a URL's parts are read in."""
    if c in _ALNUM:
        return False
    ch = chr(c)
    if mode in (_HOST, _ZONE) and ch in "!$&'()*+,;=:[]<>\"":
        return False
    if ch in "-_.~":
        return False
    if ch in "$&+,/:;=?@":
        return {_PATH: ch == "?", _USER: ch in "@/?:", _FRAGMENT: False}.get(mode, True)
    return not (mode == _FRAGMENT and ch in "!()*")


def _unescape(s: bytes, mode: str) -> bytes:
    out, i = bytearray(), 0
    while i < len(s):
        c = s[i]
        if c == 0x25:
            pair = s[i + 1:i + 3]
            if len(pair) < 2 or not all(b in _HEX for b in pair):
                raise _URLError("invalid URL escape")
            value = int(pair, 16)
            if mode == _HOST and value < 0x80 and pair != b"25":
                raise _URLError("invalid URL escape")
            if mode == _ZONE and pair != b"25" and value != 0x20 and _should_escape(value, _HOST):
                raise _URLError("invalid URL escape")
            out.append(value)
            i += 3
            continue
        if mode in (_HOST, _ZONE) and c < 0x80 and _should_escape(c, mode):
            raise _URLError("invalid character in host name")
        out.append(c)
        i += 1
    return bytes(out)


def _escape(s: bytes, mode: str) -> bytes:
    return b"".join(b"%%%02X" % c if _should_escape(c, mode) else bytes([c]) for c in s)


def _scheme(raw: bytes) -> tuple[bytes, bytes]:
    for i, c in enumerate(raw):
        if c in _ALNUM and not 0x30 <= c <= 0x39:
            continue
        if (0x30 <= c <= 0x39 or c in b"+-.") and i > 0:
            continue
        if c == 0x3A:
            if i == 0:
                raise _URLError("missing protocol scheme")
            return raw[:i], raw[i + 1:]
        return b"", raw
    return b"", raw


def _valid_port(port: bytes) -> bool:
    return port == b"" or (port[:1] == b":" and all(0x30 <= c <= 0x39 for c in port[1:]))


def _ip_literal(hostname: bytes) -> None:
    """Go's netip.ParseAddr, as the host of ``[...]`` needs it: an IPv6 address, maybe with a zone."""
    text = hostname.decode("utf-8", "surrogateescape")
    first = next((c for c in text if c in ".:%"), "")
    if first != ":":
        raise _URLError("invalid IP-literal")
    address, percent, zone = text.partition("%")
    if percent and not zone:
        raise _URLError("zone must be a non-empty string")
    try:
        ipaddress.IPv6Address(address)
    except ValueError as exc:
        raise _URLError("invalid host") from exc


def _host(scheme: bytes, host: bytes) -> bytes:
    bracket = host.rfind(b"[")
    if bracket > 0:
        raise _URLError("invalid IP-literal")
    if bracket == 0:
        close = host.rfind(b"]")
        if close < 0:
            raise _URLError("missing ']' in host")
        colon_port = host[close + 1:]
        if not _valid_port(colon_port):
            raise _URLError("invalid port after host")
        port = _unescape(colon_port, _HOST)
        name = host[1:close]
        zone_at = name.find(b"%25")
        if zone_at >= 0:
            unescaped = _unescape(name[:zone_at], _HOST) + _unescape(name[zone_at:], _ZONE)
        else:
            unescaped = _unescape(name, _HOST)
        _ip_literal(unescaped)
        return b"[" + unescaped + b"]" + port
    first = host.find(b":")
    if first >= 0:
        # NOTE: OPA's Go (go.mod 1.26) has urlstrictcolons on: an http(s) host's port starts at its first colon.
        at = first if scheme in (b"http", b"https") else host.rfind(b":")
        if not _valid_port(host[at:]):
            raise _URLError("invalid port after host")
    return _unescape(host, _HOST)


def _authority(scheme: bytes, authority: bytes) -> bytes:
    at = authority.rfind(b"@")
    host = _host(scheme, authority[at + 1:] if at >= 0 else authority)
    if at >= 0:
        userinfo = authority[:at]
        if not all(c in _USERINFO for c in userinfo):
            raise _URLError("invalid userinfo")
        for part in userinfo.split(b":", 1):
            _unescape(part, _USER)
    return host


def _split_host_port(host: bytes) -> tuple[bytes, bytes]:
    port = b""
    colon = host.rfind(b":")
    if colon >= 0 and _valid_port(host[colon:]):
        host, port = host[:colon], host[colon + 1:]
    if host.startswith(b"[") and host.endswith(b"]"):
        host = host[1:-1]
    return host, port


def _parse(raw_url: bytes) -> dict[str, bytes]:
    """The parts of the URL OPA reports, as bytes; _URLError where Go's url.Parse fails."""
    raw, _, fragment = raw_url.partition(b"#")
    if any(c < 0x20 or c == 0x7F for c in raw):
        raise _URLError("invalid control character in URL")
    parts: dict[str, bytes] = {}
    if raw == b"*":
        parts["path"] = parts["raw_path"] = b"*"
    else:
        parts.update(_parse_rest(raw))
    if fragment:
        parts["fragment"] = _unescape(fragment, _FRAGMENT)
    return {k: v for k, v in parts.items() if v}


def _parse_rest(raw: bytes) -> dict[str, bytes]:
    scheme, rest = _scheme(raw)
    scheme = scheme.lower()
    query = b""
    if rest.endswith(b"?") and rest.count(b"?") == 1:
        rest = rest[:-1]
    else:
        rest, _, query = rest.partition(b"?")
    parts = {"scheme": scheme, "raw_query": query}
    if not rest.startswith(b"/"):
        if scheme:
            return parts
        if b":" in rest.partition(b"/")[0]:
            raise _URLError("first path segment in URL cannot contain colon")
    if rest.startswith(b"//") and (scheme or not rest.startswith(b"///")):
        authority, slash, tail = rest[2:].partition(b"/")
        rest = slash + tail
        parts["hostname"], parts["port"] = _split_host_port(_authority(scheme, authority))
    path = _unescape(rest, _PATH)
    parts["path"] = path
    parts["raw_path"] = path if _escape(path, _PATH) == rest else rest
    return parts


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Halt("uri.parse: a decoded part is not valid UTF-8, which this engine can't hold") from exc


@register("uri.parse")
def uri_parse(_ctx: EvalContext, uri: Any) -> dict[str, str]:
    """The URI's non-empty parts (see the module docstring); BuiltinError where Go refuses it."""
    try:
        parts = _parse(string_operand(uri, 1).encode("utf-8"))
    except _URLError as exc:
        raise BuiltinError(f"uri.parse: {exc}") from exc
    return {name: _text(part) for name, part in parts.items()}


@register("uri.is_valid")
def uri_is_valid(_ctx: EvalContext, uri: Any) -> bool:
    """Whether Go's url.Parse reads ``uri``: false for a non-string, the empty string or a refusal."""
    if not isinstance(uri, str) or isinstance(uri, values.BigNumber) or not uri:
        return False
    try:
        _parse(uri.encode("utf-8"))
    except _URLError:
        return False
    return True
