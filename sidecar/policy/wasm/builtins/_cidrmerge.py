"""OPA's ``net.cidr_merge`` algorithm, re-implemented on Go's address rules (``_goip``).

OPA turns each network into a first and last address (16 bytes, IPv4 as
IPv4-mapped), sorts them by last then first address, merges neighbours that touch
or overlap, keeps an unmerged network as it was given and splits each merged range
back into networks. Its results follow from Go's byte slices, quirks included: a
bare IPv4 address is its classful network but prints as "10.1.2.3/8" when nothing
merges with it, and an IPv4-mapped IPv6 CIDR (``::ffff:1.2.3.0/120``) becomes a
28-byte range. Where OPA's code indexes past the end of a slice (it panics, e.g.
when such a 28-byte range is merged), ``merge`` raises ``GoPanic``.
"""

from __future__ import annotations

from sidecar.policy.wasm.builtins._goip import (
    V4_IN_V6,
    IPNet,
    cidr_mask,
    ip_equal,
    ip_mask,
    ipnet_string,
    mask_size,
    to4,
    to16,
)

__all__ = ["GoPanic", "merge"]

_ZERO4 = V4_IN_V6 + bytes(4)
_ZERO6 = bytes(16)
_TOP4 = V4_IN_V6 + b"\xff" * 4
_TOP6 = b"\xff" * 16


class GoPanic(Exception):
    """OPA's Go code would panic (index out of range) on this input."""


def _big_bytes(value: int) -> bytes:
    """big.Int.Bytes: big-endian without leading zeros (b"" for 0)."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def address_range(net: IPNet) -> tuple[bytes, bytes]:
    """The first and last address of ``net``, as OPA's merge computes them."""
    first = ip_mask(net.ip, net.mask)
    if to4(first) is not None:
        first = V4_IN_V6 + first
    last = bytearray(first)
    for i in range(len(net.mask)):
        at = 16 - i - 1
        if at >= len(last):
            raise GoPanic(f"index out of range [{at}] with length {len(last)}")
        last[at] |= ~net.mask[len(net.mask) - i - 1] & 0xFF
    return first, bytes(last)


def previous_ip(ip: bytes) -> bytes:
    """The address before ``ip`` (``ip`` itself for the zero addresses); only low 4 bytes for IPv4."""
    if ip_equal(ip, _ZERO4) or ip_equal(ip, _ZERO6):
        return ip
    out = bytearray(ip)
    lowest = 12 if to4(ip) is not None else 0
    borrow = False
    for i in range(len(ip) - 1, lowest - 1, -1):
        if borrow or i == len(ip) - 1:
            out[i] = (out[i] - 1) & 0xFF
        borrow = ip[i] == 0 and out[i] == 0xFF
    return bytes(out)


def _next_ip(ip: bytes) -> bytes:
    if ip_equal(ip, _TOP4) or ip_equal(ip, _TOP6):
        return ip
    if len(ip) in (4, 16):
        bits = len(ip) * 8
        return ((int.from_bytes(ip, "big") + 1) % (1 << bits)).to_bytes(len(ip), "big")
    return ip


def _spanning(first: bytes, last: bytes) -> IPNet:
    is4 = to4(first) is not None
    bits = 32 if is4 else 128
    size = bits
    low, high = int.from_bytes(first, "big"), int.from_bytes(last, "big")
    while size > 0 and low < high:
        size -= 1
        high &= -(1 << (bits - size))
    top = bytes(10) + _big_bytes(high) if is4 else _big_bytes(high)
    return IPNet(top or bytes(bits // 8), cidr_mask(size, bits))


def _padded16(value: int) -> bytes:
    raw = _big_bytes(value)
    if len(raw) > 16:
        raise GoPanic("makeslice: len out of range")
    return bytes(16 - len(raw)) + raw


def _partition(target: IPNet, exclude: IPNet) -> tuple[list[IPNet], list[IPNet]]:
    """The networks of ``target`` left and right of ``exclude`` (OPA's partitionCIDR)."""
    target_is4 = to4(target.ip) is not None
    t_first, t_last = address_range(target)
    e_first, e_last = address_range(exclude)
    t_ones, e_ones = mask_size(target.mask)[0], mask_size(exclude.mask)[0]
    if e_last < t_first:
        return [], [target]
    if t_last < e_first:
        return [target], []
    if t_ones >= e_ones:
        return [], []
    left: list[IPNet] = []
    right: list[IPNet] = []
    bits = 32 if target_is4 else 128
    prefix = t_ones + 1
    if prefix > bits:
        raise GoPanic("shift amount out of range")
    lower = int.from_bytes(t_first, "big")
    target16 = to16(t_first)
    # NOTE: Go's To16 of a 28-byte address is nil, and SetBytes(nil) is zero.
    upper = (int.from_bytes(target16, "big") if target16 else 0) + (1 << (bits - prefix))
    matched = 0
    while e_ones >= prefix:
        if target_is4:
            upper_ip, lower_ip = bytes(10) + _big_bytes(upper), bytes(10) + _big_bytes(lower)
        else:
            upper_ip, lower_ip = _padded16(upper), _padded16(lower)
        if e_first >= upper_ip:
            left.append(IPNet(lower_ip, cidr_mask(prefix, bits)))
            matched = upper
        else:
            right.append(IPNet(upper_ip, cidr_mask(prefix, bits)))
            matched = lower
        prefix += 1
        if prefix > bits:
            break
        lower = matched
        upper = matched + (1 << (bits - prefix))
    return left, right


def _host_net(ip: bytes) -> IPNet:
    bits = 32 if to4(ip) is not None else 128
    return IPNet(ip, cidr_mask(bits, bits))


def range_to_networks(first: bytes, last: bytes) -> list[IPNet]:
    """The networks covering ``first``..``last`` (OPA's RangeToCIDRs)."""
    span = _spanning(first, last)
    span_first, span_last = address_range(span)
    out: list[IPNet] = []
    if span_first < first:
        _, right = _partition(span, _host_net(previous_ip(first)))
        if not right:
            raise GoPanic("index out of range [0] with length 0")
        out += right
        span = right[0]
        out = out[1:]
    if span_last > last:
        left, _ = _partition(span, _host_net(_next_ip(last)))
        out += left
    else:
        out.append(span)
    return out


def merge(networks: list[IPNet]) -> list[str]:
    """The networks OPA's net.cidr_merge makes of ``networks``, as text; GoPanic where OPA panics."""
    ranges: list[tuple[bytes, bytes, IPNet | None]] = []
    for given in networks:
        first, last = address_range(given)
        ranges.append((first, last, given))
    ranges.sort(key=lambda r: (r[1], r[0]))
    i = len(ranges) - 1
    while i > 0:
        first, last, _ = ranges[i]
        before_first, before_last, _ = ranges[i - 1]
        if previous_ip(first) <= before_last:
            ranges[i - 1] = (before_first if before_first < first else first, last, None)
            del ranges[i]
        i -= 1
    out: list[str] = []
    for first, last, net in ranges:
        if net is not None:
            out.append(ipnet_string(net))
        else:
            out.extend(ipnet_string(n) for n in range_to_networks(first, last))
    return out
