"""Helpers for the audit tests: logs written by the real JsonlAuditLog, and their lines."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sidecar.audit.log import JsonlAuditLog
from sidecar.audit.record import chain_hash, make_record, new_decision_id


def decision(i: int) -> dict[str, Any]:
    """A plausible allowed decision record for instance ``vm-<i>``."""
    return make_record(
        decision_id=new_decision_id(), req_id=i,
        input_doc={"subject": {"user_id": "alice", "project_id": "demo", "roles": ["member"]},
                   "action": {"name": "resume", "kind": "state_change", "params": {}},
                   "target": {"instance_id": f"vm-{i}", "project_id": "demo", "host": None}, "locks": []},
        result={"allow": True, "status": 200, "reasons": [], "lock_ids": []}, revision="rev-1",
        outcome="allow", enforced=True, method="POST", path=f"/v2.1/servers/vm-{i}/action", status=0,
        requested_by="10.0.0.1")


async def write_log(path: Path, count: int, start: int = 1, **kwargs: Any) -> JsonlAuditLog:
    """Open a log at ``path``, append ``count`` decisions durably, close it (a checkpoint is written)."""
    kwargs = {"flush_window_ms": 0, "fsync": False, **kwargs}
    log = JsonlAuditLog(str(path), **kwargs)
    await log.open()
    for i in range(start, start + count):
        await log.append(decision(i), durable=True)
    await log.close()
    return log


def lines(path: Path) -> list[str]:
    """The lines of a file, each with its newline."""
    return path.read_text().splitlines(keepends=True)


def rehash(line: str) -> str:
    """A log line whose ``hash`` is recomputed over its (edited) content."""
    record = json.loads(line)
    record["hash"] = chain_hash(record["prev_hash"], record)
    return json.dumps(record) + "\n"


def rewrite_from(path: Path, index: int, edit: dict[str, Any]) -> None:
    """Edit record ``index`` (0-based) with ``edit`` and re-chain it and every record after it."""
    out = lines(path)
    prev = json.loads(out[index - 1])["hash"] if index else json.loads(out[0])["prev_hash"]
    for i in range(index, len(out)):
        record = json.loads(out[i])
        if i == index:
            record.update(edit)
        record["prev_hash"] = prev
        record["hash"] = chain_hash(prev, record)
        prev = record["hash"]
        out[i] = json.dumps(record) + "\n"
    path.write_text("".join(out))
