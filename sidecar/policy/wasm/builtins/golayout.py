"""Go's time layouts (``"2006-01-02T15:04:05Z07:00"``): cutting one into elements, and formatting.

``next_chunk`` splits a layout as Go's ``nextStdChunk`` does: the literal text
before the first element, the element, and the rest. ``format_time`` is Go's
``Time.Format`` for an instant in a zone. ``LAYOUT_NAMES`` are the layout
constants OPA accepts by name (``"RFC3339"``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from sidecar.policy.wasm.builtins.gozone import Civil

__all__ = ["LAYOUT_NAMES", "LONG_DAYS", "LONG_MONTHS", "Std", "format_time", "next_chunk"]

RFC3339 = "2006-01-02T15:04:05Z07:00"
RFC3339_NANO = "2006-01-02T15:04:05.999999999Z07:00"
LAYOUT_NAMES = {
    "ANSIC": "Mon Jan _2 15:04:05 2006",
    "UnixDate": "Mon Jan _2 15:04:05 MST 2006",
    "RubyDate": "Mon Jan 02 15:04:05 -0700 2006",
    "RFC822": "02 Jan 06 15:04 MST",
    "RFC822Z": "02 Jan 06 15:04 -0700",
    "RFC850": "Monday, 02-Jan-06 15:04:05 MST",
    "RFC1123": "Mon, 02 Jan 2006 15:04:05 MST",
    "RFC1123Z": "Mon, 02 Jan 2006 15:04:05 -0700",
    "RFC3339": RFC3339,
    "RFC3339Nano": RFC3339_NANO,
}
LONG_MONTHS = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")
LONG_DAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")

# Zone elements: (colon between hours and minutes, minutes shown, seconds shown, "Z" for UTC).
ZONES = {
    "Z0700": (False, True, False, True), "Z070000": (False, True, True, True),
    "Z07": (False, False, False, True), "Z07:00": (True, True, False, True),
    "Z07:00:00": (True, True, True, True), "-0700": (False, True, False, False),
    "-070000": (False, True, True, False), "-07": (False, False, False, False),
    "-07:00": (True, True, False, False), "-07:00:00": (True, True, True, False),
}
_ZERO = {"1": "01", "2": "02", "3": "03", "4": "04", "5": "05", "6": "06"}


@dataclass(frozen=True)
class Std:
    """One layout element: ``code`` is its reference text (``"Jan"``, ``"_2"``, ``"Z07:00"``,
    ``".0"``/``".9"`` for fractions, with ``digits`` and the separator ``sep``)."""

    code: str
    digits: int = 0
    sep: str = "."


def _lower_next(rest: str) -> bool:
    return bool(rest) and "a" <= rest[0] <= "z"


def _is_digit(s: str, i: int) -> bool:
    return i < len(s) and "0" <= s[i] <= "9"


def _match_at(layout: str, i: int) -> tuple[str, str] | None:
    """(element code, its text in the layout) starting at ``layout[i]``, or None."""
    c = layout[i]
    rest = layout[i:]
    if c == "J" and rest.startswith("Jan"):
        if rest.startswith("January"):
            return "January", "January"
        if not _lower_next(rest[3:]):
            return "Jan", "Jan"
    elif c == "M":
        if rest.startswith("Mon"):
            if rest.startswith("Monday"):
                return "Monday", "Monday"
            if not _lower_next(rest[3:]):
                return "Mon", "Mon"
        if rest.startswith("MST"):
            return "MST", "MST"
    elif c == "0":
        if len(rest) >= 2 and "1" <= rest[1] <= "6":
            return _ZERO[rest[1]], rest[:2]
        if rest.startswith("002"):
            return "002", "002"
    elif c == "1":
        return ("15", "15") if rest.startswith("15") else ("1", "1")
    elif c == "2":
        return ("2006", "2006") if rest.startswith("2006") else ("2", "2")
    elif c == "_":
        if rest.startswith("_2"):
            return ("_2", "_2") if not rest.startswith("_2006") else None
        if rest.startswith("__2"):
            return "__2", "__2"
    elif c in "345":
        return c, c
    elif c == "P" and rest.startswith("PM"):
        return "PM", "PM"
    elif c == "p" and rest.startswith("pm"):
        return "pm", "pm"
    elif c in "-Z":
        for text in (c + "070000", c + "07:00:00", c + "0700", c + "07:00", c + "07"):
            if rest.startswith(text):
                return text, text
    return None


def next_chunk(layout: str) -> tuple[str, Std | None, str]:
    """(literal prefix, first element or None, the layout after it), as Go's ``nextStdChunk``."""
    for i, c in enumerate(layout):
        if c in ".," and i + 1 < len(layout) and layout[i + 1] in "09":
            j = i + 1
            while j < len(layout) and layout[j] == layout[i + 1]:
                j += 1
            if not _is_digit(layout, j):
                code = ".0" if layout[i + 1] == "0" else ".9"
                return layout[:i], Std(code, j - (i + 1), c), layout[j:]
            continue
        if c == "_" and layout.startswith("_2006", i):
            # NOTE: "_2006" is a literal "_" and then the long year, as in Go.
            return layout[:i + 1], Std("2006"), layout[i + 5:]
        found = _match_at(layout, i)
        if found is not None:
            code, text = found
            return layout[:i], Std(code), layout[i + len(text):]
    return layout, None, ""


