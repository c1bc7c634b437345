"""Redaction: mask secrets in a policy input before a record of it is written.

Two rules, applied to a copy (the caller's document is never changed):

* a key named like a secret, at any depth and in any letter case (``adminPass``,
  ``password``, ``new_password``, ``X-Auth-Token``, ``token``, ``secret``,
  ``credential(s)``, ``auth``, ``Authorization``, ``api_key``, ``private_key``) has its
  whole value replaced by ``MASK``;
* each extra path, a JSON Pointer (RFC 6901) into the decision event written as OPA's
  mask policy writes it (``/input/action/params/metadata/ssh_key``), is masked where it
  exists; a ``*`` segment matches every key of an object or element of an array. A
  pointer that names nothing is ignored, as OPA ignores undefined pointers.

The result says what was masked with the event-level pointers that OPA puts in a
decision-log event's ``masked`` field.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

MASK = "**REDACTED**"
ROOT = "input"

_SECRET_WORDS = ("password", "passwd", "adminpass", "token", "secret", "credential", "apikey",
                 "privatekey")
_SECRET_NAMES = frozenset({"auth", "authorization", "pass", "passphrase"})
_NORMALISE = re.compile(r"[-_.\s]")


@lru_cache(maxsize=4096)
def is_secret_key(key: str) -> bool:
    """True if a key's name says its value is a secret (see the module docstring)."""
    name = _NORMALISE.sub("", key.lower())
    return name in _SECRET_NAMES or any(word in name for word in _SECRET_WORDS)


def escape(segment: str) -> str:
    """One JSON Pointer reference token, escaped (``~`` -> ``~0``, ``/`` -> ``~1``)."""
    return segment.replace("~", "~0").replace("/", "~1")


def parse_pointer(pointer: str) -> tuple[str, ...]:
    """The segments below ``/input`` of an extra redaction path.

    Raises ValueError, with the fix in the message, when the pointer is not a JSON
    Pointer into the event's ``input`` (a config check can call this at start-up).
    """
    if not pointer.startswith("/"):
        raise ValueError(f"redaction path {pointer!r}: a JSON Pointer starts with '/', "
                         f"e.g. '/input/action/params/adminPass'")
    if re.search(r"~(?![01])", pointer):
        raise ValueError(f"redaction path {pointer!r}: '~' must be escaped as '~0' ('/' as '~1')")
    parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
    if parts[0] != ROOT or len(parts) < 2 or parts[1] == "":
        raise ValueError(f"redaction path {pointer!r}: must point inside the policy input, "
                         f"e.g. '/input/action/params/adminPass'")
    return tuple(parts[1:])


def check_paths(extra_paths: Sequence[str]) -> None:
    """Raise ValueError naming the first extra redaction path that is not usable."""
    for pointer in extra_paths:
        parse_pointer(pointer)


def redact(record_input: dict[str, Any], extra_paths: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """A copy of ``record_input`` with its secrets masked, and the pointers masked.

    The pointers are event-level (``/input/...``), sorted, each once. Raises
    ValueError for a malformed extra path (see ``parse_pointer``).
    """
    masked: set[str] = set()
    copy = _mask_names(record_input, [], masked)
    assert isinstance(copy, dict)
    for pointer in extra_paths:
        _mask_path(copy, parse_pointer(pointer), "/" + ROOT, masked)
    return copy, sorted(masked)


def _mask_names(value: Any, trail: list[Any], masked: set[str]) -> Any:
    """A copy of ``value`` with secret-named keys masked; ``trail`` is the path to it."""
    if isinstance(value, dict):
        out: dict[Any, Any] = {}
        for key, item in value.items():
            if isinstance(key, str) and is_secret_key(key):
                out[key] = MASK
                masked.add(_pointer([*trail, key]))
            elif isinstance(item, dict | list | tuple):
                trail.append(key)
                out[key] = _mask_names(item, trail, masked)
                trail.pop()
            else:
                out[key] = item
        return out
    items: list[Any] = []
    for i, item in enumerate(value):
        if isinstance(item, dict | list | tuple):
            trail.append(i)
            items.append(_mask_names(item, trail, masked))
            trail.pop()
        else:
            items.append(item)
    return items


def _pointer(trail: list[Any]) -> str:
    return "/" + "/".join(escape(str(part)) for part in [ROOT, *trail])


def _mask_path(node: Any, segments: tuple[str, ...], where: str, masked: set[str]) -> None:
    head, rest = segments[0], segments[1:]
    if isinstance(node, dict):
        keys = list(node) if head == "*" else [head] if head in node else []
        for key in keys:
            _mask_at(node, key, rest, f"{where}/{escape(str(key))}", masked)
    elif isinstance(node, list):
        if head == "*":
            indices = list(range(len(node)))
        elif head.isdigit() and (head == "0" or not head.startswith("0")) and int(head) < len(node):
            indices = [int(head)]
        else:
            indices = []
        for i in indices:
            _mask_at(node, i, rest, f"{where}/{i}", masked)


def _mask_at(node: Any, key: Any, rest: tuple[str, ...], here: str, masked: set[str]) -> None:
    if rest:
        _mask_path(node[key], rest, here, masked)
    else:
        node[key] = MASK
        masked.add(here)
