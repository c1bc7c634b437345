"""Go's ``time.Parse(layout, value)``: the instant a text stands for, in Unix nanoseconds.

The rules are Go's (``time/format.go``): elements omitted from the layout are
zero (or one for month and day), a fractional second may follow the seconds
even when the layout has none, a numeric offset shifts the instant, and an
unknown zone abbreviation leaves it as written in UTC. Go works on bytes, so
both texts are read byte by byte (each UTF-8 byte as one character).
ParseError when Go's ``time.Parse`` fails.
"""

from __future__ import annotations

from sidecar.policy.wasm.builtins.golayout import LONG_DAYS, LONG_MONTHS, ZONES, next_chunk
from sidecar.policy.wasm.builtins.gozone import NS, UTC, Zone, date_to_unix, days_in_month, is_leap

__all__ = ["ParseError", "parse_time"]

_SHORT_MONTHS = tuple(m[:3] for m in LONG_MONTHS)
_SHORT_DAYS = tuple(d[:3] for d in LONG_DAYS)
_DAYS_BEFORE = (0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334, 365)


class ParseError(ValueError):
    """The value does not match the layout (Go's ``time.ParseError``)."""


def _digit(s: str, i: int) -> bool:
    return i < len(s) and "0" <= s[i] <= "9"


def _leading_int(s: str) -> tuple[int, str]:
    i = 0
    x = 0
    while i < len(s) and "0" <= s[i] <= "9":
        x = x * 10 + ord(s[i]) - 48
        if x > 1 << 63:
            raise ParseError("overflow")
        i += 1
    return x, s[i:]


def _atoi(s: str) -> int:
    neg = s[:1] == "-"
    if s[:1] in ("-", "+"):
        s = s[1:]
    x, rest = _leading_int(s)
    if rest:
        raise ParseError("bad number")
    return -x if neg else x


def _getnum(s: str, fixed: bool) -> tuple[int, str]:
    if not _digit(s, 0):
        raise ParseError("bad number")
    if not _digit(s, 1):
        if fixed:
            raise ParseError("bad number")
        return ord(s[0]) - 48, s[1:]
    return (ord(s[0]) - 48) * 10 + ord(s[1]) - 48, s[2:]


def _getnum3(s: str, fixed: bool) -> tuple[int, str]:
    i = n = 0
    while i < 3 and _digit(s, i):
        n = n * 10 + ord(s[i]) - 48
        i += 1
    if i == 0 or (fixed and i != 3):
        raise ParseError("bad number")
    return n, s[i:]


def _skip(value: str, prefix: str) -> str:
    while prefix:
        if prefix[0] == " ":
            if value and value[0] != " ":
                raise ParseError("literal mismatch")
            prefix, value = prefix.lstrip(" "), value.lstrip(" ")
            continue
        if not value or value[0] != prefix[0]:
            raise ParseError("literal mismatch")
        prefix, value = prefix[1:], value[1:]
    return value


def _lookup(table: tuple[str, ...], value: str) -> tuple[int, str]:
    for i, name in enumerate(table):
        head = value[:len(name)]
        if len(head) == len(name) and all(
                a == b or (chr(ord(a) | 32) == chr(ord(b) | 32) and "a" <= chr(ord(a) | 32) <= "z")
                for a, b in zip(head, name, strict=True)):
            return i, value[len(name):]
    raise ParseError("bad name")


def _nanoseconds(value: str, nbytes: int) -> int:
    if value[0] not in ".,":
        raise ParseError("bad fraction")
    nbytes = min(nbytes, 10)
    ns = _atoi(value[1:nbytes])
    if ns < 0:
        raise ParseError("fractional second out of range")
    scale: int = 10 ** (10 - nbytes)
    return ns * scale


def _signed_offset(value: str) -> int:
    if value[:1] not in ("-", "+"):
        return 0
    try:
        x, rest = _leading_int(value[1:])
    except ParseError:
        return 0
    if rest == value[1:] or x > 23:
        return 0
    return len(value) - len(rest)


