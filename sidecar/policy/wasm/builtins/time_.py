"""The ``time.*`` builtins, with OPA's semantics (``topdown/time.go``) on Go's time rules.

An instant argument is a number of nanoseconds or an array ``[ns, tz]`` /
``[ns, tz, layout]``; tz ``""`` or ``"UTC"`` is UTC, ``"Local"`` the machine's
zone, anything else an IANA name. The nanoseconds must be an integer within
int64 (a float that is one, such as ``1.5e9``, is accepted). A result outside
int64 nanoseconds (1677-09-21 to 2262-04-11) is an error, as in OPA, and every
error makes the call undefined (``BuiltinError``).
"""

from __future__ import annotations

from typing import Any

from sidecar.policy.wasm.builtins.godur import DurationError, parse_duration
from sidecar.policy.wasm.builtins.golayout import LAYOUT_NAMES, RFC3339, RFC3339_NANO, format_time
from sidecar.policy.wasm.builtins.goparse import ParseError, parse_time
from sidecar.policy.wasm.builtins.gozone import (
    MAX_NS,
    MIN_NS,
    NS,
    UTC,
    Civil,
    Zone,
    ZoneError,
    civil,
    date_to_unix,
    load_location,
    local_zone,
)
from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, register
from sidecar.policy.wasm.builtins.units import big_float
from sidecar.policy.wasm.values import BigNumber, Number

__all__ = ["go_int_operand"]


def _string(value: Any) -> str:
    if not isinstance(value, str) or isinstance(value, BigNumber):
        raise BuiltinError("operand must be a string")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | BigNumber) and not isinstance(value, bool)


def _exact_int64(value: Any) -> int:
    """OPA's ``NumberToFloat(n).Int64()`` must be exact: an integer within int64.

    A ``BigNumber`` keeps its text, read into Go's 64-bit big.Float as OPA does.
    """
    if isinstance(value, int):
        number = value
    elif isinstance(value, float) and not isinstance(value, Number):
        if not value.is_integer():
            raise BuiltinError("timestamp too big")
        number = int(value)
    else:
        exact = big_float(value.text if isinstance(value, Number) else str(value))
        if exact is None or exact.denominator != 1:
            raise BuiltinError("timestamp too big")
        number = int(exact)
    if not MIN_NS <= number <= MAX_NS:
        raise BuiltinError("timestamp too big")
    return number


def _atoi64(text: str) -> int | None:
    """Go's ``util.Atoi64``: at most 19 characters of digits with an all-zero fraction, else None."""
    negative = text[:1] == "-"
    body = text[1:] if text[:1] in ("-", "+") else text
    whole, _, frac = body.partition(".")
    digits = whole + frac
    if not body or len(body) > 19 or not digits.isascii() or not (digits.isdigit() or body == ".") or "." in frac:
        return None
    if frac.strip("0"):
        return None
    number = -int(whole or "0") if negative else int(whole or "0")
    return number if MIN_NS <= number <= MAX_NS else None


def go_int_operand(value: Any) -> int:
    """OPA's ``builtins.IntOperand``: an integer number whose text Go's ``Atoi64`` reads.

    Atoi64 takes at most 19 characters of digits and an all-zero fraction (``"2.0"``),
    never an exponent. A ``BigNumber`` is judged by its text; a float arrives
    without one, so it is judged by the text JSON gives it (``repr``: ``2.0`` yes,
    ``1e+16`` no): a literal written ``1e3`` is the form this can't see (OPA refuses it).
    """
    if isinstance(value, bool):
        raise BuiltinError("operand must be number")
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, Number):
        text = value.text
    elif isinstance(value, float) and value.is_integer():
        text = repr(value)
    elif isinstance(value, BigNumber):
        text = str(value)
    else:
        raise BuiltinError("operand must be integer number but got floating-point number")
    number = _atoi64(text)
    if number is None:
        raise BuiltinError("operand must be integer number but got floating-point number")
    return number


def _instant(value: Any) -> tuple[int, Zone, str]:
    """(ns, zone, layout) of an instant argument, as OPA's ``tzTime``."""
    zone, layout = UTC, ""
    if isinstance(value, list):
        if not value:
            raise BuiltinError("operand 1 must be either number (ns) or [number (ns), string (tz)]")
        ns_value = value[0]
        if not _is_number(ns_value):
            raise BuiltinError("operand 1 must be number")
        if len(value) > 1:
            name = _string(value[1])
            try:
                zone = local_zone() if name == "Local" else load_location(name)
            except ZoneError as exc:
                raise BuiltinError(str(exc)) from exc
        if len(value) > 2:
            layout = _string(value[2])
    elif _is_number(value):
        ns_value = value
    else:
        raise BuiltinError("operand 1 must be either number (ns) or [number (ns), string (tz)]")
    return _exact_int64(ns_value), zone, layout


