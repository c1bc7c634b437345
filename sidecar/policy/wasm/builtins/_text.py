"""Is a Rego value a string? ``BigNumber`` is a ``str`` subclass, but a number."""

from __future__ import annotations

from typing import Any, TypeGuard

from sidecar.policy.wasm.values import BigNumber

__all__ = ["is_string"]


def is_string(value: Any) -> TypeGuard[str]:
    """True for a Rego string, False for every other value (a BigNumber included)."""
    return isinstance(value, str) and not isinstance(value, BigNumber)
