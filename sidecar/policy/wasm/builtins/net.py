"""The ``net.cidr_*`` host builtins (OPA's topdown/cidr.go), on Go's address rules.

``net.cidr_contains`` and ``net.cidr_intersects`` are native in OPA's Wasm library;
these are the ones it leaves to the host. Addresses and CIDRs are read as Go's
``net.ParseIP``/``net.ParseCIDR`` read them (``_goip``): no leading zeros in IPv4
octets, no zones, IPv4-mapped IPv6 compared as IPv4.

``net.cidr_expand`` of a network larger than ``EXPAND_LIMIT`` addresses raises Halt
(an evaluation error): OPA would list them all (for a /0, forever) in memory, so a
policy that asks for one is broken either way.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from sidecar.policy.wasm.builtins._cidrmerge import GoPanic, merge
from sidecar.policy.wasm.builtins._goip import (
    IPNet,
    contains,
    ip_mask,
    ip_string,
    mask_size,
    parse_cidr,
    parse_ip,
    to4,
)
from sidecar.policy.wasm.builtins._text import is_string
from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, Halt, register
from sidecar.policy.wasm.values import Key, RegoSet, type_name

__all__ = ["EXPAND_LIMIT"]

EXPAND_LIMIT = 1 << 16


def _string(value: Any, position: int) -> str:
    if not is_string(value):
        raise BuiltinError(f"operand {position} must be string but got {type_name(value)}")
    return value


def _network(text: str) -> IPNet:
    parsed = parse_cidr(text)
    if parsed is None:
        raise BuiltinError(f"invalid CIDR address: {text}")
    return parsed[1]


def _last_ip(net: IPNet) -> bytes:
    ones, bits = mask_size(net.mask)
    if ones == bits:
        return net.ip
    value = int.from_bytes(net.ip, "big") | ((1 << (bits - ones)) - 1)
    return value.to_bytes(bits // 8, "big")


def _plain_ipv6(net: IPNet) -> bool:
    return len(net.ip) == 16 and len(net.mask) == 16 and to4(net.ip) is None


def _cidr_contains(cidr: Any, other: Any) -> bool:
    """net.cidr_contains as topdown computes it (also the test inside cidr_contains_matches)."""
    outer = _network(_string(cidr, 1))
    text = _string(other, 1)
    ip = parse_ip(text)
    if ip is not None:
        return contains(outer, ip)
    parsed = parse_cidr(text)
    if parsed is None:
        raise BuiltinError(f"not a valid textual representation of an IP address or CIDR: {text}")
    inner = parsed[1]
    if _plain_ipv6(outer) and _plain_ipv6(inner):
        # NOTE: prefixes are compared: Contains turns the IPv4-mapped last address of e.g. ::/80 into IPv4.
        outer_ones, inner_ones = mask_size(outer.mask)[0], mask_size(inner.mask)[0]
        return outer_ones <= inner_ones and outer.ip == ip_mask(inner.ip, outer.mask)
    return contains(outer, inner.ip) and contains(outer, _last_ip(inner))


def _match_term(value: Any, position: int) -> Any:
    if is_string(value):
        return value
    if isinstance(value, list) and value:
        return value[0]
    raise BuiltinError(f"operand {position}: element must be string or non-empty array")


def _candidates(operand: Any, position: int) -> Iterator[tuple[Any, Any]]:
    """(cidr, index) pairs of one operand; nothing for an operand of another type."""
    if is_string(operand):
        yield operand, operand
    elif isinstance(operand, list):
        for i, item in enumerate(operand):
            yield _match_term(item, position), i
    elif isinstance(operand, RegoSet):
        for item in operand:
            yield _match_term(item, position), item
    elif isinstance(operand, dict):
        for key, item in operand.items():
            yield _match_term(item, position), key.value if isinstance(key, Key) else key


@register("net.cidr_contains_matches")
def cidr_contains_matches(_ctx: EvalContext, cidrs: Any, cidrs_or_ips: Any) -> RegoSet:
    """The set of [index of a CIDR in ``cidrs``, index of what it contains in ``cidrs_or_ips``].

    An index is the string itself, an array position, the set member or the object
    key; an element may be an array whose first item is the CIDR. BuiltinError for
    a bad element or CIDR met on the way, as OPA stops at the first error.
    """
    found = []
    for cidr, outer_index in _candidates(cidrs, 1):
        for other, inner_index in _candidates(cidrs_or_ips, 2):
            if _cidr_contains(cidr, other):
                found.append([outer_index, inner_index])
    return RegoSet(found)


@register("net.cidr_expand")
def cidr_expand(_ctx: EvalContext, cidr: Any) -> RegoSet:
    """The set of every address in ``cidr`` as text; BuiltinError when not a CIDR, Halt past EXPAND_LIMIT."""
    parsed = parse_cidr(_string(cidr, 1))
    if parsed is None:
        raise BuiltinError(f"invalid CIDR address: {cidr}")
    ip16, net = parsed
    ones, bits = mask_size(net.mask)
    count = 1 << (bits - ones)
    if count > EXPAND_LIMIT:
        raise Halt(f"net.cidr_expand: {cidr} has {count} addresses; the embedded engine expands at most "
                   f"{EXPAND_LIMIT} (use smaller networks or policy.engine: opa)")
    start = ip_mask(ip16, net.mask)
    base = int.from_bytes(start, "big")
    width = len(start)
    # NOTE: within the limit the network never wraps past the top address, so a count suffices.
    return RegoSet(ip_string((base + i).to_bytes(width, "big")) for i in range(count))


@register("net.cidr_is_valid")
def cidr_is_valid(_ctx: EvalContext, cidr: Any) -> bool:
    """Whether ``cidr`` is a string Go's net.ParseCIDR accepts (false for any other type)."""
    return is_string(cidr) and parse_cidr(cidr) is not None


def _merge_input(item: Any) -> IPNet:
    if not is_string(item):
        raise BuiltinError("element must be string")
    ip = parse_ip(item)
    if ip is None:
        return _network(item)
    v4 = to4(ip)
    if v4 is None:
        raise BuiltinError("IPv6 invalid: needs prefix length")
    # NOTE: Go gives a bare IPv4 address its classful mask (A /8, B /16, C and above /24), unmasked.
    mask = b"\xff" + bytes(3) if v4[0] < 0x80 else b"\xff\xff" + bytes(2) if v4[0] < 0xC0 else b"\xff\xff\xff\x00"
    return IPNet(ip, mask)


@register("net.cidr_merge")
def cidr_merge(_ctx: EvalContext, addrs: Any) -> RegoSet:
    """The set of networks OPA merges the array or set ``addrs`` of CIDRs and IPv4 addresses into.

    BuiltinError for another operand type, a non-string element or an invalid
    address; Halt where OPA's own code panics (some IPv4-mapped IPv6 inputs).
    """
    if not isinstance(addrs, list | RegoSet):
        raise BuiltinError("operand must be an array")
    networks = [_merge_input(item) for item in addrs]
    try:
        return RegoSet(merge(networks))
    except (GoPanic, IndexError) as exc:
        raise Halt(f"net.cidr_merge: OPA fails on this input (its merge panics: {exc})") from exc
