"""``json.patch``: RFC 6902 patches applied as OPA applies them (topdown/json.go over its edit tree).

A path is "/a/b" text (leading slashes trimmed, "~1" -> "/", "~0" -> "~", "" the
whole document) or an array of segments of any type. Objects are entered by a
key equal to the segment (Rego's equality: a string segment never finds a number
key), arrays by an integer or integer text ("-" is the end, leading zeros refused),
sets by a member. ``add`` replaces an object's key, inserts into an array and adds
a set member equal to the segment; ``remove`` needs the target to exist; ``replace``
is remove then add; ``move`` and ``copy`` render ``from`` first; ``test`` compares
with Rego's equality. Any failed operation is a builtin error; removing the whole
document (OPA's evaluator then crashes) is Halt, and so is an array index written
as a number with a fraction (``1.0``), whose text OPA reads and the value layer
does not keep. OPA's edit tree reads an array element it walks through from the
unpatched array (``_Array``): that quirk is kept, as OPA is the reference.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sidecar.policy.wasm.builtins._text import is_string
from sidecar.policy.wasm.builtins.documents import rego_text
from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, Halt, register
from sidecar.policy.wasm.values import BigNumber, Key, Number, RegoSet, type_name

__all__: list[str] = []

_DELETED = object()
_INT64 = 1 << 63


def _path(value: Any) -> list[Any]:
    if is_string(value):
        if value == "":
            return []
        parts = value.lstrip("/").split("/")
        return [p.replace("~1", "/").replace("~0", "~") for p in parts]
    if isinstance(value, list):
        return list(value)
    raise BuiltinError("operand 2 must be one of {set, array} containing string paths or array of path segments "
                       f"but got {type_name(value)}")


def _atoi64(text: str) -> int | None:
    """OPA's util.Atoi64: a sign, up to 19 digits, and a fraction of zeros only ("1.0", "1." and "." count)."""
    negative = text[:1] == "-"
    if text[:1] in ("-", "+"):
        text = text[1:]
    if not 0 < len(text) <= 19:
        return None
    whole, _, fraction = text.partition(".")
    if "." in fraction or any(c not in "0123456789" for c in whole) or fraction.strip("0"):
        return None
    value = int(whole) if whole else 0
    value = -value if negative else value
    return value if -_INT64 <= value < _INT64 else None


def _index(length: int, key: Any) -> int:
    if is_string(key):
        if key == "-":
            return length
        index = _atoi64(key)
        if index is None:
            raise BuiltinError("invalid string for indexing")
        if key != "0" and key.startswith("0"):
            raise BuiltinError("leading zeros are not allowed in JSON paths")
        return index
    if isinstance(key, bool) or not isinstance(key, int | float | BigNumber):
        raise BuiltinError("invalid type for indexing")
    if isinstance(key, BigNumber):
        index = _atoi64(key)
    elif isinstance(key, Number):
        index = _atoi64(key.text)  # NOTE: OPA reads the number's text: "1.0" is index 1, "1e0" is none
    elif isinstance(key, float):
        if key.is_integer():
            # NOTE: OPA reads the number's text: "1.0" is index 1 but "1e0" is no index, and the value
            # layer keeps only the float, so the embedded engine refuses rather than guess.
            raise Halt("json.patch: an array index written as a decimal number is not supported; write 1, not 1.0")
        index = None
    else:
        index = _atoi64(str(key))
    if index is None:
        raise BuiltinError("invalid number type for indexing")
    return index


def _find_key(obj: dict[Any, Any], key: Any) -> Any:
    text = rego_text(key)
    return next((k for k in obj if rego_text(k) == text), _DELETED)


def _find_member(members: RegoSet, key: Any) -> Any:
    text = rego_text(key)
    return next((m for m in members if rego_text(m) == text), _DELETED)


class _Array:
    """An array being patched as OPA's edit tree keeps one: the original, and a slot per element.

    A slot is (True, value) for an element the patch put there, (False, i) for the
    original's element i. OPA walks through a slot of the second kind by reading
    the original at the slot's *position* (not at i) and putting that there: after
    an insert or delete before it, that is another element, even a removed one.
    """

    __slots__ = ("original", "slots")

    def __init__(self, original: list[Any]) -> None:
        self.original = original
        self.slots: list[tuple[bool, Any]] = [(False, i) for i in range(len(original))]

    def enter(self, key: Any) -> Any:
        idx = _index(len(self.slots), key)
        if 0 <= idx < len(self.slots) and self.slots[idx][0]:
            return self.slots[idx][1]
        if not 0 <= idx < len(self.original):
            raise BuiltinError(f"path {idx} does not exist in array")
        value = self.original[idx]
        self.delete(idx)
        self.insert(idx, value)
        return value

    def insert(self, idx: int, value: Any) -> None:
        if not 0 <= idx <= len(self.slots):
            raise BuiltinError("index for array insertion out of bounds")
        self.slots.insert(idx, (True, value))

    def delete(self, idx: int) -> None:
        if not 0 <= idx < len(self.slots):
            raise BuiltinError("index for array delete out of bounds")
        del self.slots[idx]

    def render(self) -> list[Any]:
        return [_render_value(v if placed else self.original[v]) for placed, v in self.slots]


def _render_value(value: Any) -> Any:
    if isinstance(value, _Array):
        return value.render()
    if isinstance(value, dict):
        return {k: _render_value(v) for k, v in value.items()}
    return value


def _as_array(value: Any) -> Any:
    return _Array(value) if isinstance(value, list) else value


