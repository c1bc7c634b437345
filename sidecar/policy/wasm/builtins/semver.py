"""``semver.compare`` and ``semver.is_valid``: SemVer 2.0 as OPA's own parser reads it.

OPA's parser (``internal/semver``) allows one leading ``v``, needs
``MAJOR.MINOR.PATCH`` without leading zeros, and checks pre-release and build
identifiers. ``semver.compare`` is -1, 0 or 1 (build metadata ignored) and an
error for a version that does not parse (``Halt`` where OPA never returns); ``semver.is_valid`` is false for any
non-string or invalid text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, Halt, register
from sidecar.policy.wasm.values import BigNumber

__all__ = ["Version", "parse_version"]

_IDENTIFIERS = re.compile(r"[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*")
_DIGITS = re.compile(r"[0-9]+")
_INT64_MAX = (1 << 63) - 1


@dataclass(frozen=True)
class Version:
    """A parsed version; ``pre`` is "" when it has no pre-release part."""

    major: int
    minor: int
    patch: int
    pre: str


def _numeric(text: str) -> int:
    if not _DIGITS.fullmatch(text) or (len(text) > 1 and text[0] == "0"):
        raise ValueError(f"{text!r} is not a valid numeric identifier")
    number = int(text)
    if number > _INT64_MAX:
        raise ValueError(f"{text!r} is out of range")
    return number


def parse_version(text: str) -> Version:
    """The version ``text`` names; ValueError when OPA's semver parser refuses it."""
    text = text.removeprefix("v")
    text, plus, metadata = text.partition("+")
    if plus and not _IDENTIFIERS.fullmatch(metadata):
        raise ValueError(f"invalid metadata identifier: {metadata}")
    text, dash, pre = text.partition("-")
    if dash and (not _IDENTIFIERS.fullmatch(pre) or any(
            len(part) > 1 and part[0] == "0" and _DIGITS.fullmatch(part) for part in pre.split("."))):
        raise ValueError(f"invalid pre-release identifier: {pre}")
    if text.count(".") != 2:
        raise ValueError(f"{text} should contain major, minor, and patch versions")
    major, minor, patch = text.split(".")
    return Version(_numeric(major), _numeric(minor), _numeric(patch), pre)


def _identifier_value(part: str) -> int:
    # NOTE: Go's strconv.Atoi saturates at int64's maximum on overflow, and OPA ignores the error.
    return min(int(part), _INT64_MAX)


def _compare_pre(a: str, b: str) -> int:
    left, right = a.split("."), b.split(".")
    for i in range(max(len(left), len(right))):
        if i >= len(left):
            return -1
        if i >= len(right):
            return 1
        x, y = left[i], right[i]
        x_num, y_num = bool(_DIGITS.fullmatch(x)), bool(_DIGITS.fullmatch(y))
        if x_num != y_num:
            return -1 if x_num else 1
        if x_num:
            xv, yv = _identifier_value(x), _identifier_value(y)
            if xv != yv:
                return 1 if xv > yv else -1
        elif x != y:
            return 1 if x > y else -1
    # NOTE: different texts that compare equal (numbers past int64 saturate): OPA loops forever here.
    raise Halt(f"semver.compare: OPA does not terminate comparing pre-releases {a} and {b}")


def compare_versions(a: Version, b: Version) -> int:
    """-1, 0 or 1 as ``a`` precedes, equals or follows ``b`` in SemVer precedence."""
    for x, y in ((a.major, b.major), (a.minor, b.minor), (a.patch, b.patch)):
        if x != y:
            return 1 if x > y else -1
    if a.pre == b.pre:
        return 0
    if not a.pre or not b.pre:
        return 1 if not a.pre else -1
    return _compare_pre(a.pre, b.pre)


def _string(value: Any, position: int) -> str:
    if not isinstance(value, str) or isinstance(value, BigNumber):
        raise BuiltinError(f"operand {position} must be string")
    return value


@register("semver.compare")
def compare(_ctx: EvalContext, a: Any, b: Any) -> int:
    """-1, 0 or 1 comparing two versions; an error when either is not a valid version."""
    first, second = _string(a, 1), _string(b, 2)
    try:
        left = parse_version(first)
    except ValueError:
        raise BuiltinError(f"operand 1: string {first} is not a valid SemVer") from None
    try:
        right = parse_version(second)
    except ValueError:
        raise BuiltinError(f"operand 2: string {second} is not a valid SemVer") from None
    return compare_versions(left, right)


@register("semver.is_valid")
def is_valid(_ctx: EvalContext, value: Any) -> bool:
    """Whether ``value`` is a string OPA's parser accepts as a version."""
    if not isinstance(value, str) or isinstance(value, BigNumber):
        return False
    try:
        parse_version(value)
    except ValueError:
        return False
    return True
