"""``units.parse`` and ``units.parse_bytes``, with OPA's arithmetic (``parse_units.go``, ``parse_bytes.go``).

``units.parse("10Mi")`` is exact (Go's big.Rat): an integer, else the value to
ten decimals, as OPA writes it (``"1m"`` is 0.0010000000: OPA scales milli by the
float64 0.001). ``units.parse_bytes("1.5KB")`` computes in Go's 64-bit big.Float,
rounding twice like Go, then truncates to an integer. Bad text is an error
(the call is undefined).
"""

from __future__ import annotations

import re
from fractions import Fraction
from typing import Any

from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, register
from sidecar.policy.wasm.values import BigNumber

__all__ = ["big_float"]

_NUMBER = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?(?:[eE]([+-]?[0-9]+))?")
_MAX_EXPONENT_DIGITS = 6
_BINARY = {"ki": 1 << 10, "mi": 1 << 20, "gi": 1 << 30, "ti": 1 << 40, "pi": 1 << 50, "ei": 1 << 60}
_DECIMAL = {"k": 10**3, "m": 10**6, "g": 10**9, "t": 10**12, "p": 10**15, "e": 10**18}
_BYTE_UNITS: dict[str, int] = {
    "": 1,
    **{unit: f for short, f in _DECIMAL.items() for unit in (short, short + "b")},
    **{unit: f for short, f in _BINARY.items() for unit in (short, short[0] + "ib")},
}
_UNITS: dict[str, Fraction] = {
    "": Fraction(1),
    **{unit: Fraction(f) for short, f in _DECIMAL.items() if short != "m" for unit in (short, short.upper())},
    "m": Fraction(0.001),  # NOTE: OPA scales milli by the float64 0.001, not by exactly 1/1000
    "M": Fraction(10**6),
    **{unit: Fraction(f) for short, f in _BINARY.items() for unit in (short, short[0].upper() + "i")},
}


def _split(s: str) -> tuple[str, str]:
    """Go's ``extractNumAndUnit``: (number text, unit text); BuiltinError for a too long exponent."""
    i = 0
    while i < len(s):
        c = s[i]
        if not ("0" <= c <= "9" or c in ".eE+-"):
            break
        if c in "eE":
            nxt = s[i + 1:i + 2]
            if not nxt or not ("0" <= nxt <= "9" or nxt in "+-"):
                break
            if nxt in "+-":
                i += 1
            end = i + 1
            while end < len(s) and "0" <= s[end] <= "9":
                end += 1
            if end - (i + 1) > _MAX_EXPONENT_DIGITS:
                raise BuiltinError("exponent too large")
        i += 1
    return s[:i], s[i:]


def _scan(text: str) -> tuple[bool, int, int] | None:
    """(negative, mantissa digits as an integer, decimal exponent) of Go's number syntax, or None."""
    match = _NUMBER.fullmatch(text)
    if match is None:
        return None
    sign, whole, frac, exp = match.groups()
    frac = frac or ""
    if not whole and not frac:
        return None
    return sign == "-", int(whole + frac or "0"), int(exp or "0") - len(frac)


def _round(x: Fraction, prec: int) -> Fraction:
    """``x`` rounded to ``prec`` significant bits, half to even (big.Float's default)."""
    if x == 0:
        return x
    a = abs(x)
    e = a.numerator.bit_length() - a.denominator.bit_length() - prec
    while a >= Fraction(2) ** (e + prec):
        e += 1
    while a < Fraction(2) ** (e + prec - 1):
        e -= 1
    mant = round(a / Fraction(2) ** e)
    out = mant * Fraction(2) ** e
    return -out if x < 0 else out


def _pow5(n: int) -> Fraction:
    """Go's ``Float.pow5`` at 128 bits: exact to 5**27, then squaring with rounding."""
    if n <= 27:
        return Fraction(5**n)
    z, f = Fraction(5**27), Fraction(5)
    n -= 27
    while n > 0:
        if n & 1:
            z = _round(z * f, 128)
        f = _round(f * f, 192)
        n >>= 1
    return z


def big_float(text: str) -> Fraction | None:
    """The value Go's ``new(big.Float).SetString(text)`` holds (64-bit mantissa), None if not a number."""
    scanned = _scan(text)
    if scanned is None:
        return None
    negative, mant, exp10 = scanned
    value = Fraction(mant)
    if exp10 == 0 or mant == 0:
        value = _round(value, 64)
    elif exp10 > 0:
        value = _round(value * _pow5(exp10) * 2**exp10, 64)
    else:
        value = _round(value / _pow5(-exp10) / 2**-exp10, 64)
    return -value if negative else value


def _go_lower(text: str) -> str:
    # NOTE: Go lowers rune by rune; only U+0130 (İ) lowers to two characters in Python ("i̇"), to "i" in Go.
    return text.replace("\u0130", "i").lower()


def _string(value: Any) -> str:
    if not isinstance(value, str) or isinstance(value, BigNumber):
        raise BuiltinError("operand 1 must be string")
    return value


@register("units.parse_bytes")
def parse_bytes(_ctx: EvalContext, value: Any) -> int:
    """Bytes in a size text (``"10KB"``, ``"1.5GiB"``, ``"1e3"``), case-insensitive, truncated."""
    s = _go_lower(_string(value)).replace('"', "")
    if " " in s:
        raise BuiltinError("units.parse_bytes: spaces not allowed in resource strings")
    num, unit = _split(s)
    if not num:
        raise BuiltinError("units.parse_bytes: no byte amount provided")
    factor = _BYTE_UNITS.get(unit)
    if factor is None:
        raise BuiltinError(f"units.parse_bytes: byte unit {unit} not recognized")
    amount = big_float(num)
    if amount is None:
        raise BuiltinError("units.parse_bytes: could not parse byte amount to a number")
    return int(_round(amount * factor, 64))


def _float_string(x: Fraction) -> str:
    """Go's ``Rat.FloatString(10)``: ten decimals, halves away from zero, a sign even for -0."""
    scaled = abs(x) * 10**10
    rounded = int(scaled)
    if (scaled - rounded) * 2 >= 1:
        rounded += 1
    whole, frac = divmod(rounded, 10**10)
    return ("-" if x < 0 else "") + f"{whole}.{frac:010d}"


@register("units.parse")
def parse_units(_ctx: EvalContext, value: Any) -> int | BigNumber:
    """The amount in a quantity text (``"10k"``, ``"2Mi"``, ``"250m"``), exact; ``m`` is milli, ``M`` mega."""
    s = _string(value).replace('"', "")
    if " " in s:
        raise BuiltinError("units.parse: spaces not allowed in resource strings")
    num, unit = _split(s)
    if not num:
        raise BuiltinError("units.parse: no amount provided")
    if len(unit) > 1:
        unit = unit[0] + _go_lower(unit[1:])
    factor = _UNITS.get(unit)
    if factor is None:
        raise BuiltinError(f"units.parse: unit {unit} not recognized")
    scanned = _scan(num)
    if scanned is None:
        raise BuiltinError("units.parse: could not parse amount to a number")
    negative, mant, exp10 = scanned
    amount = Fraction(mant) * Fraction(10) ** exp10 * factor
    if negative:
        amount = -amount
    if amount.denominator == 1:
        return int(amount)
    return BigNumber(_float_string(amount))
