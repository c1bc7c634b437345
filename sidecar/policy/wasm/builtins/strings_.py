"""The strings builtins OPA's Wasm library leaves to the host (topdown/strings.go, glob.go).

Positions and counts are in runes (code points), as OPA's are for non-ASCII text
(for ASCII text a byte is a rune). Type errors make the call undefined.
"""

from __future__ import annotations

from typing import Any

from sidecar.policy.wasm import values
from sidecar.policy.wasm.builtins.operands import int_operand, string_operand, string_slice_operand
from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, register

__all__: list[str] = []

_GLOB_SPECIALS = frozenset("*?\\[]{}")


def _search_strings(value: Any) -> list[str]:
    if isinstance(value, str) and not isinstance(value, values.BigNumber):
        return [value]
    if isinstance(value, list | values.RegoSet):
        return string_slice_operand(value, 1)
    raise BuiltinError(f"operand 1 must be one of {{string, set, array}} but got {values.type_name(value)}")


def _bases(value: Any) -> list[str]:
    if isinstance(value, str) and not isinstance(value, values.BigNumber):
        return [value]
    if isinstance(value, list | values.RegoSet):
        return string_slice_operand(value, 2)
    raise BuiltinError(f"operand 2 must be one of {{string, set, array}} but got {values.type_name(value)}")


@register("strings.any_prefix_match")
def any_prefix_match(_ctx: EvalContext, search: Any, base: Any) -> bool:
    """Whether any search string starts with any base string (each a string, array or set of strings)."""
    strs, bases = _search_strings(search), _bases(base)
    return any(s.startswith(b) for s in strs for b in bases)


@register("strings.any_suffix_match")
def any_suffix_match(_ctx: EvalContext, search: Any, base: Any) -> bool:
    """Whether any search string ends with any base string (each a string, array or set of strings)."""
    strs, bases = _search_strings(search), _bases(base)
    return any(s.endswith(b) for s in strs for b in bases)


@register("strings.count")
def count(_ctx: EvalContext, search: Any, substring: Any) -> int:
    """Non-overlapping occurrences of ``substring`` (an empty one: runes + 1, as Go's strings.Count)."""
    return string_operand(search, 1).count(string_operand(substring, 2))


@register("indexof_n")
def indexof_n(_ctx: EvalContext, haystack: Any, needle: Any) -> list[int]:
    """Every rune index where ``needle`` starts, overlaps included; an empty needle is an error."""
    text, sub = string_operand(haystack, 1), string_operand(needle, 2)
    if not sub:
        raise BuiltinError("empty search character")
    out, at = [], text.find(sub)
    while at >= 0:
        out.append(at)
        at = text.find(sub, at + 1)
    return out


def _split(text: str, delim: str) -> list[str]:
    # NOTE: Go splits on an empty delimiter between runes, and "" into no parts at all.
    return list(text) if delim == "" else text.split(delim)


@register("strings.split_n")
def split_n(_ctx: EvalContext, x: Any, delimiter: Any, n: Any) -> list[str]:
    """The first ``n`` parts of ``x`` split on ``delimiter`` (``n`` < 0: the last ``-n``; 0: none)."""
    text, delim, limit = string_operand(x, 1), string_operand(delimiter, 2), int_operand(n, 3)
    parts = _split(text, delim)
    if limit >= 0:
        return parts[:limit]
    return parts[max(len(parts) + limit, 0):]


@register("glob.quote_meta")
def quote_meta(_ctx: EvalContext, pattern: Any) -> str:
    """``pattern`` with each glob meta character (``* ? \\ [ ] { }``) escaped by a backslash."""
    return "".join("\\" + c if c in _GLOB_SPECIALS else c for c in string_operand(pattern, 1))
