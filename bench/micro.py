"""In-process measurements of single components, with the sidecar's own classes.

- the decision engine alone: ``EmbeddedEngine.decide_sync`` against ``OpaEngine.decide``
  (opa-python-client, what the sidecar uses) and a bare aiohttp POST with OPA's own
  ``?metrics`` timers, on the same inputs, checking that both engines agree;
- the decision path at a lock-table size: ``has_scoped_locks`` + ``effective_locks`` on a
  ``SqliteLockStore`` and then ``decide_sync``, as ``Enforcer._decide_and_forward`` does;
- the decision record: ``JsonlAuditLog.append(durable=True)`` at a low request rate,
  with the default group-commit window and with none, and a bare ``fsync``.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from sidecar.audit.log import JsonlAuditLog
from sidecar.audit.record import make_record, new_decision_id
from sidecar.config import AuditConfig, PolicyConfig
from sidecar.identity import Subject
from sidecar.locks.model import Lock, rfc3339
from sidecar.locks.sqlite import SqliteLockStore
from sidecar.policy.embedded import EmbeddedEngine
from sidecar.policy.opa import OpaEngine

SUBJECT = Subject("alice", "demo", ("member", "reader"))


def stats_us(samples_ns: Sequence[int]) -> dict[str, float]:
    """p50/p90/p99/max/mean of nanosecond samples, in microseconds."""
    if not samples_ns:
        return {}
    s = sorted(samples_ns)

    def at(p: float) -> float:
        return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))] / 1e3

    return {"n": len(s), "p50": round(at(50), 1), "p90": round(at(90), 1), "p99": round(at(99), 1),
            "max": round(s[-1] / 1e3, 1), "mean": round(statistics.fmean(s) / 1e3, 1)}


def _action(instance_id: str, name: str = "reboot") -> dict[str, Any]:
    return {"name": name, "kind": "state_change", "method": "POST",
            "path": f"/v2.1/servers/{instance_id}/action",
            "params": {"type": "SOFT"} if name == "reboot" else {}}


def _lock(kind: str, scope: str, target: str, owner: Subject, reason: str, lock_id: str = "") -> Lock:
    return Lock(id=lock_id or f"lk-{kind}-{scope}", kind=kind, scope=scope, target=target, reason=reason,
                owner=owner, created_at=datetime(2026, 11, 1, tzinfo=UTC))


def engine_inputs() -> dict[str, dict[str, Any]]:
    """The inputs every engine decides: a reboot under 0, 2 and 20 locks.

    2 locks: a billing boot lock that blocks the reboot (a 409 with its message) and a
    project delete lock that does not. 20 locks: as many as an instance under billing,
    legal and maintenance might carry, two of which block.
    """
    now = datetime.now(UTC)
    iid = "8f0c1e2d-0000-4000-8000-000000000001"
    billing = Subject("billing-svc", "service", ("billing",))
    target = {"instance_id": iid, "project_id": "demo", "host": "cmp-1"}

    def doc(locks: list[Lock]) -> dict[str, Any]:
        return {"subject": SUBJECT.as_input(), "action": _action(iid), "target": target,
                "now": rfc3339(now), "locks": [lk.as_input() for lk in locks]}

    two = [_lock("boot", "instance", iid, billing, "billing: invoice 881"),
           _lock("delete", "project", "demo", billing, "legal hold (project)")]
    twenty = two + [_lock("delete", "instance", iid, billing, f"legal hold {i}", f"lk-hold-{i}")
                    for i in range(17)] + [_lock("state", "host", "cmp-1", SUBJECT, "host maintenance")]
    return {"0 locks (allow)": doc([]), "2 locks (deny 409)": doc(two), "20 locks (deny 409)": doc(twenty)}


def regopy_before(bundle: Path, inputs: Mapping[str, Any], n: int) -> dict[str, Any] | None:
    """The old engine's latency on ``inputs`` (bench/regopy_before.py), None when regopy is not installed."""
    if importlib.util.find_spec("regopy") is None:
        return None
    done = subprocess.run([sys.executable, "-m", "bench.regopy_before", str(bundle), str(n)],
                          input=json.dumps(inputs), capture_output=True, text=True, check=True,
                          cwd=Path(__file__).resolve().parents[1])
    result: dict[str, Any] = json.loads(done.stdout)
    return result