def _zone_name_length(value: str) -> int:
    """Go's ``parseTimeZone``: the length of the zone abbreviation at the start, 0 if none."""
    if len(value) < 3:
        return 0
    if value[:4] in ("ChST", "MeST"):
        return 4
    if value[:3] == "GMT":
        return 3 + _signed_offset(value[3:]) if len(value) > 3 else 3
    if value[0] in "+-":
        return _signed_offset(value)
    upper = 0
    while upper < 6 and upper < len(value) and "A" <= value[upper] <= "Z":
        upper += 1
    if upper == 5 and value[4] == "T":
        return 5
    if upper == 4 and (value[3] == "T" or value[:4] == "WITA"):
        return 4
    return 3 if upper == 3 else 0


def _zone_offset(code: str, value: str) -> tuple[int, str]:
    colon, minutes, seconds, _ = ZONES[code]
    if colon and seconds:
        if len(value) < 9 or value[3] != ":" or value[6] != ":":
            raise ParseError("bad offset")
        parts, value = (value[1:3], value[4:6], value[7:9]), value[9:]
    elif colon:
        if len(value) < 6 or value[3] != ":":
            raise ParseError("bad offset")
        parts, value = (value[1:3], value[4:6], "00"), value[6:]
    elif not minutes:
        if len(value) < 3:
            raise ParseError("bad offset")
        parts, value = (value[1:3], "00", "00"), value[3:]
    elif seconds:
        if len(value) < 7:
            raise ParseError("bad offset")
        parts, value = (value[1:3], value[3:5], value[5:7]), value[7:]
    else:
        if len(value) < 5:
            raise ParseError("bad offset")
        parts, value = (value[1:3], value[3:5], "00"), value[5:]
    hh, mm, ss = (_getnum(p, True)[0] for p in parts)
    if hh > 24 or mm > 60 or ss > 60:
        raise ParseError("time zone offset out of range")
    return (hh * 60 + mm) * 60 + ss, value


