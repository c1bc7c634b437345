"""Rego values in Python, read from and written to the text OPA's Wasm library speaks.

``opa_value_dump`` writes a value as JSON extended with set literals (``{1, 2}``,
``set()``) and object keys of any type (``{1: "a"}``); ``opa_value_parse`` reads
the same text back. Host builtins get their arguments through ``parse`` and hand
their result back through ``dump``, so a set stays a set and a number stays exact:

- null, booleans, strings: ``None``, ``bool``, ``str``;
- numbers: ``int`` when the text is an integer literal (any size), else ``Number``
  (a ``float`` that keeps the text it was written as, as OPA keeps ``1.50`` and
  ``1e3``; ``Number.text``, ``Number.exact()``), or ``BigNumber`` when the text
  is beyond a float's range;
- arrays: ``list``; sets: ``RegoSet``; objects: ``dict`` (a composite key is a ``Key``).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from typing import Any

from sidecar.policy.wasm import jsontext

__all__ = ["BigNumber", "Key", "NegativeZero", "Number", "RegoSet", "ValueSyntaxError", "dump", "parse", "result_json",
           "sort_key", "to_json", "type_name"]


class ValueSyntaxError(ValueError):
    """The text is not a Rego value."""


class BigNumber(str):
    """A number OPA keeps as text because a float can't hold it (``1e400``)."""

    __slots__ = ()


class Number(float):
    """A non-integer number literal: its float value, and the text OPA keeps for it."""

    __slots__ = ("text",)
    text: str

    def __new__(cls, text: str) -> Number:
        number = super().__new__(cls, text)
        number.text = text
        return number

    def exact(self) -> Decimal:
        """The number exactly as written (``1234567890123456789.0`` keeps every digit)."""
        return Decimal(self.text)

    def __repr__(self) -> str:
        return f"Number({self.text})"


class NegativeZero(int):
    """The integer literal ``-0``: zero, whose text OPA keeps (``sprintf("%v", [[-0]])`` is ``[-0]``)."""

    __slots__ = ()

    def __new__(cls) -> NegativeZero:
        return super().__new__(cls, 0)

    def __repr__(self) -> str:
        return "NegativeZero()"


class Key:
    """A composite object key (an array, set or object as a key): hashable, compared by its text."""

    __slots__ = ("_text", "value")

    def __init__(self, value: Any) -> None:
        self.value = value
        self._text = dump(value)

    def __hash__(self) -> int:
        return hash(self._text)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Key) and other._text == self._text

    def __repr__(self) -> str:
        return f"Key({self._text})"


class RegoSet:
    """A Rego set: its members unique and in Rego's order (``sort_key``)."""

    __slots__ = ("items",)

    def __init__(self, items: Iterable[Any] = ()) -> None:
        unique: dict[Any, Any] = {}
        for item in items:
            unique.setdefault(sort_key(item), item)
        self.items: list[Any] = [unique[k] for k in sorted(unique)]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def __contains__(self, item: object) -> bool:
        key = sort_key(item)
        return any(sort_key(x) == key for x in self.items)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RegoSet) and [sort_key(x) for x in self.items] == [sort_key(x) for x in other.items]

    def __hash__(self) -> int:
        return hash(sort_key(self))

    def __repr__(self) -> str:
        return f"RegoSet({self.items!r})"


# NOTE: OPA's order (ast.Compare) puts objects before sets; the rank numbers only need to keep it.
_TYPE_ORDER = {type(None): 0, bool: 1, int: 2, NegativeZero: 2, float: 2, Number: 2, BigNumber: 2, str: 3,
               list: 4, dict: 5, RegoSet: 6}


