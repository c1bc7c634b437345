"""``numbers.range_step`` and ``rand.intn``, as OPA computes them (``topdown/numbers.go``).

``numbers.range_step(a, b, step)`` counts from ``a`` towards ``b`` (down when
``a > b``) by a positive integer ``step``, ``b`` included when reached; operands
must be integers (``2.0`` is one). ``rand.intn(key, n)`` is a random integer in
``[0, |n|)``, 0 for ``n`` 0, the same for the same key and ``n`` within one
evaluation (OPA caches it per query).
"""

from __future__ import annotations

import random
from decimal import Decimal, InvalidOperation
from typing import Any

from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, Halt, register
from sidecar.policy.wasm.builtins.time_ import go_int_operand
from sidecar.policy.wasm.values import BigNumber, Number

__all__ = ["big_int_operand"]

_RANDOM = random.SystemRandom()


def big_int_operand(value: Any) -> int:
    """OPA's ``builtins.BigIntOperand``: any integral number, of any size; BuiltinError otherwise."""
    if isinstance(value, bool) or not isinstance(value, int | float | BigNumber):
        raise BuiltinError("operand must be integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and not isinstance(value, Number):
        if not value.is_integer():
            raise BuiltinError("operand must be integer number but got floating-point number")
        return int(value)
    try:
        exact = Decimal(value.text if isinstance(value, Number) else str(value))
    except InvalidOperation:
        raise BuiltinError("operand must be integer") from None
    if not exact.is_finite() or exact != exact.to_integral_value():
        raise BuiltinError("operand must be integer number but got floating-point number")
    return int(exact)


@register("numbers.range_step")
def range_step(_ctx: EvalContext, a: Any, b: Any, step: Any) -> list[int]:
    """The integers from ``a`` to ``b`` (inclusive when reached) by ``step`` > 0, counting down if ``a > b``."""
    start, stop, by = big_int_operand(a), big_int_operand(b), big_int_operand(step)
    if by <= 0:
        raise BuiltinError("numbers.range_step: step must be a positive integer")
    if start <= stop:
        return list(range(start, stop + 1, by))
    return list(range(start, stop - 1, -by))


@register("rand.intn")
def rand_intn(ctx: EvalContext, key: Any, n: Any) -> int:
    """A random integer in ``[0, |n|)``, fixed per (key, n) for the evaluation; 0 when ``n`` is 0."""
    if not isinstance(key, str) or isinstance(key, BigNumber):
        raise BuiltinError("operand 1 must be string")
    number = go_int_operand(n)
    if number == -(1 << 63):
        # NOTE: Go negates it to itself and rand.Intn panics: OPA crashes, so the evaluation must fail.
        raise Halt("rand.intn: invalid argument to Intn")
    bound = abs(number)
    if bound == 0:
        return 0
    slot = f"rand.intn:{key}-{bound}"
    cached = ctx.cache.get(slot)
    if isinstance(cached, int):
        return cached
    result = _RANDOM.randrange(bound)
    ctx.cache[slot] = result
    return result
