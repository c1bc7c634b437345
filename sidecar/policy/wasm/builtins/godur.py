"""Durations as ``time.parse_duration_ns`` reads them: Go's ``time.ParseDuration`` plus OPA's d, w, y.

``parse_duration`` returns nanoseconds. Go's units are ns, us (µs, μs), ms, s, m,
h, each number with an optional fraction (``"1.5h"``, ``"-2us"``); OPA rewrites
d, w and y segments into hours first (``"1d2h"`` is ``"24h2h"``). DurationError
when either would fail, overflow included.
"""

from __future__ import annotations

import math
import re
from decimal import Decimal

__all__ = ["DurationError", "parse_duration"]

_NS_PER = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
           "m": 60_000_000_000, "h": 3_600_000_000_000}
# NOTE: Go compares bytes; units are matched as their UTF-8 bytes read as latin-1.
_UNITS = {key.encode().decode("latin-1"): value for key, value in _NS_PER.items()}
_EXTENDED_HOURS = {"d": 24, "w": 7 * 24, "y": 365 * 24}
_SEGMENT = re.compile("([0-9.]+)(ms|us|µs|ns|[a-z])")
_LIMIT = 1 << 63


class DurationError(ValueError):
    """Not a duration Go (or OPA's extension) accepts."""


def _leading_int(s: str) -> tuple[int, str]:
    i = x = 0
    while i < len(s) and "0" <= s[i] <= "9":
        if x > _LIMIT // 10:
            raise DurationError("overflow")
        x = x * 10 + ord(s[i]) - 48
        if x > _LIMIT:
            raise DurationError("overflow")
        i += 1
    return x, s[i:]


def _leading_fraction(s: str) -> tuple[int, float, str]:
    i = x = 0
    scale = 1.0
    overflow = False
    while i < len(s) and "0" <= s[i] <= "9":
        if not overflow:
            y = x * 10 + ord(s[i]) - 48
            if x > (_LIMIT - 1) // 10 or y > _LIMIT:
                overflow = True
            else:
                x, scale = y, scale * 10
        i += 1
    return x, scale, s[i:]


def go_parse_duration(text: str) -> int:
    """Go's ``time.ParseDuration(text)`` in nanoseconds; DurationError when Go fails."""
    s = text.encode().decode("latin-1")
    neg = False
    if s[:1] in ("-", "+"):
        neg, s = s[0] == "-", s[1:]
    if s == "0":
        return 0
    if not s:
        raise DurationError(f"time: invalid duration {text!r}")
    total = 0
    while s:
        if not (s[0] == "." or "0" <= s[0] <= "9"):
            raise DurationError(f"time: invalid duration {text!r}")
        before = len(s)
        v, s = _leading_int(s)
        pre = len(s) != before
        f, scale, post = 0, 1.0, False
        if s[:1] == ".":
            s = s[1:]
            before = len(s)
            f, scale, s = _leading_fraction(s)
            post = len(s) != before
        if not pre and not post:
            raise DurationError(f"time: invalid duration {text!r}")
        i = 0
        while i < len(s) and not (s[i] == "." or "0" <= s[i] <= "9"):
            i += 1
        unit = _UNITS.get(s[:i]) if i else None
        if unit is None:
            raise DurationError(f"time: bad unit in duration {text!r}")
        s = s[i:]
        if v > _LIMIT // unit:
            raise DurationError(f"time: invalid duration {text!r}")
        v *= unit
        if f > 0:
            # NOTE: float64 arithmetic, truncated, exactly as Go computes fractions of a unit.
            v += int(float(f) * (float(unit) / scale))
            if v > _LIMIT:
                raise DurationError(f"time: invalid duration {text!r}")
        total += v
        if total > _LIMIT:
            raise DurationError(f"time: invalid duration {text!r}")
    if neg:
        return -total
    if total > _LIMIT - 1:
        raise DurationError(f"time: invalid duration {text!r}")
    return total


def _hours(digits: str, coefficient: int) -> str:
    try:
        value = float(digits)
    except ValueError:
        raise DurationError(f"time: invalid duration: bad value {digits!r}") from None
    hours = value * coefficient
    if math.isinf(value) or math.isinf(hours):
        raise DurationError(f"time: invalid duration: bad value {digits!r}")
    return format(Decimal(repr(hours)), "f") + "h"


def parse_duration(text: str) -> int:
    """OPA's ``time.parse_duration_ns``: Go's ParseDuration after rewriting d, w, y into hours."""
    if not text:
        raise DurationError('time: invalid duration ""')
    if not any(c in text for c in "dwy"):
        return go_parse_duration(text)
    sign = text[0] if text[0] in "+-" else ""
    body = text[len(sign):]
    pos = 0
    parts = [sign]
    while pos < len(body):
        match = _SEGMENT.match(body, pos)
        if match is None:
            raise DurationError(f"time: invalid duration {text!r}")
        digits, unit = match.groups()
        parts.append(_hours(digits, _EXTENDED_HOURS[unit]) if unit in _EXTENDED_HOURS else digits + unit)
        pos = match.end()
    if not body:
        raise DurationError(f"time: invalid duration {text!r}")
    return go_parse_duration("".join(parts))