def parse_time(layout: str, value: str, local: Zone) -> int:
    """Unix nanoseconds of ``value`` read with the Go ``layout``; ParseError when Go's Parse fails.

    ``local`` is Go's ``time.Local``: a zone abbreviation it knows gives its offset.
    """
    layout = layout.encode().decode("latin-1")
    value = value.encode().decode("latin-1")
    year, month, day, yday, hour, minute, sec, nsec = 0, -1, -1, -1, 0, 0, 0, 0
    am = pm = False
    utc = False
    zone_offset = -1
    zone_name = ""
    while True:
        prefix, std, layout = next_chunk(layout)
        value = _skip(value, prefix)
        if std is None:
            if value:
                raise ParseError("extra text")
            break
        code = std.code
        if code == "06":
            if len(value) < 2:
                raise ParseError("bad year")
            year, value = _atoi(value[:2]), value[2:]
            year += 1900 if year >= 69 else 2000
        elif code == "2006":
            if len(value) < 4 or not _digit(value, 0):
                raise ParseError("bad year")
            year, value = _atoi(value[:4]), value[4:]
        elif code in ("Jan", "January"):
            index, value = _lookup(_SHORT_MONTHS if code == "Jan" else LONG_MONTHS, value)
            month = index + 1
        elif code in ("1", "01"):
            month, value = _getnum(value, code == "01")
            if not 1 <= month <= 12:
                raise ParseError("month out of range")
        elif code in ("Mon", "Monday"):
            _, value = _lookup(_SHORT_DAYS if code == "Mon" else LONG_DAYS, value)
        elif code in ("2", "_2", "02"):
            if code == "_2" and value[:1] == " ":
                value = value[1:]
            day, value = _getnum(value, code == "02")
        elif code in ("__2", "002"):
            if code == "__2":
                value = value[2:] if value[:2] == "  " else value[1:] if value[:1] == " " else value
            yday, value = _getnum3(value, code == "002")
        elif code == "15":
            hour, value = _getnum(value, False)
            if hour >= 24:
                raise ParseError("hour out of range")
        elif code in ("3", "03"):
            hour, value = _getnum(value, code == "03")
            if hour > 12:
                raise ParseError("hour out of range")
        elif code in ("4", "04"):
            minute, value = _getnum(value, code == "04")
            if minute >= 60:
                raise ParseError("minute out of range")
        elif code in ("5", "05"):
            sec, value = _getnum(value, code == "05")
            if sec >= 60:
                raise ParseError("second out of range")
            upcoming = next_chunk(layout)[1]
            if (len(value) >= 2 and value[0] in ".," and _digit(value, 1)
                    and (upcoming is None or upcoming.code not in (".0", ".9"))):
                n = 2
                while _digit(value, n):
                    n += 1
                nsec, value = _nanoseconds(value, n), value[n:]
        elif code in ("PM", "pm"):
            if len(value) < 2:
                raise ParseError("bad am/pm")
            word, value = value[:2], value[2:]
            names = ("PM", "AM") if code == "PM" else ("pm", "am")
            if word not in names:
                raise ParseError("bad am/pm")
            pm, am = word == names[0], word == names[1]
        elif code in ZONES:
            if code.startswith("Z") and value[:1] == "Z":
                value, utc = value[1:], True
                continue
            if not value:
                raise ParseError("bad offset")
            sign = value[0]
            zone_offset, value = _zone_offset(code, value)
            if sign == "-":
                zone_offset = -zone_offset
            elif sign != "+":
                raise ParseError("bad offset sign")
        elif code == "MST":
            if value[:3] == "UTC":
                value, utc = value[3:], True
                continue
            n = _zone_name_length(value)
            if n == 0:
                raise ParseError("bad zone")
            zone_name, value = value[:n], value[n:]
        elif code == ".0":
            n = 1 + std.digits
            if len(value) < n:
                raise ParseError("bad fraction")
            nsec, value = _nanoseconds(value, n), value[n:]
        elif code == ".9" and len(value) >= 2 and value[0] in ".," and _digit(value, 1):
            i = 1
            while _digit(value, i + 1):
                i += 1
            nsec, value = _nanoseconds(value, 1 + i), value[1 + i:]
    if pm and hour < 12:
        hour += 12
    elif am and hour == 12:
        hour = 0
    month, day = _month_day(year, month, day, yday)
    if day < 1 or day > days_in_month(month, year):
        raise ParseError("day out of range")
    unix = date_to_unix(year, month, day, hour, minute, sec, UTC)
    # NOTE: Go marks "no offset" with -1, so an offset of exactly -1s counts as none.
    if not utc and zone_offset != -1:
        unix -= zone_offset
    elif not utc and zone_name:
        found = _lookup_name(local, zone_name, unix)
        if found is not None:
            unix -= found
    return unix * NS + nsec


def _month_day(year: int, month: int, day: int, yday: int) -> tuple[int, int]:
    if yday < 0:
        return (1 if month < 0 else month), (1 if day < 0 else day)
    m = d = 0
    if is_leap(year):
        if yday == 31 + 29:
            m, d = 2, 29
        elif yday > 31 + 29:
            yday -= 1
    if yday < 1 or yday > 365:
        raise ParseError("day-of-year out of range")
    if m == 0:
        m = (yday - 1) // 31 + 1
        if _DAYS_BEFORE[m] < yday:
            m += 1
        d = yday - _DAYS_BEFORE[m - 1]
    if (month >= 0 and month != m) or (day >= 0 and day != d):
        raise ParseError("day-of-year does not match")
    return m, d


def _lookup_name(local: Zone, name: str, unix: int) -> int | None:
    """The offset Go's ``Local.lookupName`` gives the abbreviation ``name`` at ``unix``, or None.

    First a zone type of that name in effect at the time, then any of that name.
    """
    for kind, offset in local.kinds:
        if kind == name:
            found, abbrev = local.lookup(unix - offset)
            if abbrev == name:
                return found
    for kind, offset in local.kinds:
        if kind == name:
            return offset
    return None
