"""Whether two glob-like patterns share a string: the ``glob-intersection`` library OPA uses.

A pattern is a sequence of tokens: a character, ``.`` (any character) or a set
``[a-z\\]]``, each optionally followed by ``+`` or ``*``; ``\\`` escapes. ``non_empty``
answers as the library's ``NonEmpty`` does (its heuristics included), or raises
``GlobSyntaxError`` for what the library refuses.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["GlobSyntaxError", "non_empty"]

_CHAR, _DOT, _SET = 0, 1, 2
_NONE, _PLUS, _STAR = 0, 1, 2
_FLAGS = {"+": _PLUS, "*": _STAR}


class GlobSyntaxError(ValueError):
    """The library refuses the pattern."""


@dataclass
class _Token:
    kind: int
    flag: int = _NONE
    rune: str = ""
    runes: frozenset[str] = frozenset()

    def same(self, other: _Token) -> bool:
        if self.kind != other.kind:
            return False
        return self.kind == _DOT or (self.rune == other.rune if self.kind == _CHAR else self.runes == other.runes)


def _next_rune(i: int, text: str) -> tuple[int, str, bool]:
    if text[i] != "\\":
        return i + 1, text[i], False
    if i == len(text) - 1:
        raise GlobSyntaxError("input ends with a \\ (escape) character")
    return i + 2, text[i + 1], True


def _set(i: int, text: str) -> tuple[int, _Token]:
    runes: set[str] = set()
    prev, has_prev = "", False
    while i < len(text):
        i, r, escaped = _next_rune(i, text)
        if escaped:
            runes.add(r)
            prev, has_prev = r, True
        elif r == "-":
            if not has_prev:
                raise GlobSyntaxError("range character '-' must be preceded by a Unicode character")
            if i >= len(text) - 1:
                raise GlobSyntaxError("range character '-' must be followed by a Unicode character")
            i, r, escaped = _next_rune(i, text)
            if not escaped and r in "]-":
                raise GlobSyntaxError("range character '-' cannot be followed by a special symbol")
            if r < prev:
                raise GlobSyntaxError("range is out of order")
            runes.update(chr(c) for c in range(ord(prev), ord(r) + 1))
            has_prev = False
        elif r == "]":
            return i, _Token(_SET, runes=frozenset(runes))
        else:
            runes.add(r)
            prev, has_prev = r, True
    raise GlobSyntaxError("found [ without matching ]")


def _tokens(text: str) -> list[_Token]:
    out: list[_Token] = []
    i = 0
    while i < len(text):
        i, r, escaped = _next_rune(i, text)
        if escaped:
            token = _Token(_CHAR, rune=r)
        elif r == ".":
            token = _Token(_DOT)
        elif r == "]":
            raise GlobSyntaxError("set-close ']' with no preceding '['")
        elif r == "[":
            i, token = _set(i, text)
        elif r in _FLAGS:
            raise GlobSyntaxError(f"flag {r!r} must be preceded by a non-flag")
        else:
            token = _Token(_CHAR, rune=r)
        if i < len(text):
            j, f, esc = _next_rune(i, text)
            if not esc and f in _FLAGS:
                token.flag, i = _FLAGS[f], j
        out.append(token)
    return _simplify(out)


def _simplify(tokens: list[_Token]) -> list[_Token]:
    if not tokens:
        return tokens
    simple, latest = [tokens[0]], tokens[0]
    for token in tokens[1:]:
        if token.flag != _NONE and latest.flag != _NONE and token.same(latest):
            simple[-1].flag = _PLUS if _PLUS in (token.flag, latest.flag) else _STAR
            continue
        latest = token
        simple.append(token)
    return simple


def _match(a: _Token, b: _Token) -> bool:
    if a.kind > b.kind:
        a, b = b, a
    if a.kind == _CHAR:
        return a.rune == b.rune if b.kind == _CHAR else True if b.kind == _DOT else a.rune in b.runes
    if a.kind == _DOT:
        return True
    return not a.runes.isdisjoint(b.runes)


def _trim(g1: list[_Token], g2: list[_Token]) -> tuple[list[_Token], list[_Token]] | None:
    left = 0
    while left < len(g1) and left < len(g2) and g1[left].flag == _NONE and g2[left].flag == _NONE:
        if not _match(g1[left], g2[left]):
            return None
        left += 1
    if left > 0:
        left -= 1
    r1, r2 = len(g1) - 1, len(g2) - 1
    while r1 >= 0 and r1 >= left and r2 >= 0 and r2 >= left and g1[r1].flag == _NONE and g2[r2].flag == _NONE:
        if not _match(g1[r1], g2[r2]):
            return None
        r1, r2 = r1 - 1, r2 - 1
    if r1 < len(g1) - 1:
        r1, r2 = r1 + 1, r2 + 1
    return g1[left:r1 + 1], g2[left:r2 + 1]


def _normal(g1: list[_Token], g2: list[_Token]) -> bool:
    i = 0
    while i < len(g1) and i < len(g2):
        if g1[i].flag != _NONE or g2[i].flag != _NONE:
            return _special(g1[i:], g2[i:])
        if not _match(g1[i], g2[i]):
            return False
        i += 1
    return i == len(g1) and i == len(g2)


def _special(g1: list[_Token], g2: list[_Token]) -> bool:
    flagged, other = (g1, g2) if g1[0].flag != _NONE else (g2, g1)
    return _plus(flagged, other) if flagged[0].flag == _PLUS else _star(flagged, other)


def _plus(plussed: list[_Token], other: list[_Token]) -> bool:
    if not _match(plussed[0], other[0]):
        return False
    if _star(plussed, other[1:]):
        return True
    return other[0].flag != _NONE and _normal(plussed[1:], other)


def _star(starred: list[_Token], other: list[_Token]) -> bool:
    star = starred[0]
    after = starred[1] if len(starred) > 1 else None
    for i, token in enumerate(other):
        if after is not None and _match(token, after) and _normal(starred[1:], other[i:]):
            return True
        if not _match(token, star):
            return False
    return after is None


def non_empty(lhs: str, rhs: str) -> bool:
    """Whether the patterns' languages meet (as the library decides it)."""
    trimmed = _trim(_tokens(lhs), _tokens(rhs))
    return trimmed is not None and _normal(*trimmed)
