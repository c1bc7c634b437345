"""Two Statelock revisions side by side, in one run: ``python -m bench.compare OLD NEW``.

Each revision is checked out into a scratch git worktree and served (this venv's
Python, with the checkout first on ``PYTHONPATH``, so an editable install of another
tree is not what runs) with the same config in front of the same nginx upstream; the constant-rate generator drives
state changes (a soft reboot) at each rate, and closed loop on one connection
(``wrk -c1``: what a single client sees, and what queues the least on a busy
machine), then reads (a server show) closed loop on one connection, and state
changes at saturation (``wrk -c16``), alternating the revisions round by round so
that drift of the machine hits both. Prints a table of p50/p99 (and req/s at
saturation) and the ratios NEW/OLD, and writes bench/.work/compare.json. Nothing
is asserted, but a run in which wrk saw failed requests (connect, read, write,
timeout, or a status >= 400) is named, and the exit status is 1: a revision that
fails answers fast, and its latencies would mean nothing. ``COMPARE_POINTS`` (e.g.
``c16,c1``) measures only those points, ``COMPARE_WORKERS=N`` serves both with
``server.workers: N``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import yaml

from bench import upstream
from bench.load import Workload, fixed_rate, saturate
from bench.procs import Processes, free_port, http_ok

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work" / "compare"
RATES = (100.0, 250.0, 500.0)
CLOSED = "c1"
READ_CLOSED = "read-c1"
SATURATED = "c16"
ROUNDS = 3


def _worktree(rev: str) -> Path:
    # NOTE: by commit, so that a symbolic rev (HEAD, a branch) never reuses an older checkout.
    commit = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", rev], check=True,
                            capture_output=True, text=True).stdout.strip()
    path = WORK / f"rev-{commit}"
    if not path.exists():
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), rev],
                       check=True, capture_output=True)
    return path


def _config(dirpath: Path, upstream_url: str, workers: int) -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    cfg: dict[str, Any] = {
        "backend": {"kind": "upstream", "upstream_url": upstream_url,
                    "service_auth": {"token": "statelock:service:admin"}},
        "lockstore": {"url": f"sqlite:///{dirpath}/locks.db"},
        "policy": {"bundle": "policies/"},
        "audit": {"path": str(dirpath / "decisions.jsonl")},
    }
    if workers != 1:
        cfg["server"] = {"workers": workers}
    path = dirpath / "statelock.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m bench.compare OLD_REV NEW_REV", file=sys.stderr)
        return 2
    revs = argv
    WORK.mkdir(parents=True, exist_ok=True)
    procs = Processes(WORK)
    ids = [str(uuid.uuid5(uuid.NAMESPACE_URL, f"compare-{i}")) for i in range(64)]
    work = Workload("state_change", ids)
    reads = Workload("read", ids)
    points: tuple[float | str, ...] = (*RATES, CLOSED, READ_CLOSED, SATURATED)
    wanted = os.environ.get("COMPARE_POINTS")
    if wanted:
        points = tuple(p for p in points if str(p) in wanted.split(","))
    workers = int(os.environ.get("COMPARE_WORKERS", "1"))
    errors: list[str] = []
    results: dict[str, dict[float | str, list[dict[str, float]]]] = {r: {x: [] for x in points} for r in revs}
    try:
        up_port = free_port()
        conf = upstream.write_conf(WORK / "upstream", upstream.upstream_conf(WORK / "upstream", up_port))
        procs.start("upstream", upstream.nginx_argv(WORK / "upstream", conf),
                    ready=lambda: http_ok(f"http://127.0.0.1:{up_port}/"))
        urls = {}
        for rev in revs:
            tree = _worktree(rev)
            port = free_port()
            cfg = _config(WORK / f"run-{rev}", f"http://127.0.0.1:{up_port}", workers)
            procs.start(f"statelock-{rev}", [sys.executable, "-m", "sidecar", "serve", "--config", str(cfg)],
                        cwd=tree, env={"STATELOCK_LISTEN": f"127.0.0.1:{port}",
                                       "PATH": f"{ROOT / '.tools' / 'bin'}:/usr/bin:/bin", "PYTHONPATH": str(tree)},
                        ready=lambda p=port: http_ok(f"http://127.0.0.1:{p}/statelock/v1/livez"))
            urls[rev] = f"http://127.0.0.1:{port}"
        for _ in range(ROUNDS):
            for rate in (r for r in RATES if r in points):
                for rev in revs:
                    results[rev][rate].append(fixed_rate(urls[rev], work, rate, 5.0, 1.0)["corrected_ms"])
            for point, load, conns in ((CLOSED, work, 1), (READ_CLOSED, reads, 1), (SATURATED, work, 16)):
                if point not in points:
                    continue
                for rev in revs:
                    run = saturate(urls[rev], load, 5.0, conns=conns)
                    failed = sum(run["errors"].values())
                    if failed:
                        # NOTE: a failing revision answers fast: its latencies would mean nothing.
                        errors.append(f"{rev} {point}: {failed} of {run['requests']} requests failed {run['errors']}")
                    results[rev][point].append({**run["latency_ms"], "rps": run["rps"]})
    finally:
        procs.close()
    summary: dict[str, Any] = {"revs": revs, "rates": {}}
    print(f"{'rate':>7}  {'rev':>10}  {'p50 ms':>8}  {'p99 ms':>8}")
    for rate in points:
        row: dict[str, Any] = {}
        for rev in revs:
            p50 = statistics.median(r["p50"] for r in results[rev][rate])
            p99 = statistics.median(r["p99"] for r in results[rev][rate])
            row[rev] = {"p50": p50, "p99": p99}
            rps = ""
            if rate == SATURATED:
                row[rev]["rps"] = statistics.median(r["rps"] for r in results[rev][rate] if "rps" in r)
                rps = f"  {row[rev]['rps']:>8.0f} req/s"
            print(f"{rate!s:>7}  {rev:>10}  {p50:>8.3f}  {p99:>8.3f}{rps}")
        old, new = row[revs[0]], row[revs[1]]
        row["ratio_new_over_old"] = {k: new[k] / old[k] for k in new}
        ratios = row["ratio_new_over_old"]
        rps = f"  {ratios['rps']:>8.2f}" if "rps" in ratios else ""
        print(f"{'':>7}  {'new/old':>10}  {ratios['p50']:>8.2f}  {ratios['p99']:>8.2f}{rps}")
        summary["rates"][str(rate)] = row
    print(f"({CLOSED}: state changes closed loop, one connection, wrk -t1 -c1 -d5s; {READ_CLOSED}: reads, the "
          f"same; {SATURATED}: state changes at saturation, wrk -t1 -c16 -d5s)")
    summary["errors"] = errors
    for line in errors:
        print(f"FAILED REQUESTS: {line}")
    (WORK / "compare.json").write_text(json.dumps(summary, indent=2))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
