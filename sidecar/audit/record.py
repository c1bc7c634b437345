"""The records of the decision log: their shape and their hashing.

Two kinds of record go into the log, and both are built here:

* a **decision** (``make_record``) follows OPA's decision-log event (``decision_id``,
  ``path``, ``input``, ``result``, ``bundles``, ``timestamp``, ``metrics``, ``labels``,
  ``requested_by``, ``req_id``) and adds Statelock's own fields under ``statelock``;
* a **completion** (``make_completion``, ``"type": "completion"``) carries what the
  backend answered for an allowed decision, and for a lock operation what became of
  its locks.

The log adds ``seq``, ``prev_hash`` and ``hash`` to each, so that edits, deletions and
reorderings can be detected (see ``sidecar.audit.verify``). Checkpoints are not log
records: they go to a file of their own (``sidecar.audit.checkpoint``).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sidecar.audit.redact import redact
from sidecar.vocab import LockState

GENESIS = "0" * 64
COMPLETION = "completion"


def new_decision_id() -> str:
    """A fresh decision id (a UUID, as OPA uses)."""
    return str(uuid.uuid4())


def now_rfc3339_ns() -> str:
    """The current time in RFC 3339 with microseconds and a Z."""
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical(record: Mapping[str, Any]) -> bytes:
    """The bytes a record's hash covers: sorted keys, no spaces, without ``hash``."""
    body = {k: v for k, v in record.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def chain_hash(prev_hash: str, record: Mapping[str, Any]) -> str:
    """The hash of a record given the previous one's."""
    return hashlib.sha256(prev_hash.encode() + b"\n" + canonical(record)).hexdigest()


def chained_line(prev_hash: str, record: Mapping[str, Any]) -> tuple[str, bytes]:
    """The hash of a record and its log line, encoding the record once.

    The line is the canonical form with ``hash`` appended as the last key; readers
    parse it as JSON, so key order does not matter to them.
    """
    body = canonical(record)
    digest = hashlib.sha256(prev_hash.encode() + b"\n" + body).hexdigest()
    return digest, body[:-1] + b',"hash":"' + digest.encode() + b'"}'


def is_completion(record: Mapping[str, Any]) -> bool:
    """True for the non-durable record that carries a decision's upstream outcome."""
    return record.get("type") == COMPLETION


def make_record(
    *,
    decision_id: str,
    req_id: int,
    input_doc: Mapping[str, Any],
    result: Mapping[str, Any] | None,
    revision: str,
    outcome: str,
    enforced: bool,
    method: str,
    path: str,
    status: int,
    requested_by: str,
    error_code: str | None = None,
    error_message: str | None = None,
    metrics: Mapping[str, int] | None = None,
    labels: Mapping[str, str] | None = None,
    decision_path: str = "statelock/authz/decision",
    redact_paths: Sequence[str] = (),
    locks_placed: Sequence[str] = (),
    locks_lifted: Sequence[str] = (),
) -> dict[str, Any]:
    """One decision record (OPA decision-log event fields plus ``statelock``).

    ``outcome`` is ``allow``, ``deny`` or ``error``; ``enforced`` is False in dry-run,
    where ``status`` is what would have been answered. Secrets in ``input_doc`` (keys
    named like passwords and tokens, plus the ``/input/...`` JSON Pointers in
    ``redact_paths``) are masked in the record, never in the caller's document; the
    pointers masked are listed in ``masked``, as OPA's mask policy does.
    ``locks_placed`` and ``locks_lifted`` (the ids of the locks a lock, suspend-lock or
    unlock call creates or lifts) go to ``statelock.locks_placed`` / ``locks_lifted``
    when not empty: that is how ``audit query --lock`` finds the record that created a lock.
    """
    masked_input, masked = redact(dict(input_doc), redact_paths)
    record: dict[str, Any] = {
        "decision_id": decision_id,
        "timestamp": now_rfc3339_ns(),
        "path": decision_path,
        "input": masked_input,
        "bundles": {"statelock": {"revision": revision}},
        "labels": dict(labels or {}),
        "requested_by": requested_by,
        "req_id": req_id,
        "metrics": dict(metrics or {}),
        "statelock": {
            "outcome": outcome,
            "enforced": enforced,
            "http": {"method": method, "path": path, "status": status},
        },
    }
    if masked:
        record["masked"] = masked
    if result is not None:
        record["result"] = result
    if error_code is not None:
        record["error"] = {"code": error_code, "message": error_message or ""}
        record["statelock"]["error_code"] = error_code
    if locks_placed:
        record["statelock"]["locks_placed"] = [str(i) for i in locks_placed]
    if locks_lifted:
        record["statelock"]["locks_lifted"] = [str(i) for i in locks_lifted]
    return record


def make_completion(
    *,
    decision_id: str,
    status: int,
    latency_s: float,
    error_code: str | None = None,
    backend_result: str | None = None,
    lock_ids: Sequence[str] = (),
    lock_state: LockState | None = None,
    reconciled: bool = False,
    refused_by: str | None = None,
    hypervisor: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The completion record of decision ``decision_id``: what the backend answered.

    ``status`` is the backend's HTTP status (Nova's 202; for a driver, the status its
    result maps to; 0 if no answer came), ``latency_s`` how long it took, ``error_code``
    the ``SidecarError`` code when the call failed. ``backend_result`` is a driver's own
    word for what it did (``suspended``), kept as ``statelock.upstream.result``.

    A lock operation adds its locks: ``lock_ids`` and ``lock_state`` (``active`` once a
    suspend-lock's suspend is done, ``failed`` if it could not be done, ``lifted``
    after an unlock) go to ``statelock.lock``, with ``reconciled: true`` when the
    outcome was settled after a restart by reconciliation rather than by the call.
    ``refused_by: "hypervisor"`` marks a call the hypervisor's own boot block refused;
    ``hypervisor`` reports the boot block written on (or cleared from) a compute host
    behind Nova (``host``, ``uri``, ``written``, ``error``).
    Shape::

        {"type": "completion", "decision_id": ..., "timestamp": ...,
         "statelock": {"upstream": {"status": 202, "latency_ms": 12.5},
                       "error_code": null,
                       "lock": {"ids": ["lk-1"], "state": "active", "reconciled": false}}}
    """
    upstream: dict[str, Any] = {"status": status, "latency_ms": round(latency_s * 1e3, 3)}
    if backend_result is not None:
        upstream["result"] = backend_result
    statelock: dict[str, Any] = {"upstream": upstream, "error_code": error_code}
    if refused_by is not None:
        statelock["refused_by"] = refused_by
    if hypervisor is not None:
        statelock["hypervisor"] = dict(hypervisor)
    if lock_ids or lock_state is not None or reconciled:
        statelock["lock"] = {"ids": [str(i) for i in lock_ids], "state": lock_state,
                             "reconciled": reconciled}
    return {"type": COMPLETION, "decision_id": decision_id, "timestamp": now_rfc3339_ns(),
            "statelock": statelock}


def summarise(record: Mapping[str, Any]) -> str:
    """One line for logs: decision id, outcome, action, instance."""
    st = record.get("statelock", {})
    inp = record.get("input", {})
    return (f"{record.get('decision_id')} {st.get('outcome')} "
            f"{inp.get('action', {}).get('name')} {inp.get('target', {}).get('instance_id')}")