def _pad(value: int, width: int) -> str:
    sign = "-" if value < 0 else ""
    return sign + str(abs(value)).rjust(width, "0")


def _zone_text(std: str, offset: int) -> str:
    colon, minutes, seconds, zulu = ZONES[std]
    if offset == 0 and zulu:
        return "Z"
    # NOTE: Go divides with truncation, so an offset in (-60s, 0) is written "+00" (as Go does).
    zone = int(offset / 60)
    absolute = offset
    sign = "+"
    if zone < 0:
        sign, zone, absolute = "-", -zone, -offset
    out = sign + _pad(zone // 60, 2)
    if colon:
        out += ":"
    if minutes:
        out += _pad(zone % 60, 2)
    if seconds:
        out += (":" if colon else "") + _pad(int(math.fmod(absolute, 60)), 2)
    return out


def _fraction(nsec: int, std: Std) -> str:
    trim = std.code == ".9"
    if trim and (std.digits == 0 or nsec == 0):
        return ""
    digits = str(nsec).rjust(9, "0")[:std.digits] if std.digits < 9 else str(nsec).rjust(9, "0")
    if trim:
        digits = digits.rstrip("0")
        return std.sep + digits if digits else ""
    return std.sep + digits


def _element(std: Std, t: Civil) -> str:
    code = std.code
    hour12 = t.hour % 12 or 12
    simple: dict[str, str] = {
        "06": _pad(abs(t.year) % 100, 2), "2006": _pad(t.year, 4),
        "Jan": LONG_MONTHS[t.month - 1][:3], "January": LONG_MONTHS[t.month - 1],
        "1": str(t.month), "01": _pad(t.month, 2),
        "Mon": t.weekday[:3], "Monday": t.weekday,
        "2": str(t.day), "_2": (" " if t.day < 10 else "") + str(t.day), "02": _pad(t.day, 2),
        "__2": str(t.yday).rjust(3, " "), "002": _pad(t.yday, 3),
        "15": _pad(t.hour, 2), "3": str(hour12), "03": _pad(hour12, 2),
        "4": str(t.minute), "04": _pad(t.minute, 2), "5": str(t.second), "05": _pad(t.second, 2),
        "PM": "PM" if t.hour >= 12 else "AM", "pm": "pm" if t.hour >= 12 else "am",
    }
    if code in simple:
        return simple[code]
    if code in ZONES:
        return _zone_text(code, t.offset)
    if code == "MST":
        if t.abbrev:
            return t.abbrev
        zone = int(t.offset / 60)
        return ("-" if zone < 0 else "+") + _pad(abs(zone) // 60, 2) + _pad(abs(zone) % 60, 2)
    return _fraction(t.nanosecond, std)


def format_time(t: Civil, layout: str) -> str:
    """Go's ``Time.Format(layout)`` for the wall clock ``t``."""
    out: list[str] = []
    while layout:
        prefix, std, layout = next_chunk(layout)
        out.append(prefix)
        if std is None:
            break
        out.append(_element(std, t))
    return "".join(out)
