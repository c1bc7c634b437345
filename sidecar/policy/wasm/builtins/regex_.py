"""The regex builtins OPA's Wasm library leaves to the host (topdown/regex.go, regex_template.go).

Patterns are RE2, as Go's regexp reads them: compiled by the ``re2`` module (so a
lookahead or a backreference is an error here as in OPA) and matched on UTF-8
bytes, leftmost-first. Successive matches follow Go's rule: an empty match right
after the previous match is skipped, and the search then moves on one rune.
Replacement text expands ``$1``, ``${1}``, ``$name``, ``${name}`` and ``$$`` as Go's
``Regexp.Expand`` does. A bad pattern or operand makes the call undefined.

Unicode classes (``\\pL``, ``\\pC``) follow the re2 module's Unicode tables, not Go
1.26's: they disagree on code points whose properties changed between the two Unicode
versions (so does OPA's own Wasm ``regex.match``, on an older RE2, for some of them).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any

import re2

from sidecar.policy.wasm.builtins.globs import GlobSyntaxError, non_empty
from sidecar.policy.wasm.builtins.operands import int_operand, string_operand
from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, register

__all__ = ["compile_go_regexp", "go_quote_meta"]

_CACHE_SIZE = 100
_OPTIONS = re2.Options()
_OPTIONS.log_errors = False
_GO_META = frozenset(b"\\.+*?()|[]{}^$")


def _reject_unsupported_escapes(pattern: str) -> None:
    # NOTE: RE2 (C++) knows \C, any single byte; Go's regexp refuses it.
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            if pattern[i + 1:i + 2] == "C":
                raise BuiltinError(f"error parsing regexp: invalid escape sequence: `\\C` in {pattern!r}")
            i += 2
            continue
        i += 1


@functools.lru_cache(maxsize=_CACHE_SIZE)
def compile_go_regexp(pattern: str) -> Any:
    """The compiled pattern (over UTF-8 bytes); BuiltinError when Go's regexp.Compile refuses it.

    The last 100 patterns stay compiled, as OPA keeps them; a refused one is not kept.
    """
    _reject_unsupported_escapes(pattern)
    try:
        return re2.compile(pattern.encode("utf-8"), _OPTIONS)
    except re2.error as exc:
        raise BuiltinError(f"error parsing regexp: {exc}") from exc


def _rune_width(data: bytes, pos: int) -> int:
    lead = data[pos]
    width = 1 if lead < 0x80 else 2 if lead >> 5 == 6 else 3 if lead >> 4 == 14 else 4 if lead >> 3 == 30 else 1
    return min(width, len(data) - pos)


def _search(compiled: Any, data: bytes, pos: int) -> Any:
    """The leftmost match at or after ``pos`` that starts on a rune boundary, as Go's matcher tries them."""
    while True:
        match = compiled.search(data, pos)
        # NOTE: RE2 tries empty-width assertions (\B) between the bytes of one rune too; Go never does.
        if match is None or match.start() >= len(data) or not 0x80 <= data[match.start()] < 0xC0:
            return match
        pos = match.start() + 1


def _all_matches(compiled: Any, data: bytes, limit: int) -> Iterator[Any]:
    """Go's Regexp.allMatches: up to ``limit`` matches (all when < 0)."""
    pos, found, prev_end, end = 0, 0, -1, len(data)
    while (limit < 0 or found < limit) and pos <= end:
        match = _search(compiled, data, pos)
        if match is None:
            return
        start, stop = match.span()
        accept = True
        if stop == pos:
            accept = start != prev_end
            pos = pos + _rune_width(data, pos) if pos < end else end + 1
        else:
            pos = stop
        prev_end = stop
        if accept:
            found += 1
            yield match


def _text(raw: bytes) -> str:
    return raw.decode("utf-8")


@register("regex.find_n")
def find_n(_ctx: EvalContext, pattern: Any, value: Any, number: Any) -> list[str]:
    """Up to ``number`` successive matches of ``pattern`` in ``value`` (all when ``number`` < 0)."""
    pat, text, limit = string_operand(pattern, 1), string_operand(value, 2), int_operand(number, 3)
    compiled = compile_go_regexp(pat)
    data = text.encode("utf-8")
    return [_text(m.group(0)) for m in _all_matches(compiled, data, limit)]


@register("regex.split")
def split(_ctx: EvalContext, pattern: Any, value: Any) -> list[str]:
    """``value`` split around the matches of ``pattern``, as Go's Regexp.Split(s, -1)."""
    pat, text = string_operand(pattern, 1), string_operand(value, 2)
    compiled = compile_go_regexp(pat)
    if pat and not text:
        return [""]
    data = text.encode("utf-8")
    parts: list[str] = []
    begin = cut = 0
    for match in _all_matches(compiled, data, -1):
        cut, stop = match.span()
        if stop != 0:
            parts.append(_text(data[begin:cut]))
        begin = stop
    if cut != len(data):
        parts.append(_text(data[begin:]))
    return parts


