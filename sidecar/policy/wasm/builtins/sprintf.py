"""``sprintf``: OPA hands its operands to Go's ``fmt.Sprintf``; this does the same in Python.

OPA turns each element of the argument array into a Go value first: a string into
a Go string; a number whose text has a fraction or an exponent into a float64 (or,
when a float64 can't hold it, its text as a string), an integer into an int64 or,
beyond 64 bits, a ``*big.Int``; anything else into its Rego text (``{"a": 1}``,
``{1, 2}``, ``true``) as a string. ``go_sprintf`` then walks the format as Go's
fmt does: ``[n]`` argument indexes, ``*`` width and precision, flags, and the
in-band errors (``%!s(MISSING)``, ``%!(EXTRA ...)``, ``%!(NOVERB)``, ``%!d(BADINDEX)``).
"""

from __future__ import annotations

from typing import Any

from sidecar.policy.wasm import values
from sidecar.policy.wasm.builtins.gofmt import BigInt, Spec, Unformattable, print_arg, type_name
from sidecar.policy.wasm.builtins.gostrconv import go_quote
from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, register

__all__ = ["go_sprintf", "rego_text"]

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1
_FLAGS = {"#": "sharp", "0": "zero", "+": "plus", "-": "minus", " ": "space"}


def rego_text(value: Any) -> str:
    """Rego's text form of a value (Go's ``ast.Value.String()``): ``{"a": [1, true]}``, ``set()``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, values.BigNumber):
        return str(value)
    if isinstance(value, str):
        return go_quote(value)
    if isinstance(value, int):
        return values.dump(value) if isinstance(value, values.NegativeZero) else str(value)
    if isinstance(value, values.Number):
        return value.text  # NOTE: OPA prints a number's own text (1e3, 1.50)
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, values.Key):
        return rego_text(value.value)
    if isinstance(value, list):
        return "[" + ", ".join(rego_text(v) for v in value) + "]"
    if isinstance(value, values.RegoSet):
        return "{" + ", ".join(rego_text(v) for v in value) + "}" if len(value) else "set()"
    if isinstance(value, dict):
        keys = sorted(value, key=values.sort_key)
        return "{" + ", ".join(f"{rego_text(k)}: {rego_text(value[k])}" for k in keys) + "}"
    raise TypeError(f"not a Rego value: {type(value).__name__}")


def go_operand(value: Any) -> object:
    """The Go value OPA's sprintf passes to fmt for one element of its argument array."""
    if isinstance(value, values.BigNumber):
        return str(value)
    if isinstance(value, bool) or value is None or not isinstance(value, str | int | float):
        return rego_text(value)
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        return value if _INT64_MIN <= value <= _INT64_MAX else BigInt(value)
    return value


def _parse_num(s: str, i: int) -> tuple[int, bool, int]:
    num, found = 0, False
    while i < len(s) and "0" <= s[i] <= "9":
        if num > 1_000_000:
            return 0, False, len(s)
        num, found = num * 10 + ord(s[i]) - 48, True
        i += 1
    return num, found, i


def _int_from_arg(args: list[object], n: int) -> tuple[int, bool, int]:
    if n >= len(args):
        return 0, False, n
    a = args[n]
    if not isinstance(a, int) or isinstance(a, BigInt) or not -1_000_000 <= a <= 1_000_000:
        return 0, False, n + 1
    return a, True, n + 1


