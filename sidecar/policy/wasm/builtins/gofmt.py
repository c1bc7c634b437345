"""Go's fmt verbs for one operand, for the four kinds OPA's ``sprintf`` hands to Go.

An operand is a ``str`` (Go string), an ``int`` within 64 bits (Go int64), a
``BigInt`` (Go ``*big.Int``, which formats itself) or a ``float`` (Go float64).
``print_arg(spec, arg, verb)`` is what Go's fmt writes for ``arg`` under ``verb``
with the flags, width and precision in ``spec``, its in-band errors included
(``%!d(string=x)``). ``Unformattable`` is raised for ``%p`` of a big integer: Go
prints a memory address there, which no one can reproduce.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sidecar.policy.wasm.builtins.gostrconv import append_float, escape_rune, go_quote, is_print

__all__ = ["BigInt", "Spec", "Unformattable", "print_arg", "type_name"]

_LOWER = "0123456789abcdefx"
_UPPER = "0123456789ABCDEFX"
_MAX_RUNE = 0x10FFFF
_U64 = (1 << 64) - 1


class BigInt(int):
    """An integer Go holds as ``*big.Int`` (beyond int64)."""

    __slots__ = ()


class Unformattable(Exception):
    """Go's answer depends on a memory address (``%p`` of a pointer)."""


def type_name(arg: object) -> str:
    """The Go type name fmt shows for an operand (``%T``, error reports)."""
    if isinstance(arg, str):
        return "string"
    if isinstance(arg, BigInt):
        return "*big.Int"
    return "int64" if isinstance(arg, int) else "float64"


def _rune(u: int) -> int:
    return 0xFFFD if u > _MAX_RUNE or 0xD800 <= u <= 0xDFFF else u


@dataclass
class Spec:
    """The flags, width and precision of one directive (Go's fmt.fmtFlags, wid, prec)."""

    wid: int = 0
    prec: int = 0
    wid_present: bool = False
    prec_present: bool = False
    minus: bool = False
    plus: bool = False
    sharp: bool = False
    space: bool = False
    zero: bool = False
    plus_v: bool = False
    sharp_v: bool = False

    def padding(self, n: int, zero: bool | None = None) -> str:
        use_zero = self.zero if zero is None else zero
        return ("0" if use_zero and not self.minus else " ") * max(n, 0)

    def pad(self, s: str, zero: bool | None = None) -> str:
        if not self.wid_present or self.wid == 0:
            return s
        fill = self.padding(self.wid - len(s), zero)
        return s + fill if self.minus else fill + s

    def truncate(self, s: str) -> str:
        return s[: self.prec] if self.prec_present else s


# --- integers ------------------------------------------------------------------------


def _fmt_integer(f: Spec, v: int, base: int, signed: bool, verb: str, digits: str) -> str:
    negative = signed and v < 0
    u = -v if negative else v
    prec = 0
    if f.prec_present:
        prec = f.prec
        if prec == 0 and u == 0:
            return f.padding(f.wid, zero=False)
    elif f.zero and not f.minus and f.wid_present:
        prec = f.wid - (1 if negative or f.plus or f.space else 0)
    text = _to_base(u, base, digits).rjust(prec, "0")
    if f.sharp:
        if base == 2:
            text = "0b" + text
        elif base == 8 and text[0] != "0":
            text = "0" + text
        elif base == 16:
            text = "0" + digits[16] + text
    if verb == "O":
        text = "0o" + text
    if negative:
        text = "-" + text
    elif f.plus:
        text = "+" + text
    elif f.space:
        text = " " + text
    return f.pad(text, zero=False)


def _to_base(u: int, base: int, digits: str) -> str:
    if u == 0:
        return "0"
    out = []
    while u:
        u, d = divmod(u, base)
        out.append(digits[d])
    return "".join(reversed(out))


def _fmt_unicode(f: Spec, u: int) -> str:
    prec = f.prec if f.prec_present and f.prec > 4 else 4
    text = "U+" + _to_base(u, 16, _UPPER).rjust(prec, "0")
    if f.sharp and u <= _MAX_RUNE and not 0xD800 <= u <= 0xDFFF and is_print(u):
        text += f" '{chr(u)}'"
    return f.pad(text, zero=False)


def _int64(f: Spec, v: int, verb: str) -> str | None:
    u = v & _U64
    if verb in "vd":
        return _fmt_integer(f, v, 10, True, verb, _LOWER)
    base = {"b": 2, "o": 8, "O": 8, "x": 16, "X": 16}.get(verb)
    if base:
        return _fmt_integer(f, v, base, True, verb, _UPPER if verb == "X" else _LOWER)
    if verb == "c":
        return f.pad(chr(_rune(u)))
    if verb == "q":
        return f.pad("'" + escape_rune(_rune(u), "'", f.plus) + "'")
    if verb == "U":
        return _fmt_unicode(f, u)
    return None


def _big_int(f: Spec, x: int, verb: str) -> str:
    base = {"b": 2, "o": 8, "O": 8, "d": 10, "s": 10, "v": 10, "x": 16, "X": 16}.get(verb)
    if base is None:
        return f"%!{verb}(big.Int={x})"
    plus, sharp = f.plus or f.plus_v, f.sharp or f.sharp_v
    sign = "-" if x < 0 else "+" if plus else " " if f.space else ""
    prefix = {"b": "0b", "o": "0", "x": "0x", "X": "0X"}.get(verb, "") if sharp else ""
    if verb == "O":
        prefix = "0o"
    digits = _to_base(abs(x), base, _UPPER if verb == "X" else _LOWER)
    zeros = left = right = 0
    if f.prec_present:
        if len(digits) < f.prec:
            zeros = f.prec - len(digits)
        elif digits == "0" and f.prec == 0:
            return ""
    length = len(sign) + len(prefix) + zeros + len(digits)
    if f.wid_present and length < f.wid:
        d = f.wid - length
        if f.minus:
            right = d
        elif f.zero and not f.prec_present:
            zeros = d
        else:
            left = d
    return " " * left + sign + prefix + "0" * zeros + digits + " " * right


