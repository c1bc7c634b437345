"""Host builtins: what a Wasm policy compiled by OPA asks the host to compute.

OPA's Wasm library implements most builtins itself; the module lists the rest
(``builtins`` export) and calls ``opa_builtinN`` for them. Each one here keeps
OPA's exact semantics (topdown's Go code is the reference; tests compare with
``opa eval``). A module that needs a builtin missing from ``REGISTRY`` is refused
at load time, naming it, so the engine never decides differently from OPA.

A builtin is ``fn(ctx, *args) -> value``; arguments and result are Python Rego
values (``sidecar.policy.wasm.values``; ``None`` is null). It raises ``BuiltinError``
for what OPA reports as a builtin error and for an undefined result (the call is
then undefined, OPA's non-strict answer) and ``Halt`` for what stops OPA's
evaluation with an error.
"""

from __future__ import annotations

import importlib
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


def load_all() -> dict[str, Builtin]:
    """Import every builtin module (each registers itself) and return the registry."""
    # NOTE: loaded by name: the families import this contract, so a static import would be a cycle.
    importlib.import_module("sidecar.policy.wasm.builtins.catalogue")
    return REGISTRY
