"""Hypothesis strategies for policy inputs, mixed with the values engines get wrong.

Realistic values come from the caller's strategy; ``fuzz`` mixes in awkward ones
(quotes, backslashes, NUL, non-ASCII, numbers beyond 64 bits, -0.0, 1e308, 0.1,
big decimals OPA keeps as text, and values of the wrong type), ``record`` leaves
fields out, and ``document`` sometimes replaces the whole input or drops it.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from tests.corpus.harness import NO_INPUT

__all__ = ["AWKWARD_NUMBERS", "AWKWARD_STRINGS", "anything", "document", "fuzz", "number", "record",
           "rfc3339", "text"]

AWKWARD_STRINGS = (
    "", " ", '"', "\\", '\\"', "'", "\u0000", "a\u0000b", "é", "ÉCOLE", "straße", "İ", "ǅ", "ﬃ", "😀",
    "👩‍💻", "\u202e", "\ufeff", "%s", "%v", "%%", "%!d(", "\n\t", "  padded  ", "null", "true", "1",
    "-0", "1e400", "\U0001d518\U0001d52b\U0001d526", "a/b/c", "/", "{}", "[1]", "\x7f", "\u2028", "\ud800", "x\udc00y",
)

AWKWARD_NUMBERS: tuple[Any, ...] = (
    0, -0.0, 0.0, 1, -1, 2, 7, 100, 0.1, 0.2, 0.5, 1.5, 2.5, -2.5, 1e-7, 5e-324, 1e308, -1e308,
    2**53 + 1, 2**63 - 1, 2**63, 2**64, 2**64 + 1, -(2**64 + 1), 10**30, 3.141592653589793,
    Decimal("1e400"), Decimal("-1e400"), Decimal("0.1000000000000000000001"), Decimal("1E+2"),
    Decimal("123456789012345678901234567890.5"), Decimal("1.0"), Decimal("-0"), Decimal("1e-400"),
)

WRONG_TYPES: tuple[Any, ...] = (None, True, False, [], {}, [1, "a"], {"a": None}, "", 0)

# NOTE: a lone surrogate ("\ud800") can only travel as a \u escape; harness.encode writes it so.
text = st.one_of(st.sampled_from(AWKWARD_STRINGS), st.text(max_size=12))
number = st.one_of(st.sampled_from(AWKWARD_NUMBERS), st.integers(), st.floats(allow_nan=False, allow_infinity=False))
scalar = st.one_of(st.sampled_from(WRONG_TYPES), text, number, st.booleans())
anything: st.SearchStrategy[Any] = st.recursive(
    scalar, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3), max_leaves=6)


def fuzz(strategy: st.SearchStrategy[Any], weight: int = 3) -> st.SearchStrategy[Any]:
    """Mostly ``strategy``, else an awkward string, number or value of another type."""
    return st.one_of(*([strategy] * weight), scalar, anything)


def record(required: Mapping[str, st.SearchStrategy[Any]] | None = None,
           optional: Mapping[str, st.SearchStrategy[Any]] | None = None) -> st.SearchStrategy[dict[str, Any]]:
    """An object with every ``required`` field and any of the ``optional`` ones."""
    return st.fixed_dictionaries(dict(required or {}), optional=dict(optional or {}))


def document(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A whole input: mostly ``strategy``, sometimes another type, sometimes no input at all."""
    return st.one_of(*([strategy] * 8), st.sampled_from(WRONG_TYPES), st.just(NO_INPUT))


_OFFSETS = ("Z", "Z", "z", "+02:00", "-07:00", "+00:00", "-00:00", "+14:00", "-12:30", "+0200", "", " Z")
_FRACTIONS = ("", "", ".5", ".000000001", ".123456789", ".1234567891", ".")


@st.composite
def rfc3339(draw: st.DrawFn, days: tuple[int, int] = (1, 28)) -> str:
    """An RFC 3339 timestamp in March 2026 (and some other years), with Z or an offset, sometimes malformed."""
    year = draw(st.sampled_from((2026, 2026, 2026, 2026, 1969, 0, 9999, 2024)))
    month = draw(st.sampled_from((3, 3, 3, 2, 12, 13)))
    day = draw(st.integers(*days) | st.sampled_from((29, 31, 0)))
    hour = draw(st.integers(0, 23) | st.just(24))
    minute = draw(st.integers(0, 59))
    second = draw(st.integers(0, 59) | st.just(60))
    stamp = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    sep = draw(st.sampled_from(("T", "T", "T", "t", " ")))
    return stamp.replace("T", sep) + draw(st.sampled_from(_FRACTIONS)) + draw(st.sampled_from(_OFFSETS))