def _child(doc: Any, key: Any) -> Any:
    if isinstance(doc, dict):
        found = _find_key(doc, key)
        if found is _DELETED:
            raise BuiltinError(f"path {key} does not exist in object")
        return doc[found]
    if isinstance(doc, _Array):
        return doc.enter(key)
    if isinstance(doc, RegoSet):
        member = _find_member(doc, key)
        if member is _DELETED:
            raise BuiltinError(f"path {key} does not exist in set")
        return member
    if doc is _DELETED:
        raise BuiltinError("nil value encountered where composite value was expected")
    raise BuiltinError("expected composite type for path")


def _with_child(doc: Any, key: Any, new: Any) -> Any:
    if isinstance(doc, dict):
        out = dict(doc)
        out[_find_key(doc, key)] = new
        return out
    if isinstance(doc, _Array):
        doc.slots[_index(len(doc.slots), key)] = (True, new)
        return doc
    member = _find_member(doc, key)
    # NOTE: OPA renders a set before entering a member again, so the member is kept rendered.
    return RegoSet([m for m in doc if m is not member] + [_render_value(new)])


def _at(doc: Any, path: list[Any], change: Callable[[Any], Any]) -> Any:
    """``doc`` with the value at ``path`` replaced by ``change(value)``; arrays on the way become _Array."""
    doc = _as_array(doc)
    if not path:
        return change(doc)
    return _with_child(doc, path[0], _at(_child(doc, path[0]), path[1:], change))


def _insert(parent: Any, key: Any, value: Any) -> Any:
    if isinstance(parent, dict):
        out = {k: v for k, v in parent.items() if rego_text(k) != rego_text(key)}
        out[Key(key) if isinstance(key, list | dict | RegoSet) else key] = value
        return out
    if isinstance(parent, _Array):
        parent.insert(_index(len(parent.slots), key), value)
        return parent
    if isinstance(parent, RegoSet):
        if rego_text(key) != rego_text(value):
            raise BuiltinError(f"set key {key} does not equal value to be inserted {value}")
        return RegoSet([*parent, value])
    raise BuiltinError("expected composite type")


def _delete(parent: Any, key: Any) -> Any:
    if isinstance(parent, dict):
        if _find_key(parent, key) is _DELETED:
            raise BuiltinError(f"cannot delete child key {key} that does not exist")
        return {k: v for k, v in parent.items() if rego_text(k) != rego_text(key)}
    if isinstance(parent, _Array):
        parent.delete(_index(len(parent.slots), key))
        return parent
    if isinstance(parent, RegoSet):
        member = _find_member(parent, key)
        if member is _DELETED:
            raise BuiltinError(f"cannot delete child key {key} that does not exist")
        return RegoSet([m for m in parent if m is not member])
    raise BuiltinError("expected composite type")


def _add(doc: Any, path: list[Any], value: Any) -> Any:
    if not path:
        return value
    return _at(doc, path[:-1], lambda parent: _insert(parent, path[-1], value))


def _remove(doc: Any, path: list[Any]) -> Any:
    if not path:
        if doc is _DELETED:
            raise BuiltinError("deleted node encountered during delete operation")
        return _DELETED
    return _at(doc, path[:-1], lambda parent: _delete(parent, path[-1]))


def _render(doc: Any, path: list[Any]) -> tuple[Any, Any]:
    """(``doc`` after walking to ``path``, the value there rendered): OPA's walk itself changes arrays."""
    seen: list[Any] = []

    def keep(value: Any) -> Any:
        seen.append(value)
        return value

    doc = _at(doc, path, keep)
    if seen[0] is _DELETED:
        raise Halt("json.patch: reading the removed document (OPA's evaluator crashes here)")
    return doc, _render_value(seen[0])


def _attribute(op: dict[Any, Any], name: str) -> Any:
    found = _find_key(op, name)
    if found is _DELETED:
        raise BuiltinError(f"missing required attribute '{name}'")
    return op[found]


def _apply(doc: Any, op: Any) -> Any:
    if not isinstance(op, dict):
        raise BuiltinError("must be an array of JSON-Patch objects, but at least one element is not an object")
    raw_path = _attribute(op, "path")
    kind = _attribute(op, "op")
    if not is_string(kind):
        raise BuiltinError(f"attribute 'op' must be a string but found: {type_name(kind)}")
    path = _path(raw_path)
    if kind == "add":
        return _add(doc, path, _attribute(op, "value"))
    if kind == "remove":
        return _remove(doc, path)
    if kind == "replace":
        doc = _remove(doc, path)
        return _add(doc, path, _attribute(op, "value"))
    if kind in ("move", "copy"):
        source = _path(_attribute(op, "from"))
        doc, chunk = _render(doc, source)
        if kind == "move":
            doc = _remove(doc, source)
        return _add(doc, path, chunk)
    if kind == "test":
        doc, chunk = _render(doc, path)
        if rego_text(chunk) != rego_text(_attribute(op, "value")):
            raise BuiltinError("value from EditTree != patch value")
        return doc
    raise BuiltinError(f"unrecognized op: '{kind}'")


@register("json.patch")
def json_patch(_ctx: EvalContext, target: Any, patches: Any) -> Any:
    """``target`` after the array ``patches`` of operations; BuiltinError when one fails (see module)."""
    if not isinstance(patches, list):
        raise BuiltinError(f"operand 2 must be array but got {type_name(patches)}")
    doc = target
    for op in patches:
        doc = _apply(doc, op)
    if doc is _DELETED:
        raise Halt("json.patch: the patches remove the whole document (OPA's evaluator crashes on this)")
    return _render_value(doc)
