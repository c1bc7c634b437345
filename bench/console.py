"""``python -m bench.console``: how fast the console renders a page of 50 decisions from a big log.

For each log size (10,000 and 1,000,000 records by default; ``BENCH_CONSOLE_SIZES=1000,20000``
to change them) it:

1. writes the log directly in its own format: real records with a real hash chain
   (``chained_line``), rotated every 200,000 records as ``audit.max_bytes`` would,
   spread over the last 30 days, with a few subjects, instances, actions, outcomes
   and locks (one rare subject, instance and lock, to time a selective filter);
2. builds the SQLite index the way Statelock's indexer process does at start-up
   (``ChainFollower``'s first step over the chain: read, parse, insert);
3. starts the real application on that log (``create_app``: the log is picked up, the
   index caught up, nothing new to add), logs in to the console as an auditor, and
   times ``GET /statelock/ui/decisions`` (50 rows, newest first) and a set of filtered
   views, ``REPEATS`` times each, from the client side over loopback HTTP.

Writes ``bench/results/console.md`` and ``console.json``. The work files (a few GB at
1M records) go to a temporary directory that is removed at the end
(``BENCH_CONSOLE_KEEP=1`` keeps it). Nothing in the test suite asserts these numbers.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import re
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.audit.files import rotated_name, side_file
from sidecar.audit.index_feed import ChainFollower
from sidecar.audit.index_sqlite import SqliteIndex
from sidecar.audit.record import GENESIS, chained_line
from sidecar.config import config_from_mapping

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
SIZES = tuple(int(s) for s in os.environ.get("BENCH_CONSOLE_SIZES", "10000,1000000").split(","))
REPEATS = 30
ROTATE_EVERY = 200_000
GOAL_MS = 300.0
SUBJECTS = ("alice", "bob", "carol", "billing-svc", "legal-svc")
ACTIONS = ("os-stop", "os-start", "reboot", "resume", "suspend", "delete", "lock", "unlock")
RARE_SUBJECT, RARE_INSTANCE, RARE_LOCK = "rare-auditee", "00000000-0000-4000-8000-00000000beef", "lk-rare"
AUDITOR = "audit-svc:service:auditor"


def _record(i: int, count: int, start: datetime) -> dict[str, Any]:
    """Record ``i`` of ``count``: times spread evenly from ``start`` to now."""
    rare = i % 9973 == 0
    outcome = "deny" if i % 7 == 0 else "error" if i % 53 == 0 else "allow"
    instance = RARE_INSTANCE if rare else str(uuid.UUID(int=(i % 5000) + 1))
    lock = {"id": RARE_LOCK if rare else f"lk-{i % 200}", "kind": "state", "scope": "instance",
            "reason": "legal hold 42", "owner": {"user_id": "legal-svc", "project_id": "service",
                                                 "roles": ["legal"]},
            "created_at": "2026-01-01T00:00:00Z", "expires_at": None}
    locks = [lock] if outcome == "deny" or rare else []
    when = start + timedelta(seconds=30 * 86400 * i / count)
    action = ACTIONS[i % len(ACTIONS)]
    record: dict[str, Any] = {
        "decision_id": str(uuid.UUID(int=i + 1 << 64 | i)), "timestamp": when.isoformat().replace("+00:00", "Z"),
        "path": "statelock/authz/decision",
        "input": {"subject": {"user_id": RARE_SUBJECT if rare else SUBJECTS[i % len(SUBJECTS)],
                              "project_id": f"project-{i % 40}", "roles": ["member"], "domain_id": None,
                              "is_admin": False, "system_scope": None},
                  "action": {"name": action, "kind": "state_change", "method": "POST",
                             "path": f"/v2.1/servers/{instance}/action", "params": {}},
                  "target": {"instance_id": instance, "project_id": f"project-{i % 40}", "host": f"cmp-{i % 12}"},
                  "now": when.isoformat().replace("+00:00", "Z"), "locks": locks},
        "bundles": {"statelock": {"revision": f"statelock-policy-{1 + i * 3 // count}"}},
        "labels": {"id": "bench", "version": "0.1.0", "app": "statelock", "mode": "enforce"},
        "requested_by": "10.0.0.7", "req_id": i,
        "metrics": {"timer_policy_eval_ns": 61000 + i % 999, "timer_audit_ns": 410000 + i % 9999},
        "statelock": {"outcome": outcome, "enforced": True,
                      "http": {"method": "POST", "path": f"/v2.1/servers/{instance}/action",
                               "status": 409 if outcome == "deny" else 0}},
    }
    if outcome == "error":
        record["error"] = {"code": "policy_error", "message": "policy engine did not answer"}
    else:
        record["result"] = {"allow": outcome == "allow", "status": 409 if outcome == "deny" else 200,
                            "reasons": [f"Instance {instance} is locked (state lock {lock['id']}: legal hold 42)"]
                            if outcome == "deny" else [], "lock_ids": [lock["id"]] if outcome == "deny" else [],
                            "overrides": []}
    return record


def write_log(path: Path, count: int) -> float:
    """Write ``count`` chained records to the log at ``path`` (rotated); seconds taken."""
    began = time.perf_counter()
    start = datetime.now(UTC) - timedelta(days=30)
    prev, lines, n_file = GENESIS, [], 1
    out = path.open("wb")
    for i in range(count):
        record = _record(i, count, start)
        record["seq"], record["prev_hash"] = i + 1, prev
        prev, line = chained_line(prev, record)
        lines.append(line)
        if len(lines) >= 5000:
            out.write(b"\n".join(lines) + b"\n")
            lines = []
        if (i + 1) % ROTATE_EVERY == 0 and i + 1 < count:
            out.write(b"\n".join(lines) + b"\n" if lines else b"")
            lines = []
            out.close()
            os.rename(path, rotated_name(path, n_file))
            n_file += 1
            out = path.open("wb")
    out.write(b"\n".join(lines) + b"\n" if lines else b"")
    out.close()
    return time.perf_counter() - began


async def build_index(path: Path) -> float:
    """Index the log as Statelock's start-up does; seconds taken."""
    index = SqliteIndex(side_file(path, "index.db"))
    await index.open()
    began = time.perf_counter()
    await ChainFollower(index, path, "bench", str(path.resolve())).step()
    took = time.perf_counter() - began
    await index.close()
    return took