def _big_int_struct(f: Spec, x: int) -> str:
    """Go's reflection print of a ``*big.Int`` (what ``%w`` reports): ``&{false [w0 w1]}``."""
    words, u = [], abs(x)
    while u:
        word = u & _U64
        words.append(_fmt_integer(replace(f, sharp=True), word, 16, False, "v", _LOWER) if f.sharp_v
                     else _fmt_integer(f, word, 10, False, "v", _LOWER))
        u >>= 64
    neg = f.pad("true" if x < 0 else "false")
    if f.sharp_v:
        return "&big.Int{neg:" + neg + ", abs:big.nat{" + ", ".join(words) + "}}"
    if f.plus_v:
        return "&{neg:" + neg + " abs:[" + " ".join(words) + "]}"
    return "&{" + neg + " [" + " ".join(words) + "]}"


# --- strings -------------------------------------------------------------------------


def _hex_string(f: Spec, s: str, digits: str) -> str:
    data = s.encode("utf-8")
    if f.prec_present:
        data = data[: f.prec]
    if not data:
        return f.padding(f.wid) if f.wid_present else ""
    sep = " " if f.space else ""
    pre = "0" + digits[16] if f.sharp else ""
    body = (pre if not f.space else "") + sep.join((pre if f.space else "") + digits[b >> 4] + digits[b & 15]
                                                     for b in data)
    if f.wid_present and f.wid > len(body):
        fill = f.padding(f.wid - len(body))
        return body + fill if f.minus else fill + body
    return body


def _can_backquote(s: str) -> bool:
    return all(not ((c < " " and c != "\t") or c in "`\x7f\ufeff") for c in s)


def _fmt_q(f: Spec, s: str) -> str:
    s = f.truncate(s)
    if f.sharp and _can_backquote(s):
        return f.pad("`" + s + "`")
    return f.pad(go_quote(s, ascii_only=f.plus))


def _string(f: Spec, s: str, verb: str) -> str | None:
    if verb == "v":
        return _fmt_q(f, s) if f.sharp_v else f.pad(f.truncate(s))
    if verb == "s":
        return f.pad(f.truncate(s))
    if verb in "xX":
        return _hex_string(f, s, _LOWER if verb == "x" else _UPPER)
    if verb == "q":
        return _fmt_q(f, s)
    return None


# --- floats --------------------------------------------------------------------------

def _fmt_float(f: Spec, v: float, verb: str, prec: int) -> str:
    if f.prec_present:
        prec = f.prec
    num = append_float(v, verb, prec)
    num = num if num[0] in "+-" else "+" + num
    if f.space and num[0] == "+" and not f.plus:
        num = " " + num[1:]
    if num[1] in "IN":
        if num[1] == "N" and not f.space and not f.plus:
            num = num[1:]
        return f.pad(num, zero=False)
    if f.sharp and verb != "b":
        num = _sharp_float(num, verb, prec)
    if f.plus or num[0] != "+":
        if f.zero and not f.minus and f.wid_present and f.wid > len(num):
            return num[0] + f.padding(f.wid - len(num)) + num[1:]
        return f.pad(num)
    return f.pad(num[1:])


def _sharp_float(num: str, verb: str, prec: int) -> str:
    digits = (6 if prec == -1 else prec) if verb in "vgGx" else 0
    tail, has_point, saw_nonzero = "", False, False
    for i in range(1, len(num)):
        ch = num[i]
        if ch == ".":
            has_point = True
        elif ch in "pP" or (ch in "eE" and verb not in "xX"):
            num, tail = num[:i], num[i:]
            break
        else:
            saw_nonzero = saw_nonzero or ch != "0"
            digits -= 1 if saw_nonzero else 0
    if not has_point:
        if len(num) == 2 and num[1] == "0":
            digits -= 1
        num += "."
    return num + "0" * max(digits, 0) + tail


def _float(f: Spec, v: float, verb: str) -> str | None:
    if verb == "v":
        return _fmt_float(f, v, "g", -1)
    if verb in "bgGxX":
        return _fmt_float(f, v, verb, -1)
    if verb in "feE":
        return _fmt_float(f, v, verb, 6)
    if verb == "F":
        return _fmt_float(f, v, "f", 6)
    return None


# --- one operand ---------------------------------------------------------------------


def print_arg(f: Spec, arg: object, verb: str, erroring: bool = False) -> str:
    """What Go writes for ``arg`` under ``verb`` (``erroring``: inside a ``%!verb(...)`` report)."""
    if verb == "T":
        return f.pad(f.truncate(type_name(arg)))
    if verb == "p":
        if isinstance(arg, BigInt):
            raise Unformattable("%p of a big integer is a memory address")
        return _bad_verb(f, arg, verb)
    if isinstance(arg, BigInt):
        if erroring:
            return _big_int_struct(f, arg)
        return _bad_verb(f, arg, verb) if verb == "w" else _big_int(f, arg, verb)
    if isinstance(arg, str):
        out = _string(f, arg, verb)
    elif isinstance(arg, int):
        out = _int64(f, arg, verb)
    else:
        assert isinstance(arg, float)
        out = _float(f, arg, verb)
    return _bad_verb(f, arg, verb) if out is None else out


def _bad_verb(f: Spec, arg: object, verb: str) -> str:
    return f"%!{verb}({type_name(arg)}={print_arg(f, arg, 'v', erroring=True)})"