async def engine_alone(bundle: Path, opa_url: str, n_embedded: int, n_opa: int) -> dict[str, Any]:
    """Per-decision latency of each engine on the same inputs, sequentially."""
    inputs = engine_inputs()
    embedded = EmbeddedEngine(PolicyConfig(engine="embedded", bundle=str(bundle)))
    await embedded.start()
    opa = OpaEngine(PolicyConfig(engine="opa", bundle=str(bundle), opa_url=opa_url, timeout_ms=2000))
    await opa.start()
    out: dict[str, Any] = {"inputs": {}}
    try:
        for name, doc in inputs.items():
            emb_dec = embedded.decide_sync(doc)
            opa_dec = await opa.decide(doc)
            row: dict[str, Any] = {
                "allow": emb_dec.allow, "status": emb_dec.status,
                "agree": dict(emb_dec.result) == dict(opa_dec.result)}
            for _ in range(200):
                embedded.decide_sync(doc)
            ns = []
            for _ in range(n_embedded):
                t = time.perf_counter_ns()
                embedded.decide_sync(doc)
                ns.append(time.perf_counter_ns() - t)
            row["embedded_decide_sync_us"] = stats_us(ns)
            for _ in range(100):
                await opa.decide(doc)
            ns = []
            for _ in range(n_opa):
                t = time.perf_counter_ns()
                await opa.decide(doc)
                ns.append(time.perf_counter_ns() - t)
            row["opa_client_decide_us"] = stats_us(ns)
            row["opa_raw_post_us"], row["opa_server_metrics_us"] = await _opa_raw(opa_url, doc, n_opa)
            out["inputs"][name] = row
    finally:
        await opa.close()
        await embedded.close()
    before = regopy_before(bundle, inputs, n_embedded)
    out["regopy_before"] = before
    if before is not None:
        for name, row in out["inputs"].items():
            row["regopy_before_us"] = before["inputs"][name]["us"]
            row["agree_with_regopy"] = before["inputs"][name]["result"] == embedded.evaluate(inputs[name])
    out["all_agree"] = all(r["agree"] for r in out["inputs"].values())
    return out


async def _opa_raw(opa_url: str, doc: dict[str, Any], n: int) -> tuple[dict[str, float], dict[str, Any]]:
    """A bare keep-alive POST per decision, and OPA's own timers for it (?metrics)."""
    url = f"{opa_url}/v1/data/statelock/authz/decision"
    ns: list[int] = []
    handler: list[int] = []
    evaluation: list[int] = []
    async with aiohttp.ClientSession() as session:
        for i in range(n + 100):
            t = time.perf_counter_ns()
            async with session.post(url + "?metrics=true", json={"input": doc}) as resp:
                body = await resp.json()
            if i >= 100:
                ns.append(time.perf_counter_ns() - t)
                metrics = body.get("metrics", {})
                handler.append(int(metrics.get("timer_server_handler_ns", 0)))
                evaluation.append(int(metrics.get("timer_rego_query_eval_ns", 0)))
    return stats_us(ns), {"timer_server_handler": stats_us(handler),
                          "timer_rego_query_eval": stats_us(evaluation)}


async def decision_path_at_size(db: Path, bundle: Path, ids: Sequence[str], n: int) -> dict[str, Any]:
    """Lock read + decision as the enforcer does them, on a lock table of some size."""
    store = SqliteLockStore(f"sqlite:///{db}")
    await store.open()
    engine = EmbeddedEngine(PolicyConfig(engine="embedded", bundle=str(bundle)))
    await engine.start()
    read_ns: list[int] = []
    decide_ns: list[int] = []
    total_ns: list[int] = []
    try:
        for i in range(n + 100):
            iid = ids[i % len(ids)]
            now = datetime.now(UTC)
            t0 = time.perf_counter_ns()
            scoped = await store.has_scoped_locks(now)
            locks = await store.effective_locks(iid, "demo" if scoped else None,
                                                "cmp-1" if scoped else None, now)
            t1 = time.perf_counter_ns()
            doc = {"subject": SUBJECT.as_input(), "action": _action(iid),
                   "target": {"instance_id": iid, "project_id": "demo", "host": "cmp-1"},
                   "now": rfc3339(now), "locks": [lk.as_input() for lk in locks]}
            decision = engine.decide_sync(doc)
            t2 = time.perf_counter_ns()
            if not decision.allow:
                raise RuntimeError(f"unexpected deny for {iid}: {decision.reasons}")
            if i >= 100:
                read_ns.append(t1 - t0)
                decide_ns.append(t2 - t1)
                total_ns.append(t2 - t0)
        rows = await store.count()
    finally:
        await engine.close()
        await store.close()
    return {"rows": rows, "lock_read_us": stats_us(read_ns), "decide_us": stats_us(decide_ns),
            "lock_read_plus_decide_us": stats_us(total_ns), "query_plans": query_plans(db)}


