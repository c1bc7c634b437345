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

from sidecar.policy.wasm.builtins.registry import REGISTRY, Builtin, BuiltinError, EvalContext, Halt, register

__all__ = ["REGISTRY", "Builtin", "BuiltinError", "EvalContext", "Halt", "load_all", "register"]


def load_all() -> dict[str, Builtin]:
    """Import every builtin module (each registers itself) and return the registry."""
    from sidecar.policy.wasm.builtins import catalogue  # noqa: F401  (imports the families)

    return REGISTRY
