"""Operand checks shared by the host builtins, as OPA's ``topdown/builtins`` makes them.

Each returns the operand as Python wants it or raises ``BuiltinError`` (the call
is then undefined, as OPA's type error makes it).
"""

from __future__ import annotations

from typing import Any

from sidecar.policy.wasm import values
from sidecar.policy.wasm.builtins.registry import BuiltinError

__all__ = ["int_operand", "string_operand", "string_slice_operand"]

_INT64_MIN, _INT64_MAX = -(1 << 63), (1 << 63) - 1


def string_operand(value: Any, pos: int) -> str:
    """A Rego string; BuiltinError for any other type."""
    if isinstance(value, str) and not isinstance(value, values.BigNumber):
        return value
    raise BuiltinError(f"operand {pos} must be string but got {values.type_name(value)}")


def int_operand(value: Any, pos: int) -> int:
    """An integral number within int64, as OPA's IntOperand reads it.

    OPA accepts a number written with only zeros past its point (``2.0``) and refuses
    one with an exponent (``2e0``): a ``values.Number`` is judged by its kept text.
    """
    if isinstance(value, bool) or not isinstance(value, int | float | values.BigNumber):
        raise BuiltinError(f"operand {pos} must be number but got {values.type_name(value)}")
    if isinstance(value, values.Number):
        if value.is_integer() and "e" not in value.text.lower():
            value = int(value.text.split(".", 1)[0])
    elif isinstance(value, float) and value.is_integer() and "e" not in repr(value):
        value = int(value)
    if isinstance(value, int) and _INT64_MIN <= value <= _INT64_MAX:
        return value
    raise BuiltinError(f"operand {pos} must be integer number but got floating-point number")


def string_slice_operand(value: Any, pos: int) -> list[str]:
    """The strings of an array or a set (in the set's order); BuiltinError for any other member or type."""
    if not isinstance(value, list | values.RegoSet):
        raise BuiltinError(f"operand {pos} must be one of {{array, set}} but got {values.type_name(value)}")
    return [string_operand(v, pos) for v in value]
