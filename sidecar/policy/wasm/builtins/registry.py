"""The registry of host builtins and the types a builtin's contract uses (see the package docstring).

Kept apart from the package so that the family modules, which register here, and
the package, which imports them all in ``load_all``, don't import each other.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["REGISTRY", "Builtin", "BuiltinError", "EvalContext", "Halt", "register"]


class BuiltinError(Exception):
    """A builtin's error (bad operand, parse failure): the call is undefined."""


class Halt(Exception):
    """An error that ends the evaluation (OPA's topdown.Halt)."""


@dataclass
class EvalContext:
    """Per-evaluation state shared by the builtins of one evaluation.

    ``now_ns`` is fixed once per evaluation, as OPA fixes ``time.now_ns()`` per query.
    ``cache`` holds what a builtin wants to keep for the rest of one evaluation.
    """

    now_ns: int
    cache: dict[str, Any] = field(default_factory=dict)


Builtin = Callable[..., Any]

REGISTRY: dict[str, Builtin] = {}


def register(name: str) -> Callable[[Builtin], Builtin]:
    """Decorator: ``fn`` implements the Rego builtin ``name`` (``time.parse_rfc3339_ns``)."""

    def add(fn: Builtin) -> Builtin:
        if name in REGISTRY:
            raise RuntimeError(f"builtin {name} registered twice")
        REGISTRY[name] = fn
        return fn

    return add
