"""``uuid.rfc4122`` and ``uuid.parse``, as OPA computes them (``topdown/uuid.go``).

``uuid.rfc4122(k)`` is a random version 4 UUID, the same for the same ``k``
throughout one evaluation (OPA caches it per query). ``uuid.parse`` reads the
forms Go's google/uuid accepts (plain, ``urn:uuid:``, braced, 32 hex digits) into
OPA's object: version and variant, and for versions 1 and 2 the time (Unix ns),
node id, MAC kind and clock sequence (version 2 adds id and domain). A text
that is not a UUID makes the call undefined.
"""

from __future__ import annotations

import os
from typing import Any

from sidecar.policy.wasm.builtins.gozone import wrap64
from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, register
from sidecar.policy.wasm.values import BigNumber, dump

__all__ = ["parse_uuid_bytes"]

_HEX = "0123456789abcdefABCDEF"
_GREGORIAN_TO_UNIX_100NS = (2440587 - 2299160) * 86400 * 10_000_000
_DOMAINS = {0: "Person", 1: "Group", 2: "Org"}


def _hex_pair(a: str, b: str) -> int:
    if a not in _HEX or b not in _HEX:
        raise BuiltinError("invalid UUID format")
    return int(a + b, 16)


def parse_uuid_bytes(text: str) -> bytes:
    """The 16 bytes of ``text`` by google/uuid's ``Parse``; BuiltinError when it is not a UUID."""
    s = text.encode().decode("latin-1")  # NOTE: Go indexes bytes, so read each UTF-8 byte as a char
    if len(s) == 32:
        return bytes(_hex_pair(s[i], s[i + 1]) for i in range(0, 32, 2))
    if len(s) == 45:
        if s[:9].lower() != "urn:uuid:":
            raise BuiltinError("invalid urn prefix")
        s = s[9:]
    elif len(s) == 38:
        s = s[1:]  # NOTE: google/uuid checks neither brace
    elif len(s) != 36:
        raise BuiltinError("invalid UUID length")
    if s[8] != "-" or s[13] != "-" or s[18] != "-" or s[23] != "-":
        raise BuiltinError("invalid UUID format")
    starts = (0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34)
    return bytes(_hex_pair(s[x], s[x + 1]) for x in starts)


def _variant(b: int) -> str:
    if b & 0xC0 == 0x80:
        return "RFC4122"
    if b & 0xE0 == 0xC0:
        return "Microsoft"
    if b & 0xE0 == 0xE0:
        return "Future"
    return "Reserved"


def _mac_kind(b: int) -> str:
    if b & 0b11 == 0b11:
        return "local:multicast"
    if b & 0b01:
        return "global:multicast"
    if b & 0b10:
        return "local:unicast"
    return "global:unicast"


def _unix_ns(u: bytes) -> int:
    """google/uuid's ``Time().UnixTime()`` as OPA combines it, with Go's int64 wrap-around."""
    ticks = int.from_bytes(u[0:4], "big") | int.from_bytes(u[4:6], "big") << 32
    ticks |= (int.from_bytes(u[6:8], "big") & 0xFFF) << 48
    since = ticks - _GREGORIAN_TO_UNIX_100NS
    sec = abs(since) // 10_000_000 * (1 if since >= 0 else -1)
    nsec = (since - sec * 10_000_000) * 100
    return wrap64(wrap64(sec * 1_000_000_000) + nsec)


@register("uuid.parse")
def parse(_ctx: EvalContext, value: Any) -> dict[str, Any]:
    """The fields of a UUID text; undefined when it is not one."""
    if not isinstance(value, str) or isinstance(value, BigNumber):
        raise BuiltinError("operand 1 must be string")
    u = parse_uuid_bytes(value)
    version = u[6] >> 4
    out: dict[str, Any] = {"version": version, "variant": _variant(u[8])}
    if version in (1, 2):
        out["time"] = _unix_ns(u)
        out["nodeid"] = "-".join(f"{b:02x}" for b in u[10:16])
        out["macvariables"] = _mac_kind(u[10])
        out["clocksequence"] = int.from_bytes(u[8:10], "big") & 0x3FFF
        if version == 2:
            out["id"] = int.from_bytes(u[0:4], "big")
            out["domain"] = _DOMAINS.get(u[9], f"Domain{u[9]}")
    return out


@register("uuid.rfc4122")
def rfc4122(ctx: EvalContext, key: Any) -> str:
    """A random version 4 UUID, the same for the same ``key`` within one evaluation."""
    slot = "uuid.rfc4122:" + dump(key)
    cached = ctx.cache.get(slot)
    if isinstance(cached, str):
        return cached
    raw = bytearray(os.urandom(16))
    raw[8] = raw[8] & 0x3F | 0x80
    raw[6] = raw[6] & 0x0F | 0x40
    h = raw.hex()
    result = f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
    ctx.cache[slot] = result
    return result