class _Printer:
    """One run of Go's doPrintf over ``fmt`` and ``args``."""

    def __init__(self, fmt: str, args: list[object]) -> None:
        self.fmt, self.args = fmt, args
        self.out: list[str] = []
        self.arg_num = 0
        self.reordered = False
        self.good_arg_num = True

    def run(self) -> str:
        s, i = self.fmt, 0
        while i < len(s):
            self.good_arg_num = True
            j = s.find("%", i)
            if j < 0:
                self.out.append(s[i:])
                break
            self.out.append(s[i:j])
            i = self.directive(j + 1)
        if not self.reordered and self.arg_num < len(self.args):
            rest = self.args[self.arg_num:]
            self.out.append("%!(EXTRA " + ", ".join(f"{type_name(a)}={print_arg(Spec(), a, 'v')}" for a in rest) + ")")
        return "".join(self.out)

    def arg_number(self, i: int) -> tuple[int, bool]:
        """Reads an ``[n]`` index at ``i``: the position after it and whether one was read."""
        s = self.fmt
        if i >= len(s) or s[i] != "[":
            return i, False
        self.reordered = True
        close = s.find("]", i + 1) if len(s) - i >= 3 else -1
        if close < 0:
            self.good_arg_num = False
            return i + 1, False
        num, ok, end = _parse_num(s, i + 1)
        if not ok or end != close:
            self.good_arg_num = False
            return close + 1, False
        if 0 < num <= len(self.args):
            self.arg_num = num - 1
        else:
            self.good_arg_num = False
        return close + 1, True

    def directive(self, i: int) -> int:
        s, end, f = self.fmt, len(self.fmt), Spec()
        while i < end and s[i] in _FLAGS:
            setattr(f, _FLAGS[s[i]], True)
            i += 1
        if i < end and "a" <= s[i] <= "z" and self.arg_num < len(self.args):
            return self.verb(f, s[i], i + 1)
        i, after_index = self.arg_number(i)
        if i < end and s[i] == "*":
            f.wid, f.wid_present, self.arg_num = _int_from_arg(self.args, self.arg_num)
            i += 1
            if not f.wid_present:
                self.out.append("%!(BADWIDTH)")
            if f.wid < 0:
                f.wid, f.minus, f.zero = -f.wid, True, False
            after_index = False
        else:
            f.wid, f.wid_present, i = _parse_num(s, i)
            if after_index and f.wid_present:
                self.good_arg_num = False
        if i + 1 < end and s[i] == ".":
            i += 1
            if after_index:
                self.good_arg_num = False
            i, after_index = self.arg_number(i)
            if i < end and s[i] == "*":
                f.prec, f.prec_present, self.arg_num = _int_from_arg(self.args, self.arg_num)
                i += 1
                if f.prec < 0:
                    f.prec, f.prec_present = 0, False
                if not f.prec_present:
                    self.out.append("%!(BADPREC)")
                after_index = False
            else:
                f.prec, _, i = _parse_num(s, i)
                f.prec_present = True
        if not after_index:
            i, after_index = self.arg_number(i)
        if i >= end:
            self.out.append("%!(NOVERB)")
            return end
        return self.verb(f, s[i], i + 1)

    def verb(self, f: Spec, verb: str, i: int) -> int:
        if verb == "%":
            self.out.append("%")
        elif not self.good_arg_num:
            self.out.append(f"%!{verb}(BADINDEX)")
        elif self.arg_num >= len(self.args):
            self.out.append(f"%!{verb}(MISSING)")
        else:
            if verb in ("v", "w"):
                f.sharp_v, f.sharp, f.plus_v, f.plus = f.sharp, False, f.plus, False
            self.out.append(print_arg(f, self.args[self.arg_num], verb))
            self.arg_num += 1
        return i


def go_sprintf(fmt: str, args: list[object]) -> str:
    """Go's ``fmt.Sprintf(fmt, args...)`` for operands as ``go_operand`` makes them."""
    return _Printer(fmt, args).run()


@register("sprintf")
def sprintf(_ctx: EvalContext, fmt: Any, args: Any) -> str:
    """``sprintf(format, values)``; BuiltinError for a non-string format or a non-array of values."""
    if not isinstance(fmt, str) or isinstance(fmt, values.BigNumber):
        raise BuiltinError(f"sprintf: operand 1 must be string but got {values.type_name(fmt)}")
    if not isinstance(args, list):
        raise BuiltinError(f"sprintf: operand 2 must be array but got {values.type_name(args)}")
    try:
        return go_sprintf(fmt, [go_operand(a) for a in args])
    except Unformattable as exc:
        raise BuiltinError(f"sprintf: {exc}") from exc
