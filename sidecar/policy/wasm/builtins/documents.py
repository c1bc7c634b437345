"""Host builtins over whole documents: ``object.subset`` and ``graph.reachable_paths``.

Both compare and look up values with Rego's equality, not Python's: ``1`` equals
``1.0`` but not ``true``, and a string never equals a number (``rego_text``).
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, register
from sidecar.policy.wasm.values import BigNumber, Key, Number, RegoSet, type_name

__all__ = ["rego_text"]

_ABSENT = object()


def rego_text(value: Any) -> str:
    """A text equal for two values exactly when Rego says they are equal."""
    if isinstance(value, Key):
        value = value.value
    if value is None or isinstance(value, bool):
        return json.dumps(value)
    if isinstance(value, BigNumber):
        return "n" + str(Decimal(value).normalize())
    if isinstance(value, int):
        return f"n{value}"
    if isinstance(value, float):
        exact = value.exact() if isinstance(value, Number) else Decimal(repr(value))
        return f"n{int(exact)}" if exact == exact.to_integral_value() else f"n{exact.normalize()}"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ",".join(rego_text(v) for v in value) + "]"
    if isinstance(value, RegoSet):
        return "{" + ",".join(sorted(rego_text(v) for v in value)) + "}"
    if isinstance(value, dict):
        return "o{" + ",".join(sorted(f"{rego_text(k)}:{rego_text(v)}" for k, v in value.items())) + "}"
    raise TypeError(f"not a Rego value: {type(value).__name__}")


def _index(obj: dict[Any, Any]) -> dict[str, Any]:
    return {rego_text(k): v for k, v in obj.items()}


# --- object.subset ---------------------------------------------------------------------


def _object_subset(sup: dict[Any, Any], sub: dict[Any, Any]) -> bool:
    index = _index(sup)
    for key, sub_value in sub.items():
        sup_value = index.get(rego_text(key), _ABSENT)
        if sup_value is _ABSENT:
            return False
        if rego_text(sub_value) == rego_text(sup_value):
            continue
        if isinstance(sup_value, dict) and isinstance(sub_value, dict):
            if not _object_subset(sup_value, sub_value):
                return False
        elif isinstance(sup_value, RegoSet) and isinstance(sub_value, RegoSet):
            if not _set_subset(sup_value, sub_value):
                return False
        elif isinstance(sup_value, list) and isinstance(sub_value, list):
            if not _array_subset(sup_value, sub_value):
                return False
        else:
            return False
    return True


def _set_subset(sup: RegoSet, sub: RegoSet) -> bool:
    members = {rego_text(v) for v in sup}
    return all(rego_text(v) in members for v in sub)


def _array_subset(sup: list[Any], sub: list[Any]) -> bool:
    """Whether ``sub`` is a contiguous run of ``sup``."""
    if len(sub) > len(sup):
        return False
    sup_texts, sub_texts = [rego_text(v) for v in sup], [rego_text(v) for v in sub]
    return any(sup_texts[start:start + len(sub)] == sub_texts for start in range(len(sup) - len(sub) + 1))


def _array_set_subset(sup: list[Any], sub: RegoSet) -> bool:
    members = {rego_text(v) for v in sub}
    unmatched = len(sub)
    for item in sup:
        if rego_text(item) in members:
            unmatched -= 1  # NOTE: OPA counts a repeated array member again, as it does
        if unmatched == 0:
            return True
    # NOTE: OPA answers false for an empty array even against the empty set: nothing was visited.
    return False


@register("object.subset")
def object_subset(_ctx: EvalContext, sup: Any, sub: Any) -> bool:
    """Whether ``sub`` is in ``sup``: objects recursively, sets as subsets, arrays as a contiguous run.

    An array against a set asks whether the array holds the set's members. Other
    pairs of types are a builtin error.
    """
    if isinstance(sup, dict) and isinstance(sub, dict):
        return _object_subset(sup, sub)
    if isinstance(sup, RegoSet) and isinstance(sub, RegoSet):
        return _set_subset(sup, sub)
    if isinstance(sup, list) and isinstance(sub, list):
        return _array_subset(sup, sub)
    if isinstance(sup, list) and isinstance(sub, RegoSet):
        return _array_set_subset(sup, sub)
    raise BuiltinError("both arguments object.subset must be of the same type or array and set")


# --- graph.reachable_paths ---------------------------------------------------------------


def _vertices(collection: Any) -> list[Any]:
    return list(collection) if isinstance(collection, list | RegoSet) else []


def _paths_from(graph: dict[str, Any], root: Any, path: list[Any], found: list[list[Any]],
                reached: set[str]) -> None:
    edges = graph.get(rego_text(root), _ABSENT)
    if edges is _ABSENT:
        found.append(path)  # NOTE: a neighbour that is not a node of the graph ends the path before it
        return
    path = [*path, root]
    neighbours = _vertices(edges)
    if not neighbours:
        found.append(path)
        return
    reached = reached | {rego_text(root)}
    for neighbour in neighbours:
        if rego_text(neighbour) in reached:
            found.append(path)
        else:
            _paths_from(graph, neighbour, path, found, reached)


@register("graph.reachable_paths")
def reachable_paths(_ctx: EvalContext, graph: Any, initial: Any) -> RegoSet:
    """The set of paths (arrays of nodes) from each node of ``initial`` until a leaf or a cycle.

    ``graph`` maps a node to an array or set of neighbours. BuiltinError when it is
    not an object or ``initial`` is not an array or set.
    """
    if not isinstance(graph, dict):
        raise BuiltinError(f"operand 1 must be object but got {type_name(graph)}")
    if not isinstance(initial, list | RegoSet):
        raise BuiltinError(f"operand 2 must be one of {{array, set}} but got {type_name(initial)}")
    index = _index(graph)
    found: list[list[Any]] = []
    for node in initial:
        edges = index.get(rego_text(node), _ABSENT)
        if edges is _ABSENT:
            continue
        neighbours = _vertices(edges)
        if not neighbours:
            found.append([node])
        for neighbour in neighbours:
            _paths_from(index, neighbour, [node], found, {rego_text(node)})
    return RegoSet(found)