def _civil(value: Any) -> Civil:
    ns, zone, _ = _instant(value)
    return civil(ns, zone)


def _safe(ns: int) -> int:
    if not MIN_NS <= ns <= MAX_NS:
        raise BuiltinError("time outside of valid range")
    return ns


@register("time.now_ns")
def now_ns(ctx: EvalContext) -> int:
    """The evaluation's fixed clock reading, in Unix nanoseconds."""
    return ctx.now_ns


@register("time.parse_ns")
def parse_ns(_ctx: EvalContext, layout: Any, value: Any) -> int:
    """Go's ``time.Parse(layout, value)`` in ns; a layout constant name (``"RFC822"``) stands for it."""
    text = _string(layout)
    text = LAYOUT_NAMES.get(text, text)
    try:
        return _safe(parse_time(text, _string(value), local_zone()))
    except ParseError as exc:
        raise BuiltinError(str(exc)) from exc


@register("time.parse_rfc3339_ns")
def parse_rfc3339_ns(_ctx: EvalContext, value: Any) -> int:
    """Go's ``time.Parse(time.RFC3339, value)`` in ns (``Z`` or ``±hh:mm``, any fraction)."""
    try:
        return _safe(parse_time(RFC3339, _string(value), local_zone()))
    except ParseError as exc:
        raise BuiltinError(str(exc)) from exc


@register("time.parse_duration_ns")
def parse_duration_ns(_ctx: EvalContext, value: Any) -> int:
    """A duration text (``"1h30m"``, ``"-2us"``, ``"1.5d"``) in ns."""
    try:
        return parse_duration(_string(value))
    except DurationError as exc:
        raise BuiltinError(str(exc)) from exc


@register("time.format")
def format_ns(_ctx: EvalContext, value: Any) -> str:
    """The instant as text: RFC 3339 with nanoseconds, or the array's layout (a name or Go layout)."""
    ns, zone, layout = _instant(value)
    layout = LAYOUT_NAMES.get(layout, layout) if layout else RFC3339_NANO
    return format_time(civil(ns, zone), layout)


@register("time.date")
def date(_ctx: EvalContext, value: Any) -> list[int]:
    """[year, month, day] of the instant in its zone."""
    t = _civil(value)
    return [t.year, t.month, t.day]


@register("time.clock")
def clock(_ctx: EvalContext, value: Any) -> list[int]:
    """[hour, minute, second] of the instant in its zone."""
    t = _civil(value)
    return [t.hour, t.minute, t.second]


@register("time.weekday")
def weekday(_ctx: EvalContext, value: Any) -> str:
    """The day of the week ("Monday") of the instant in its zone."""
    return _civil(value).weekday


@register("time.add_date")
def add_date(_ctx: EvalContext, value: Any, years: Any, months: Any, days: Any) -> int:
    """Go's ``t.AddDate(years, months, days)`` in ns: Jan 31 + 1 month is Mar 2 or 3, as Go normalises."""
    ns, zone, _ = _instant(value)
    dy, dm, dd = go_int_operand(years), go_int_operand(months), go_int_operand(days)
    t = civil(ns, zone)
    unix = date_to_unix(t.year + dy, t.month + dm, t.day + dd, t.hour, t.minute, t.second, zone)
    return _safe(unix * NS + t.nanosecond)


@register("time.diff")
def diff(_ctx: EvalContext, first: Any, second: Any) -> list[int]:
    """[years, months, days, hours, minutes, seconds] between two instants, in the first's zone."""
    ns1, zone, _ = _instant(first)
    ns2, _, _ = _instant(second)
    if ns1 > ns2:
        ns1, ns2 = ns2, ns1
    a, b = civil(ns1, zone), civil(ns2, zone)
    year, month, day = b.year - a.year, b.month - a.month, b.day - a.day
    hour, minute, sec = b.hour - a.hour, b.minute - a.minute, b.second - a.second
    if sec < 0:
        sec, minute = sec + 60, minute - 1
    if minute < 0:
        minute, hour = minute + 60, hour - 1
    if hour < 0:
        hour, day = hour + 24, day - 1
    if day < 0:
        # NOTE: the days of a.month, from Go's Date normalising day 32 of it.
        overflow = civil(date_to_unix(a.year, a.month, 32, 0, 0, 0, UTC) * NS, UTC).day
        day, month = day + 32 - overflow, month - 1
    if month < 0:
        month, year = month + 12, year - 1
    return [year, month, day, hour, minute, sec]
