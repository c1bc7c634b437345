"""``server.workers`` 1 vs 2 at saturation, side by side in one run: ``python -m bench.workers``.

The same nginx upstream as ``bench.run``; two Statelock configs that differ only in
``server.workers`` (each on its own copy of the bench's lock table); wrk drives state
changes (a soft reboot, ``lua/action.lua``) at saturation against the upstream alone,
1 worker and 2 workers, round after round in that order, so that drift of the machine
(other users share it) hits all three. Prints the median requests/s of each, the
ratios to the upstream's own saturation and 2 workers / 1 worker, and how many cores
the whole machine was busy meanwhile, and Statelock's CPU time per request (which a
busy machine does not inflate the way it squeezes requests/s: on a machine shared with
other work, N processes get about N shares of it); writes bench/.work/workers.json. Knobs:
BENCH_WORKERS_ROUNDS (3), BENCH_WORKERS_SECONDS (5), BENCH_WORKERS_CONNS (16). Then the
same rounds at a fixed BENCH_WORKERS_RATE (100 req/s, 0: skip) with ``bench/loadgen``:
whether the p50/p99 of a state change at a modest rate depends on the number of workers.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from bench import load, locktable, upstream
from bench.procs import Processes, children, cpu_seconds, free_port, http_ok, machine_busy_s

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "bench" / ".work" / "workers"


def _config(dirpath: Path, upstream_url: str, port: int, workers: int) -> Path:
    dirpath.mkdir(parents=True, exist_ok=True)
    cfg = {
        "listen": f"127.0.0.1:{port}",
        "server": {"workers": workers},
        "backend": {"kind": "upstream", "upstream_url": upstream_url,
                    "service_auth": {"token": "statelock:service:admin"}},
        "lockstore": {"url": f"sqlite:///{dirpath}/locks.db"},
        "policy": {"bundle": str(ROOT / "policies")},
        "audit": {"path": str(dirpath / "decisions.jsonl")},
    }
    path = dirpath / "statelock.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _tree_cpu(pid: int) -> float:
    return cpu_seconds(pid) + sum(cpu_seconds(child) for child in children(pid))


def main() -> int:
    rounds = int(os.environ.get("BENCH_WORKERS_ROUNDS", "3"))
    seconds = float(os.environ.get("BENCH_WORKERS_SECONDS", "5"))
    conns = int(os.environ.get("BENCH_WORKERS_CONNS", "16"))
    if WORK.exists():
        shutil.rmtree(WORK)
    (WORK / "logs").mkdir(parents=True)
    procs = Processes(WORK / "logs")
    work = load.Workload("state_change", locktable.UNLOCKED)
    base_db = WORK / "locks-base.db"
    locktable.build_lock_table(base_db, 10)
    results: dict[str, list[dict[str, Any]]] = {"direct": [], "workers_1": [], "workers_2": []}
    latency: dict[str, list[dict[str, Any]]] = {}
    try:
        up = free_port()
        conf = upstream.write_conf(WORK / "nginx-upstream", upstream.upstream_conf(WORK / "nginx-upstream", up))
        procs.start("nginx-upstream", upstream.nginx_argv(WORK / "nginx-upstream", conf),
                    ready=lambda: http_ok(f"http://127.0.0.1:{up}/"))
        urls = {"direct": f"http://127.0.0.1:{up}"}
        pids: dict[str, int] = {}
        env = {k: v for k, v in os.environ.items() if k != "STATELOCK_LISTEN"}
        for name, workers in (("workers_1", 1), ("workers_2", 2)):
            port = free_port()
            d = WORK / name
            d.mkdir(parents=True)
            shutil.copy(base_db, d / "locks.db")
            cfg = _config(d, urls["direct"], port, workers)
            ready_line = f"all {workers} workers listening" if workers > 1 else "listening on"
            log = WORK / "logs" / f"{name}.log"
            proc = procs.start(name, [sys.executable, "-m", "sidecar", "serve", "--config", str(cfg)], cwd=ROOT,
                               env=env, timeout_s=90,
                               ready=lambda p=port, line=ready_line, lg=log: http_ok(  # type: ignore[misc]
                                   f"http://127.0.0.1:{p}/statelock/v1/livez") and line in lg.read_text())
            urls[name], pids[name] = f"http://127.0.0.1:{port}", proc.pid
        for name in ("workers_1", "workers_2"):  # NOTE: fresh interpreters are slow at first: warm both.
            load.saturate(urls[name], work, 2.0, conns=conns)
        for n in range(rounds):
            for name in ("direct", "workers_1", "workers_2"):
                busy0, cpu0, t0 = machine_busy_s(), _tree_cpu(pids[name]) if name in pids else 0.0, time.monotonic()
                res = load.saturate(urls[name], work, seconds, conns=conns)
                wall = time.monotonic() - t0
                ours = (_tree_cpu(pids[name]) - cpu0) if name in pids else 0.0
                res["statelock_cores"] = round(ours / wall, 2)
                res["statelock_cpu_ms_per_request"] = round(ours / max(res["requests"], 1) * 1e3, 3)
                res["machine_cores_busy"] = round((machine_busy_s() - busy0) / wall, 2)
                results[name].append(res)
                print(f"round {n + 1} {name:10} {res['rps']:9.1f} req/s  p50 {res['latency_ms']['p50']:.2f} "
                      f"p99 {res['latency_ms']['p99']:.2f} ms  errors {sum(res['errors'].values())}  statelock "
                      f"{res['statelock_cores']} cores ({res['statelock_cpu_ms_per_request']} ms CPU per request), "
                      f"machine {res['machine_cores_busy']} cores busy", flush=True)
        rate = float(os.environ.get("BENCH_WORKERS_RATE", "100"))
        for n in range(rounds if rate > 0 else 0):
            for name in ("direct", "workers_1", "workers_2"):
                fixed = load.fixed_rate(urls[name], work, rate, seconds, 1.0)
                latency.setdefault(name, []).append(fixed)
                c = fixed["corrected_ms"]
                print(f"round {n + 1} {name:10} at {rate:g}/s  p50 {c['p50']:.3f} p99 {c['p99']:.3f} ms  "
                      f"{fixed['statuses']}", flush=True)
    finally:
        procs.close()
    lat = {name: {q: statistics.median(r["corrected_ms"][q] for r in runs) for q in ("p50", "p99")}
           for name, runs in latency.items()}
    med = {name: statistics.median(r["rps"] for r in runs) for name, runs in results.items()}
    cpu = {name: statistics.median(r["statelock_cpu_ms_per_request"] for r in runs)
           for name, runs in results.items() if name != "direct"}
    summary = {"median_rps": med, "median_cpu_ms_per_request": cpu, "conns": conns, "seconds": seconds,
               "rounds": rounds,
               "workers_1_over_direct": round(med["workers_1"] / med["direct"], 3),
               "workers_2_over_direct": round(med["workers_2"] / med["direct"], 3),
               "workers_2_over_workers_1": round(med["workers_2"] / med["workers_1"], 3),
               "cores": os.cpu_count(), "runs": results, "fixed_rate_ms": lat, "fixed_rate_runs": latency}
    (WORK / "workers.json").write_text(json.dumps(summary, indent=2))
    print(f"\nstate changes at saturation (wrk -c{conns}, {rounds} rounds of {seconds:g} s, medians): upstream "
          f"{med['direct']:.0f} req/s; workers 1 {med['workers_1']:.0f} ({summary['workers_1_over_direct']}x "
          f"the upstream); workers 2 {med['workers_2']:.0f} ({summary['workers_2_over_direct']}x); 2 vs 1: "
          f"{summary['workers_2_over_workers_1']}x; CPU per request workers 1 {cpu['workers_1']} ms, workers 2 "
          f"{cpu['workers_2']} ms")
    for name, q in lat.items():
        print(f"state change at {os.environ.get('BENCH_WORKERS_RATE', '100')}/s (medians): {name:10} p50 "
              f"{q['p50']:.3f} ms  p99 {q['p99']:.3f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