def query_plans(db: Path) -> dict[str, str]:
    """SQLite's plan for the two queries on the decision path."""
    conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    try:
        def plan(sql: str, args: Sequence[Any]) -> str:
            rows = conn.execute("EXPLAIN QUERY PLAN " + sql, args).fetchall()
            return "; ".join(str(r[-1]) for r in rows)

        now = time.time()
        return {
            "has_scoped_locks": plan("SELECT 1 FROM locks WHERE scope != 'instance' "
                                     "AND (expires_at IS NULL OR expires_at > ?) LIMIT 1", (now,)),
            "effective_locks": plan(
                "SELECT * FROM locks WHERE ((scope = ? AND target = ?) OR (scope = ? AND target = ?) "
                "OR (scope = ? AND target = ?)) AND (expires_at IS NULL OR expires_at > ?) "
                "ORDER BY created_at, id",
                ("instance", "x", "project", "demo", "host", "cmp-1", now)),
        }
    finally:
        conn.close()


def _record(engine_revision: str) -> dict[str, Any]:
    doc = engine_inputs()["0 locks (allow)"]
    return make_record(decision_id=new_decision_id(), req_id=1, input_doc=doc,
                       result={"allow": True, "reasons": [], "lock_ids": [], "status": 200},
                       revision=engine_revision, outcome="allow", enforced=True, method="POST",
                       path=doc["action"]["path"], status=0, requested_by="127.0.0.1",
                       metrics={"timer_lock_read_ns": 150000, "timer_policy_eval_ns": 90000},
                       labels={"app": "statelock", "mode": "enforce"})


async def audit_append(workdir: Path, n: int, gap_s: float) -> dict[str, Any]:
    """Durable append latency, one request at a time (a lightly loaded sidecar)."""
    out: dict[str, Any] = {"default_flush_window_ms": AuditConfig().flush_window_ms}
    for window in (2.0, 0.0):
        path = workdir / f"audit-window-{window:g}ms.jsonl"
        log = JsonlAuditLog(str(path), flush_window_ms=window, fsync=True)
        await log.open()
        ns: list[int] = []
        try:
            for i in range(n + 20):
                record = _record("statelock-policy-1")
                t = time.perf_counter_ns()
                await log.append(record, durable=True)
                if i >= 20:
                    ns.append(time.perf_counter_ns() - t)
                await asyncio.sleep(gap_s)
        finally:
            await log.close()
        out[f"flush_window_{window:g}ms"] = stats_us(ns)
    out["bare_write_fsync"] = _bare_sync(workdir / "probe-fsync", n, os.fsync)
    out["bare_write_fdatasync"] = _bare_sync(workdir / "probe-fdatasync", n, os.fdatasync)
    out["bare_write_fdatasync_preallocated"] = _bare_sync(workdir / "probe-prealloc", n, os.fdatasync,
                                                          preallocate=True)
    return out


def _bare_sync(path: Path, n: int, sync: Callable[[int], None], preallocate: bool = False) -> dict[str, float]:
    """One 1.5 KB record write + sync at a time (what a batch of one costs on this disk)."""
    line = b"x" * 1500 + b"\n"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    ns: list[int] = []
    try:
        if preallocate:
            os.posix_fallocate(fd, 0, len(line) * (n + 1))
            os.fsync(fd)
        for i in range(n):
            t = time.perf_counter_ns()
            os.pwrite(fd, line, i * len(line))
            sync(fd)
            ns.append(time.perf_counter_ns() - t)
    finally:
        os.close(fd)
    return stats_us(ns)
