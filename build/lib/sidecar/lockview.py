"""Nova-visible lock state: ``locked`` and ``locked_reason`` from Statelock's table.

Pure functions over a decoded server (or server list) document, and ``LockView``,
which reads the table for them. Nova shows ``locked`` from microversion 2.9 and
``locked_reason`` from 2.73, and accepts the ``locked`` list filter from 2.73 with
the values of ``common.is_locked``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl, urlencode

from sidecar.backends.base import InstanceOps
from sidecar.classify import Action
from sidecar.errors import BadRequest
from sidecar.locks.model import Lock
from sidecar.locks.store import LockStore

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


class LockView:
    """Rewrites Nova's server show and list answers with the lock state of Statelock's table."""

    def __init__(self, store: LockStore, ops: InstanceOps) -> None:
        self.store = store
        self.ops = ops

    async def locks_by_server(self, servers: Sequence[Mapping[str, Any]]) -> dict[str, list[Lock]]:
        """The locks in force on each server (its project's and host's too, when any exist)."""
        now = datetime.now(UTC)
        ids = [str(server.get("id", "")) for server in servers]
        if not await self.store.has_scoped_locks(now):
            return await self.store.locks_on_instances(ids, now)
        out: dict[str, list[Lock]] = {}
        for sid, server in zip(ids, servers, strict=True):
            project = server.get("tenant_id")
            host = server.get("OS-EXT-SRV-ATTR:host")
            if not isinstance(project, str):
                info = await self.ops.resolve(sid)
                project, host = info.project_id, info.host
            out[sid] = await self.store.effective_locks(
                sid, project, host if isinstance(host, str) else None, now)
        return out

    async def rewrite(self, body: bytes, action: Action, detail: bool, wanted: bool | None) -> bytes | None:
        """``body`` with ``locked``/``locked_reason`` set (and the ``locked`` filter applied).

        None when the body is not JSON (it is then passed on as it came); the store's
        and the backend's errors are raised.
        """
        try:
            doc = json.loads(body)
        except ValueError:
            return None
        by_server = await self.locks_by_server(servers_of(doc))
        decorate(doc, by_server, action.microversion, detail)
        if wanted is not None:
            filter_locked(doc, by_server, wanted)
        return json.dumps(doc).encode()
