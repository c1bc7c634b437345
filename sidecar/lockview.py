"""Nova-visible lock state: ``locked`` and ``locked_reason`` from Statelock's table.

Pure functions over a decoded server (or server list) document. Nova shows
``locked`` from microversion 2.9 and ``locked_reason`` from 2.73, and accepts the
``locked`` list filter from 2.73 with the values of ``common.is_locked``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sidecar.errors import BadRequest
from sidecar.locks.model import Lock

_TRUE = frozenset({"1", "t", "true", "on", "y", "yes"})
_FALSE = frozenset({"0", "f", "false", "off", "n", "no"})


def split_locked_filter(query: str) -> tuple[bool | None, str]:
    """Take ``locked=`` out of a query string; returns (wanted value or None, the rest).

    Raises BadRequest for a value Nova would refuse.
    """
    if "locked" not in query:
        return None, query
    pairs = parse_qsl(query, keep_blank_values=True)
    wanted: bool | None = None
    rest = []
    for key, value in pairs:
        if key != "locked":
            rest.append((key, value))
            continue
        low = value.strip().lower()
        if low in _TRUE:
            wanted = True
        elif low in _FALSE:
            wanted = False
        else:
            raise BadRequest(f"Unrecognized value '{value}', acceptable values are: "
                             "'0', '1', 'f', 'false', 'n', 'no', 'off', 'on', 't', 'true', 'y', 'yes'")
    return wanted, urlencode(rest)


def servers_of(doc: Any) -> list[dict[str, Any]]:
    """The server objects in a show (``server``) or list (``servers``) document."""
    if not isinstance(doc, dict):
        return []
    if isinstance(doc.get("server"), dict):
        return [doc["server"]]
    servers = doc.get("servers")
    if isinstance(servers, list):
        return [s for s in servers if isinstance(s, dict)]
    return []


def reason_of(locks: Sequence[Lock]) -> str | None:
    """The reason Nova shows: the instance's own lock first, else the oldest one's."""
    if not locks:
        return None
    ordered = sorted(locks, key=lambda lk: (lk.scope != "instance", lk.created_at))
    return ordered[0].reason or None


def decorate(doc: Any, locks_by_server: Mapping[str, Sequence[Lock]],
             microversion: tuple[int, int], detail: bool) -> None:
    """Set ``locked`` (2.9+) and ``locked_reason`` (2.73+) on each server, in place.

    Only detailed views (show, detail) carry the fields, as in Nova.
    """
    if not detail or microversion < (2, 9):
        return
    for server in servers_of(doc):
        locks = locks_by_server.get(str(server.get("id")), ())
        server["locked"] = bool(locks)
        if microversion >= (2, 73):
            server["locked_reason"] = reason_of(locks)


def filter_locked(doc: Any, locks_by_server: Mapping[str, Sequence[Lock]], wanted: bool) -> None:
    """Keep only the servers whose locked state is ``wanted``, in place."""
    if isinstance(doc, dict) and isinstance(doc.get("servers"), list):
        doc["servers"] = [s for s in doc["servers"] if isinstance(s, dict)
                          and bool(locks_by_server.get(str(s.get("id")))) == wanted]