def _template_ref(template: bytes) -> tuple[bytes, int, bytes] | None:
    """Go's regexp ``extract``: the name after a ``$``, its number (-1 for a name) and the rest."""
    brace = template[:1] == b"{"
    body = template[1:] if brace else template
    text = body.decode("utf-8")
    i = 0
    while i < len(text) and (text[i].isalpha() or text[i].isdecimal() or text[i] == "_"):
        i += 1
    if i == 0:
        return None
    name = text[:i].encode("utf-8")
    rest = body[len(name):]
    if brace:
        if rest[:1] != b"}":
            return None
        rest = rest[1:]
    num = -1
    if name.isdigit() and name.isascii() and not (name[:1] == b"0" and len(name) > 1) and len(name) <= 8:
        num = int(name)
    return name, num, rest


def _expand(compiled: Any, template: bytes, match: Any) -> bytes:
    out = bytearray()
    while template:
        before, dollar, after = template.partition(b"$")
        out += before
        if not dollar:
            return bytes(out)
        template = after
        if template[:1] == b"$":
            out += b"$"
            template = template[1:]
            continue
        ref = _template_ref(template)
        if ref is None:
            out += b"$"
            continue
        name, num, template = ref
        if num < 0:
            num = compiled.groupindex.get(name, -1)
        if 0 <= num <= compiled.groups and match.span(num)[0] >= 0:
            out += match.group(num)
    return bytes(out)


@register("regex.replace")
def replace(_ctx: EvalContext, s: Any, pattern: Any, value: Any) -> str:
    """``s`` with each match of ``pattern`` replaced by ``value`` expanded (``$1``, ``${name}``, ``$$``)."""
    text, pat, repl = string_operand(s, 1), string_operand(pattern, 2), string_operand(value, 3)
    compiled = compile_go_regexp(pat)
    data, template = text.encode("utf-8"), repl.encode("utf-8")
    out, last = bytearray(), 0
    for match in _all_matches(compiled, data, -1):
        start, stop = match.span()
        out += data[last:start] + _expand(compiled, template, match)
        last = stop
    out += data[last:]
    return _text(bytes(out))


def go_quote_meta(raw: bytes) -> bytes:
    """Go's regexp.QuoteMeta: each of ``\\.+*?()|[]{}^$`` escaped by a backslash."""
    return b"".join(b"\\" + bytes([c]) if c in _GO_META else bytes([c]) for c in raw)


def _delimited(template: bytes, start: int, end: int) -> list[int]:
    level, opened, spans = 0, 0, []
    for i, c in enumerate(template):
        if c == start:
            level += 1
            if level == 1:
                opened = i
        elif c == end:
            level -= 1
            if level == 0:
                spans += [opened, i + 1]
            elif level < 0:
                raise BuiltinError("unbalanced braces")
    if level != 0:
        raise BuiltinError("unbalanced braces")
    return spans


@register("regex.template_match")
def template_match(_ctx: EvalContext, template: Any, value: Any, start: Any, end: Any) -> bool:
    """Whether ``value`` matches ``template``: literal text with regexes between the one-byte delimiters."""
    tpl, text = string_operand(template, 1), string_operand(value, 2)
    open_, close = string_operand(start, 3).encode("utf-8"), string_operand(end, 4).encode("utf-8")
    if len(open_) != 1 or len(close) != 1:
        raise BuiltinError("a delimiter has to be exactly one character long")
    raw = tpl.encode("utf-8")
    spans = _delimited(raw, open_[0], close[0])
    pattern, last = b"^", 0
    for i in range(0, len(spans), 2):
        inner = raw[spans[i] + 1:spans[i + 1] - 1]
        compile_go_regexp(_text(b"^" + inner + b"$"))
        pattern += go_quote_meta(raw[last:spans[i]]) + b"(" + inner + b")"
        last = spans[i + 1]
    pattern += go_quote_meta(raw[last:]) + b"$"
    return _search(compile_go_regexp(_text(pattern)), text.encode("utf-8"), 0) is not None


@register("regex.globs_match")
def globs_match(_ctx: EvalContext, glob1: Any, glob2: Any) -> bool:
    """Whether some string matches both patterns (``.``, sets, ``+``/``*``: see ``globs``)."""
    try:
        return non_empty(string_operand(glob1, 1), string_operand(glob2, 2))
    except GlobSyntaxError as exc:
        raise BuiltinError(f"regex.globs_match: {exc}") from exc