async def _timed(client: TestClient[Any, Any], url: str, rows: int | None) -> dict[str, Any]:
    times = []
    body = ""
    for _ in range(REPEATS):
        began = time.perf_counter()
        resp = await client.get(url)
        body = await resp.text()
        times.append((time.perf_counter() - began) * 1000)
        assert resp.status == 200, (url, resp.status, body[:500])
    shown = body.count('class="decision-link"') if "/ui/" in url else len(json.loads(body)["decisions"])
    if rows is not None:
        assert shown == rows, (url, shown)
    times.sort()
    return {"url": url, "rows": shown, "median_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(len(times) * 0.95) - 1], 2), "max_ms": round(times[-1], 2)}


async def measure(work: Path, count: int) -> dict[str, Any]:
    log = work / "decisions.jsonl"
    wrote = write_log(log, count)
    indexed = await build_index(log)
    cfg = config_from_mapping({
        "backend": {"kind": "driver", "driver": {"name": "fake", "instances": []}},
        "lockstore": {"url": f"sqlite:///{work}/locks.db"}, "policy": {"bundle": str(ROOT / "policies")},
        "audit": {"path": str(log), "fsync": False, "replica": "bench"}}, env={})
    began = time.perf_counter()
    async with TestClient(TestServer(create_app(cfg))) as client:
        started = time.perf_counter() - began
        form = await (await client.get("/statelock/ui/login")).text()
        csrf = re.search(r'name="csrf" value="([^"]+)"', form)
        assert csrf is not None
        resp = await client.post("/statelock/ui/login", data={"csrf": csrf.group(1), "token": AUDITOR})
        assert resp.status == 200, await resp.text()
        first = await (await client.get("/statelock/ui/decisions")).text()
        older = re.search(r'href="/statelock/ui/decisions\?before=([0-9.]+)" id="older"', first)
        assert older is not None
        window_from = (datetime.now(UTC) - timedelta(days=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
        window_to = (datetime.now(UTC) - timedelta(days=9)).strftime("%Y-%m-%dT%H:%M:%SZ")
        views = [("newest 50", "/statelock/ui/decisions", 50),
                 ("older page (cursor)", f"/statelock/ui/decisions?before={older.group(1)}", 50),
                 ("outcome=deny", "/statelock/ui/decisions?outcome=deny", 50),
                 ("subject (common)", "/statelock/ui/decisions?subject=bob", 50),
                 ("subject (rare)", f"/statelock/ui/decisions?subject={RARE_SUBJECT}", None),
                 ("instance (rare)", f"/statelock/ui/decisions?instance={RARE_INSTANCE}", None),
                 ("lock (rare)", f"/statelock/ui/decisions?lock={RARE_LOCK}", None),
                 ("a one-day window", f"/statelock/ui/decisions?since={window_from}&until={window_to}", 50),
                 ("action + outcome + revision", "/statelock/ui/decisions?action=reboot&outcome=allow"
                  "&revision=statelock-policy-3", 50),
                 ("API limit=50", "/statelock/v1/decisions?limit=50", 50)]
        results = []
        for name, url, rows in views:
            if url.startswith("/statelock/v1/"):
                client.session.headers["X-Auth-Token"] = AUDITOR
            results.append({"view": name, **await _timed(client, url, rows)})
    size = sum(p.stat().st_size for p in work.iterdir() if p.name.startswith("decisions.jsonl."))
    size += log.stat().st_size
    return {"records": count, "log_bytes": size, "index_bytes": side_file(log, "index.db").stat().st_size,
            "write_log_s": round(wrote, 1), "build_index_s": round(indexed, 1), "app_start_s": round(started, 2),
            "views": results}


def markdown(runs: list[dict[str, Any]]) -> str:
    lines = ["# Console: a page of 50 decisions from a big log", "",
             f"Measured {datetime.now(UTC).strftime('%Y-%m-%d %H:%M UTC')} on {platform.node()} "
             f"({os.cpu_count()} cores, Python {platform.python_version()}) by `python -m bench.console`: "
             f"client-side wall time over loopback HTTP, {REPEATS} requests per view, logged in as an auditor. "
             f"Goal: a page of 50 in under {GOAL_MS:.0f} ms.", ""]
    for run in runs:
        lines += [f"## {run['records']:,} records", "",
                  f"Log {run['log_bytes'] / 2**20:,.0f} MiB, SQLite index {run['index_bytes'] / 2**20:,.0f} MiB; "
                  f"writing the log took {run['write_log_s']} s, indexing it from the chain (what start-up does "
                  f"after the index was lost) {run['build_index_s']} s, starting the app on it "
                  f"{run['app_start_s']} s.", "",
                  "| view | rows | median ms | p95 ms | max ms | goal |", "|---|---:|---:|---:|---:|---|"]
        for v in run["views"]:
            verdict = "ok" if v["p95_ms"] < GOAL_MS else "MISSED"
            lines.append(f"| {v['view']} | {v['rows']} | {v['median_ms']} | {v['p95_ms']} | {v['max_ms']} | "
                         f"{verdict} |")
        lines.append("")
    return "\n".join(lines)


async def main() -> int:
    keep = os.environ.get("BENCH_CONSOLE_KEEP") == "1"
    runs = []
    for count in SIZES:
        work = Path(tempfile.mkdtemp(prefix=f"statelock-console-{count}-", dir="/var/tmp"))
        try:
            print(f"console bench: {count:,} records in {work}", file=sys.stderr)
            runs.append(await measure(work, count))
            print(json.dumps(runs[-1], indent=1), file=sys.stderr)
        finally:
            if not keep:
                shutil.rmtree(work, ignore_errors=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "console.json").write_text(json.dumps({"runs": runs, "goal_ms": GOAL_MS}, indent=1) + "\n")
    (RESULTS / "console.md").write_text(markdown(runs))
    print(markdown(runs))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
