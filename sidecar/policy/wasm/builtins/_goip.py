"""Go's ``net`` address rules in Python, byte for byte, for the ``net.cidr_*`` builtins.

OPA's CIDR builtins are built on Go's ``net.IP`` (a byte slice of 4 or 16 bytes,
sometimes of another length in OPA's merge code) and ``net.IPNet``. Their results
depend on details of that type: an IPv4 CIDR has 4-byte address and mask, an
IPv4-mapped IPv6 CIDR 16-byte ones but prints as IPv4, a bare IPv4 address parses
to 16 bytes. Here an IP is ``bytes`` of any length and a network is ``IPNet``; the
functions keep Go's behaviour for every length, so that ports of OPA's algorithms
give OPA's answers. Parsing works on the UTF-8 bytes of the text, as Go does.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "V4_IN_V6",
    "IPNet",
    "cidr_mask",
    "contains",
    "ip_equal",
    "ip_mask",
    "ip_string",
    "ipnet_string",
    "mask_size",
    "parse_cidr",
    "parse_ip",
    "to4",
    "to16",
]

V4_IN_V6 = bytes(10) + b"\xff\xff"
_HEX = "0123456789abcdef"
_BIG = 0xFFFFFF


@dataclass(frozen=True)
class IPNet:
    """A Go ``net.IPNet``: an address and a mask, each of whatever length Go gave them."""

    ip: bytes
    mask: bytes


# --- parsing (netip.ParseAddr, net.ParseIP, net.ParseCIDR) -------------------------------


def _ipv4_fields(s: bytes) -> bytes | None:
    fields: list[int] = []
    val, digits = 0, 0
    for i, c in enumerate(s):
        if 0x30 <= c <= 0x39:
            if digits == 1 and val == 0:
                return None  # NOTE: Go refuses leading zeros ("010.0.0.1"): octal or decimal is ambiguous
            val = val * 10 + c - 0x30
            digits += 1
            if val > 255:
                return None
        elif c == 0x2E:
            if i == 0 or i == len(s) - 1 or s[i - 1] == 0x2E or len(fields) == 3:
                return None
            fields.append(val)
            val, digits = 0, 0
        else:
            return None
    if len(fields) < 3:
        return None
    return bytes([*fields, val])


def _ipv6(s: bytes) -> tuple[bytes, bytes] | None:
    zone = b""
    pct = s.find(b"%")
    if pct != -1:
        s, zone = s[:pct], s[pct + 1:]
        if not zone:
            return None
    ip = bytearray(16)
    ellipsis = -1
    if s[:2] == b"::":
        ellipsis, s = 0, s[2:]
        if not s:
            return bytes(ip), zone
    i = 0
    while i < 16:
        off, acc = 0, 0
        while off < len(s):
            c = s[off]
            if 0x30 <= c <= 0x39:
                acc = (acc << 4) + c - 0x30
            elif 0x61 <= c <= 0x66:
                acc = (acc << 4) + c - 0x61 + 10
            elif 0x41 <= c <= 0x46:
                acc = (acc << 4) + c - 0x41 + 10
            else:
                break
            if off > 3 or acc > 0xFFFF:
                return None
            off += 1
        if off == 0:
            return None
        if off < len(s) and s[off] == 0x2E:
            if (ellipsis < 0 and i != 12) or i + 4 > 16:
                return None
            v4 = _ipv4_fields(s)
            if v4 is None:
                return None
            ip[i:i + 4] = v4
            s, i = b"", i + 4
            break
        ip[i], ip[i + 1] = acc >> 8, acc & 0xFF
        i += 2
        s = s[off:]
        if not s:
            break
        if s[0] != 0x3A or len(s) == 1:
            return None
        s = s[1:]
        if s[0] == 0x3A:
            if ellipsis >= 0:
                return None
            ellipsis, s = i, s[1:]
            if not s:
                break
    if s:
        return None
    if i < 16:
        if ellipsis < 0:
            return None
        n = 16 - i
        ip[ellipsis + n:16] = ip[ellipsis:i]
        ip[ellipsis:ellipsis + n] = bytes(n)
    elif ellipsis >= 0:
        return None
    return bytes(ip), zone


def _parse_addr(s: bytes) -> tuple[bytes, bool] | None:
    """netip.ParseAddr without a zone: (16 bytes, is it IPv4 proper), None when not an address."""
    for c in s:
        if c == 0x2E:
            v4 = _ipv4_fields(s)
            return None if v4 is None else (V4_IN_V6 + v4, True)
        if c == 0x3A:
            v6 = _ipv6(s)
            return None if v6 is None or v6[1] else (v6[0], False)
        if c == 0x25:
            return None
    return None


def parse_ip(text: str) -> bytes | None:
    """net.ParseIP: the address as 16 bytes (IPv4 in its IPv4-mapped form), None when invalid."""
    found = _parse_addr(text.encode("utf-8", "surrogatepass"))
    return None if found is None else found[0]


def _dtoi(s: bytes) -> tuple[int, int, bool]:
    n, i = 0, 0
    while i < len(s) and 0x30 <= s[i] <= 0x39:
        n = n * 10 + s[i] - 0x30
        if n >= _BIG:
            return _BIG, i, False
        i += 1
    return (0, 0, False) if i == 0 else (n, i, True)


def parse_cidr(text: str) -> tuple[bytes, IPNet] | None:
    """net.ParseCIDR: (the 16-byte address, its network), None when ``text`` is not CIDR notation."""
    raw = text.encode("utf-8", "surrogatepass")
    addr, slash, bits_text = raw.partition(b"/")
    if not slash:
        return None
    found = _parse_addr(addr)
    if found is None:
        return None
    ip16, is4 = found
    bits = 32 if is4 else 128
    n, i, ok = _dtoi(bits_text)
    if not ok or i != len(bits_text) or n > bits:
        return None
    mask = cidr_mask(n, bits)
    return ip16, IPNet(ip_mask(ip16, mask), mask)


# --- net.IP and net.IPNet methods ---------------------------------------------------------


def cidr_mask(ones: int, bits: int) -> bytes:
    """net.CIDRMask for a valid prefix length: ``ones`` one bits in ``bits // 8`` bytes."""
    value = ((1 << bits) - 1) ^ ((1 << (bits - ones)) - 1)
    return value.to_bytes(bits // 8, "big")


def to4(ip: bytes) -> bytes | None:
    """IP.To4: 4 bytes for an IPv4 or IPv4-mapped address, None otherwise."""
    if len(ip) == 4:
        return ip
    if len(ip) == 16 and ip[:12] == V4_IN_V6:
        return ip[12:]
    return None


def to16(ip: bytes) -> bytes | None:
    """IP.To16: 16 bytes, None when ``ip`` has another length than 4 or 16."""
    if len(ip) == 4:
        return V4_IN_V6 + ip
    return ip if len(ip) == 16 else None


def ip_mask(ip: bytes, mask: bytes) -> bytes:
    """IP.Mask: ``ip`` masked, b"" (Go's nil) when the lengths don't fit."""
    if len(mask) == 16 and len(ip) == 4 and mask[:12] == b"\xff" * 12:
        mask = mask[12:]
    if len(mask) == 4 and len(ip) == 16 and ip[:12] == V4_IN_V6:
        ip = ip[12:]
    if len(ip) != len(mask):
        return b""
    return bytes(a & b for a, b in zip(ip, mask, strict=True))


def ip_equal(a: bytes, b: bytes) -> bool:
    """IP.Equal: the same address, an IPv4 address equal to its IPv4-mapped form."""
    if len(a) == len(b):
        return a == b
    if len(a) == 4 and len(b) == 16:
        return b[:12] == V4_IN_V6 and b[12:] == a
    if len(a) == 16 and len(b) == 4:
        return a[:12] == V4_IN_V6 and a[12:] == b
    return False


def _v6_text(ip: bytes) -> str:
    groups = [ip[i] << 8 | ip[i + 1] for i in range(0, 16, 2)]
    start, end = 255, 255
    for i in range(8):
        j = i
        while j < 8 and groups[j] == 0:
            j += 1
        if j - i >= 2 and j - i > end - start:
            start, end = i, j
    out = []
    i = 0
    while i < 8:
        if i == start:
            out.append("::")
            i = end
            if i >= 8:
                break
        elif i > 0:
            out.append(":")
        out.append(f"{groups[i]:x}")
        i += 1
    return "".join(out)


def ip_string(ip: bytes) -> str:
    """IP.String: dotted IPv4 (also for IPv4-mapped), RFC 5952 IPv6, "?hex" for other lengths."""
    if not ip:
        return "<nil>"
    if len(ip) not in (4, 16):
        return "?" + ip.hex()
    v4 = to4(ip)
    if v4 is not None:
        return ".".join(str(b) for b in v4)
    return _v6_text(ip)


def mask_size(mask: bytes) -> tuple[int, int]:
    """IPMask.Size: (leading ones, bits); (0, 0) when the mask is not ones then zeros."""
    ones = _simple_length(mask)
    return (0, 0) if ones == -1 else (ones, len(mask) * 8)


def _simple_length(mask: bytes) -> int:
    ones = 0
    for i, v in enumerate(mask):
        if v == 0xFF:
            ones += 8
            continue
        while v & 0x80:
            ones += 1
            v = (v << 1) & 0xFF
        if v != 0 or any(mask[i + 1:]):
            return -1
        break
    return ones


def _number_and_mask(n: IPNet) -> tuple[bytes, bytes] | None:
    ip = to4(n.ip)
    if ip is None:
        ip = n.ip
        if len(ip) != 16:
            return None
    mask = n.mask
    if len(mask) == 4:
        if len(ip) != 4:
            return None
    elif len(mask) == 16:
        if len(ip) == 4:
            mask = mask[12:]
    else:
        return None
    return ip, mask


def contains(n: IPNet, ip: bytes) -> bool:
    """IPNet.Contains: is ``ip`` in ``n`` (an IPv4-mapped address counts as IPv4)."""
    found = _number_and_mask(n)
    number, mask = found if found is not None else (b"", b"")
    v4 = to4(ip)
    if v4 is not None:
        ip = v4
    if len(ip) != len(number):
        return False
    return all(a & m == b & m for a, b, m in zip(number, ip, mask, strict=True))


def ipnet_string(n: IPNet) -> str:
    """IPNet.String: "address/prefix" (or "address/hexmask" for a non-canonical mask)."""
    found = _number_and_mask(n)
    if found is None:
        return "<nil>"
    number, mask = found
    ones = _simple_length(mask)
    if ones == -1:
        return ip_string(number) + "/" + (mask.hex() if mask else "<nil>")
    return f"{ip_string(number)}/{ones}"