def type_name(value: Any) -> str:
    """The Rego type name OPA's errors use (``string``, ``number``, ``set``...)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, BigNumber | int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, RegoSet):
        return "set"
    if isinstance(value, dict):
        return "object"
    if isinstance(value, Key):
        return type_name(value.value)
    raise TypeError(f"not a Rego value: {type(value).__name__}")


def sort_key(value: Any) -> tuple[Any, ...]:
    """Rego's total order (null < boolean < number < string < array < set < object), as a hashable key.

    Equal keys mean equal Rego values: ``1`` and ``1.0`` are one number.
    """
    if isinstance(value, Key):
        value = value.value
    if isinstance(value, BigNumber):
        return (2, Decimal(value))
    if isinstance(value, Number):
        return (2, value.exact())
    rank = _TYPE_ORDER.get(type(value))
    if rank is None:
        raise TypeError(f"not a Rego value: {type(value).__name__}")
    if rank in (4, 6):
        return (rank, tuple(sort_key(v) for v in value))
    if rank == 5:
        return (rank, tuple(sorted((sort_key(k), sort_key(v)) for k, v in value.items())))
    if rank == 1:
        return (rank, bool(value))
    return (rank, value)


# --- writing -------------------------------------------------------------------------


def _number_text(value: int | float) -> str:
    if isinstance(value, int):
        return str(value)
    if not math.isfinite(value):
        raise ValueError("a Rego number can't be NaN or infinite")
    # NOTE: beyond 2**53 an integral float's exact value (57758089114301208) is not the
    # number its shortest text names (5.775808911430121e+16): write the text.
    if value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(value)


def dump(value: Any) -> str:
    """The text ``opa_value_parse`` reads back as ``value``."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, BigNumber):
        return str(value)
    if isinstance(value, Number):
        return value.text
    if isinstance(value, NegativeZero):
        return "-0"
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, int | float):
        return _number_text(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(dump(v) for v in value) + "]"
    if isinstance(value, RegoSet):
        return "{" + ",".join(dump(v) for v in value.items) + "}" if value.items else "set()"
    if isinstance(value, dict):
        return "{" + ",".join(f"{dump(k)}:{dump(v)}" for k, v in value.items()) + "}"
    if isinstance(value, Key):
        return dump(value.value)
    raise TypeError(f"not a Rego value: {type(value).__name__}")


# --- reading -------------------------------------------------------------------------

# NOTE: OPA keeps a number literal's text as written, and Rego writes ".5" and "1." too.
_NUMBER = re.compile(r"-?(?:(?:0|[1-9][0-9]*)(\.[0-9]*)?|(\.[0-9]+))([eE][+-]?[0-9]+)?")
_JSON_NUMBER = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")
_WS = re.compile(r"[ \t\n\r]*")
_decoder = json.JSONDecoder()


def _number(text: str) -> int | Number | BigNumber:
    match = _NUMBER.fullmatch(text)
    if match is None:
        raise ValueSyntaxError(f"not a number: {text!r}")
    if match.group(1) is None and match.group(2) is None and match.group(3) is None:
        return NegativeZero() if text == "-0" else int(text)
    if not math.isfinite(float(text)):
        return BigNumber(text)
    return Number(text)


class _Reader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def skip(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()  # type: ignore[union-attr]

    def peek(self) -> str:
        self.skip()
        return self.text[self.pos:self.pos + 1]

    def expect(self, char: str) -> None:
        if self.peek() != char:
            raise ValueSyntaxError(f"expected {char!r} at {self.pos} in {self.text[:80]!r}")
        self.pos += 1

    def value(self) -> Any:
        char = self.peek()
        if char == "[":
            return self._array()
        if char == "{":
            return self._brace()
        if char == '"':
            value, self.pos = _decoder.raw_decode(self.text, self.pos)
            return value
        for word, value in (("null", None), ("true", True), ("false", False), ("set()", RegoSet())):
            if self.text.startswith(word, self.pos):
                self.pos += len(word)
                return value
        match = _NUMBER.match(self.text, self.pos)
        if match is None or match.end() == self.pos:
            raise ValueSyntaxError(f"unexpected {self.text[self.pos:self.pos + 10]!r} at {self.pos}")
        self.pos = match.end()
        return _number(match.group(0))

    def _array(self) -> list[Any]:
        self.expect("[")
        out: list[Any] = []
        if self.peek() == "]":
            self.pos += 1
            return out
        while True:
            out.append(self.value())
            if self.peek() == ",":
                self.pos += 1
                continue
            self.expect("]")
            return out

    def _brace(self) -> dict[Any, Any] | RegoSet:
        self.expect("{")
        if self.peek() == "}":
            self.pos += 1
            return {}
        first = self.value()
        if self.peek() == ":":
            return self._object(first)
        members = [first]
        while self.peek() == ",":
            self.pos += 1
            members.append(self.value())
        self.expect("}")
        return RegoSet(members)

    def _object(self, key: Any) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        while True:
            self.expect(":")
            out[_hashable(key)] = self.value()
            if self.peek() == ",":
                self.pos += 1
                key = self.value()
                continue
            self.expect("}")
            return out


def _hashable(key: Any) -> Any:
    # NOTE: a boolean key is wrapped too: Python's True == 1 would merge {1: "a", true: "b"}.
    return Key(key) if isinstance(key, list | dict | RegoSet | bool) else key


def parse(text: str) -> Any:
    """The value ``text`` (as ``opa_value_dump`` writes it) stands for; ValueSyntaxError if none."""
    reader = _Reader(text)
    value = reader.value()
    reader.skip()
    if reader.pos != len(text):
        raise ValueSyntaxError(f"trailing text at {reader.pos} in {text[:80]!r}")
    return value


def _float(text: str) -> float:
    return float(text)  # NOTE: as json.loads reads OPA's output (1e400 becomes inf there too)


def to_json(value: Any, number: Callable[[str], Any] = _float) -> Any:
    """``value`` as OPA's JSON output shows it: a set as a sorted array, a non-string key as its text.

    A non-integer number becomes ``number(its text)``.
    """
    if isinstance(value, RegoSet):
        return [to_json(v, number) for v in value.items]
    if isinstance(value, list):
        return [to_json(v, number) for v in value]
    if isinstance(value, dict):
        return {k if isinstance(k, str) else dump(k): to_json(v, number) for k, v in value.items()}
    if isinstance(value, BigNumber | Number):
        text = dump(value)
        if not _JSON_NUMBER.fullmatch(text):  # NOTE: ".5" or "1.": OPA can't write it as JSON either
            raise ValueSyntaxError(f"the number {text} has no JSON form")
        return number(text)
    return value


def result_json(text: bytes, loads: Callable[[bytes], Any] = json.loads, number: Callable[[str], Any] = _float) -> Any:
    """A result set in value text (``opa_eval`` format 1) as JSON values, sets sorted as OPA sorts them.

    The result set is itself a set (``{{"result": ...}}``, ``set()`` when undefined):
    ``loads`` reads its members as a JSON array when they are plain JSON (no set, no
    non-string key), the common case; otherwise the text is parsed as Rego values,
    non-integers through ``number``. A string that is not UTF-8 reads as Go's encoder
    writes it (``jsontext.utf8_text``). Raises ValueSyntaxError for text that is not
    a value, such as a number JSON can't hold (``to_number(".5")`` makes one): OPA's
    server fails on it too.
    """
    if text == b"set()":
        return []
    try:
        decoded = text.decode()
    except UnicodeDecodeError:
        decoded = jsontext.utf8_text(text)
        text = decoded.encode()
    if text.startswith(b"{") and text.endswith(b"}"):
        try:
            return loads(b"[" + text[1:-1] + b"]")
        except ValueError:
            pass
    return to_json(parse(decoded), number)
