"""The benchmark run: start everything, measure side by side, write bench/results/.

Variants (every one in front of the same canned upstream):
  direct              the client talks to the upstream itself
  nginx               nginx as a keep-alive reverse proxy (the peer hop)
  statelock_embedded  ``python -m sidecar serve``, embedded Wasm engine
  statelock_opa       ``python -m sidecar serve``, ``policy.engine: opa`` against ``opa run --server``

Environment knobs: BENCH_QUICK=1 (short runs, for trying the harness; not a result),
BENCH_SKIP_PROFILE=1, BENCH_WORKERS=1,2 (the ``server.workers`` settings measured at
saturation, ``bench.fastpath``).
"""

from __future__ import annotations

import asyncio
import os
import platform
import resource
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import FrameType
from typing import Any

import yaml

from bench import fastpath, figures, load, locktable, micro, report
from bench.figures import STATELOCK, VARIANTS
from bench.procs import (
    Proc,
    Processes,
    children,
    cpu_seconds,
    free_port,
    http_ok,
    machine_busy_s,
    machine_steal_s,
    rss_kib,
)
from bench.profiling import profile_pid
from bench.upstream import nginx_argv, proxy_conf, upstream_conf, write_conf
from sidecar.errors import PolicyError
from sidecar.policy.wasm.compiler import find_opa

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
WORK = BENCH / ".work" / "run"
RESULTS = BENCH / "results"
BUNDLE = ROOT / "policies"

KINDS = ("read", "state_change")
RATES = (100, 500, 1000)
TABLE_SIZES = (10, 10_000, 1_000_000)


class Plan:
    """Durations (seconds) of each part; BENCH_QUICK shortens them for trying the harness."""

    def __init__(self, quick: bool) -> None:
        self.quick = quick
        # NOTE: ~1000 samples or more per point, so p99 rests on 10+ requests.
        self.fixed = {100: 10.0, 500: 6.0, 1000: 5.0} if not quick else {100: 2.0, 500: 2.0, 1000: 2.0}
        self.warmup = 1.0 if not quick else 0.5
        self.saturation = 5.0 if not quick else 2.0
        self.profile = 10.0 if not quick else 3.0
        self.table_rate = 250.0
        self.table_duration = 4.0 if not quick else 2.0
        self.engine_n_embedded = 3000 if not quick else 300
        self.engine_n_opa = 1000 if not quick else 100
        self.path_n = 2000 if not quick else 200
        self.audit_n = 200 if not quick else 40
        self.table_sizes = TABLE_SIZES if not quick else (10, 10_000)

    def as_json(self) -> dict[str, Any]:
        return {"quick": self.quick, "fixed_rate_s": self.fixed, "warmup_s": self.warmup,
                "saturation_s": self.saturation, "profile_s": self.profile,
                "lock_table_rate": self.table_rate, "lock_table_duration_s": self.table_duration,
                "fixed_rate_conns": 32, "saturation_conns": 32, "saturation_threads": 1}


def _log(msg: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def _on_term(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(f"bench: stopped by signal {signum}")


def _opa_binary() -> str:
    try:
        return find_opa()
    except PolicyError as exc:
        raise RuntimeError(exc.message) from exc


def _version(argv: list[str]) -> str:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"
    text = (proc.stdout + proc.stderr).strip().splitlines()
    return text[0].strip() if text else "unknown"


def machine_info() -> dict[str, Any]:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    opa = _version([_opa_binary(), "version"])
    git = _version(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"])
    dirty = bool(subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--", "sidecar"],
                                capture_output=True, text=True).stdout.strip())
    return {
        "cores": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kib / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _version(["sh", "-c", ". /etc/os-release && echo $PRETTY_NAME"]),
        "python": platform.python_version(),
        "opa": opa.replace("Version: ", ""),
        "nginx": _version(["nginx", "-v"]).replace("nginx version: ", ""),
        "wrk": _version(["wrk", "--version"]).split(" Copyright")[0],
        "go": _version(["go", "version"]),
        "git_commit": git + ("+dirty(sidecar/)" if dirty else ""),
        "date": datetime.now(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
    }


class Bench:
    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.procs = Processes(WORK / "logs")
        self.ports: dict[str, int] = {}
        self.pids: dict[str, Proc] = {}
        self.results: dict[str, Any] = {"schema": 1}
        self.windows: list[dict[str, Any]] = []

    # -- processes -------------------------------------------------------------------------

    def url(self, variant: str) -> str:
        return f"http://127.0.0.1:{self.ports[variant]}"

    def start_nginx(self) -> None:
        up, px = free_port(), free_port()
        conf = write_conf(WORK / "nginx-upstream", upstream_conf(WORK / "nginx-upstream", up))
        self.pids["upstream"] = self.procs.start(
            "nginx-upstream", nginx_argv(WORK / "nginx-upstream", conf),
            ready=lambda: http_ok(f"http://127.0.0.1:{up}/"))
        conf = write_conf(WORK / "nginx-proxy", proxy_conf(WORK / "nginx-proxy", px, up))
        self.pids["nginx"] = self.procs.start(
            "nginx-proxy", nginx_argv(WORK / "nginx-proxy", conf),
            ready=lambda: http_ok(f"http://127.0.0.1:{px}/"))
        self.ports["direct"], self.ports["nginx"] = up, px

    def start_opa(self) -> None:
        port = free_port()
        self.ports["opa"] = port
        self.pids["opa"] = self.procs.start(
            "opa", [_opa_binary(), "run", "--server", "--addr", f"127.0.0.1:{port}",
                    "--log-level", "error", "--skip-version-check", "--ignore", "*_test.rego",
                    "--bundle", str(BUNDLE)],
            cwd=ROOT, ready=lambda: http_ok(f"http://127.0.0.1:{port}/health?bundles"))

    def statelock_config(self, name: str, engine: str, db: Path, port: int, workers: int = 1) -> Path:
        d = WORK / name
        d.mkdir(parents=True, exist_ok=True)
        policy: dict[str, Any] = {"engine": engine, "bundle": str(BUNDLE)}
        if engine == "opa":
            policy["opa_url"] = f"http://127.0.0.1:{self.ports['opa']}"
        raw = {
            "listen": f"127.0.0.1:{port}",
            "mode": "enforce",
            "backend": {"kind": "upstream", "upstream_url": self.url("direct"),
                        "service_auth": {"token": "statelock:service:admin"}},
            "identity": {"mode": "noauth"},
            "lockstore": {"url": f"sqlite:///{db}"},
            "policy": policy,
            "audit": {"path": str(d / "decisions.jsonl"), "on_failure": "deny"},
        }
        if workers != 1:
            raw["server"] = {"workers": workers}
        path = d / "statelock.yaml"
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
        return path

    def start_statelock(self, name: str, engine: str, db: Path, workers: int = 1) -> Proc:
        port = free_port()
        self.ports[name] = port
        cfg = self.statelock_config(name, engine, db, port, workers)
        env = {k: v for k, v in os.environ.items() if k != "STATELOCK_LISTEN"}
        proc = self.procs.start(
            name, [sys.executable, "-m", "sidecar", "serve", "--config", str(cfg)], cwd=ROOT, env=env,
            ready=lambda: http_ok(f"http://127.0.0.1:{port}/statelock/v1/livez"), timeout_s=60)
        self.pids[name] = proc
        return proc

    def decisions_file(self, name: str) -> Path:
        return WORK / name / "decisions.jsonl"

    # -- checks ----------------------------------------------------------------------------

    def preflight(self) -> dict[str, Any]:
        """Every variant answers as expected; Statelock enforces the bench's two locks."""
        import urllib.error
        import urllib.request

        def call(url: str, method: str, body: bytes | None) -> int:
            req = urllib.request.Request(url, data=body, method=method, headers={
                "X-Auth-Token": load.TOKEN, "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=10) as resp:
                    resp.read()
                    return int(resp.status)
            except urllib.error.HTTPError as exc:
                exc.read()
                return int(exc.code)

        out: dict[str, Any] = {}
        body = load.ACTION_BODY.encode()
        for variant in VARIANTS:
            base = self.url(variant)
            got = {
                "show": call(f"{base}/v2.1/servers/{locktable.UNLOCKED[0]}", "GET", None),
                "reboot_unlocked": call(f"{base}/v2.1/servers/{locktable.UNLOCKED[0]}/action", "POST", body),
                "reboot_state_locked": call(f"{base}/v2.1/servers/{locktable.STATE_LOCKED}/action", "POST",
                                            body),
                "reboot_boot_locked": call(f"{base}/v2.1/servers/{locktable.BOOT_LOCKED}/action", "POST", body),
            }
            want_locked = 409 if variant in STATELOCK else 202
            expected = {"show": 200, "reboot_unlocked": 202, "reboot_state_locked": want_locked,
                        "reboot_boot_locked": want_locked}
            if got != expected:
                raise RuntimeError(f"preflight: {variant} answered {got}, expected {expected}")
            out[variant] = got
        return out

    # -- measurements ----------------------------------------------------------------------

    def _cpu(self) -> dict[str, float]:
        out = {}
        for name, proc in self.pids.items():
            total = cpu_seconds(proc.pid)
            for child in children(proc.pid):
                total += cpu_seconds(child)
            out[name] = total
        return out

    def _measure(self, variant: str, kind: str, rate: Any, fn: Callable[[], dict[str, Any]],
                 skip_s: float = 0.0) -> dict[str, Any]:
        """Run one load; add CPU per request of the processes on the path, and the machine's other load."""
        cpu0, busy0 = self._cpu(), machine_busy_s()
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0, m0 = time.time(), time.monotonic()
        res = fn()
        wall = time.monotonic() - m0
        cpu1, busy1 = self._cpu(), machine_busy_s()
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        names = {"direct": ["upstream"], "nginx": ["nginx", "upstream"],
                 "statelock_embedded": ["statelock_embedded", "upstream"],
                 "statelock_opa": ["statelock_opa", "opa", "upstream"]}.get(variant, [variant, "upstream"])
        sent = res.get("requests", 0)
        if "rate_target" in res:
            sent = res["rate_target"] * (self.plan.warmup + res["duration_s"])
        res["cpu_us_per_request"] = {n: round((cpu1[n] - cpu0.get(n, cpu1[n])) / max(sent, 1) * 1e6, 1)
                                     for n in names if n in cpu1}
        ours = sum(cpu1[n] - cpu0.get(n, cpu1[n]) for n in cpu1)
        loader = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
        res["load_generator_cores"] = round(loader / wall, 2)
        # NOTE: whatever else runs on the machine (other users' tests) competes for the same cores.
        res["other_load_cores"] = round(max(0.0, (busy1 - busy0) - ours - loader) / wall, 2)
        self.windows.append({"variant": variant, "kind": kind, "rate": rate, "start": t0 + skip_s,
                             "end": time.time()})
        return res

    def prewarm(self) -> None:
        """Fresh Python processes are slow for their first few hundred requests: warm both paths."""
        for variant in STATELOCK:
            for kind in KINDS:
                load.fixed_rate(self.url(variant), load.Workload(kind, locktable.UNLOCKED), 200,
                                2.0 if not self.plan.quick else 1.0, 0.5)

    def fixed_rate_matrix(self) -> None:
        out: dict[str, Any] = {}
        for kind in KINDS:
            work = load.Workload(kind, locktable.UNLOCKED)
            out[kind] = {}
            for rate in RATES:
                out[kind][str(rate)] = {}
                for variant in VARIANTS:
                    dur = self.plan.fixed[rate]
                    res = self._measure(variant, kind, rate, partial(
                        load.fixed_rate, self.url(variant), work, rate, dur, self.plan.warmup),
                        skip_s=self.plan.warmup)
                    out[kind][str(rate)][variant] = res
                    c = res["corrected_ms"]
                    _log(f"{kind:12} {rate:5}/s {variant:19} p50 {c['p50']:7.3f} p90 {c['p90']:7.3f} "
                         f"p99 {c['p99']:8.3f} ms  achieved {res['rate_achieved']}/s  {res['statuses']}  "
                         f"other load {res['other_load_cores']} cores")
        self.results["fixed_rate"] = out

    def saturation(self) -> None:
        out: dict[str, Any] = {}
        for kind in KINDS:
            work = load.Workload(kind, locktable.UNLOCKED)
            out[kind] = {}
            for variant in VARIANTS:
                res = self._measure(variant, kind, "saturation", partial(
                    load.saturate, self.url(variant), work, self.plan.saturation))
                out[kind][variant] = res
                _log(f"saturation {kind:12} {variant:19} {res['rps']:9.1f} req/s  p50 "
                     f"{res['latency_ms']['p50']:.3f} p99 {res['latency_ms']['p99']:.3f} ms  "
                     f"errors {res['errors']}  other load {res['other_load_cores']} cores")
        self.results["saturation"] = out

    def fastpath(self) -> None:
        """Issue 18's measurements (``bench.fastpath``): closed loop, saturation with workers, the soak."""
        ids = list(locktable.UNLOCKED)
        _log("fast path: closed loop on one connection (direct, nginx, Statelock; reads and state changes)")
        closed = fastpath.closed_loop({v: self.url(v) for v in ("direct", "nginx", "statelock_embedded")}, ids,
                                      fastpath.CLOSED_S if not self.plan.quick else 2.0)
        for kind, by_var in closed.items():
            _log(f"closed loop {kind:12} " + "  ".join(f"{v} p50 {r['p50']:.3f} p99 {r['p99']:.3f}"
                                                        for v, r in by_var.items()))
        sat: dict[str, Any] = {"upstream": fastpath.saturation(self.url("direct"), ids, self.plan.saturation),
                               "workers": {}}
        for n in fastpath.workers_settings():
            name = "statelock_embedded" if n == 1 else f"statelock_workers_{n}"
            proc = None
            try:
                if n != 1:
                    db = WORK / name / "locks.db"
                    db.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copy(WORK / "tables" / "locks-base.db", db)
                    proc = self.start_statelock(name, "embedded", db, workers=n)
                    load.fixed_rate(self.url(name), load.Workload("state_change", ids), 200, 2.0, 0.5)
                sat["workers"][str(n)] = fastpath.saturation(self.url(name), ids, self.plan.saturation)
            except RuntimeError as exc:
                sat["workers"][str(n)] = {"error": str(exc).splitlines()[0][:300]}
            finally:
                if proc is not None:
                    self.procs.stop(proc)
                    self.pids.pop(name, None)
            _log(f"saturation (wrk -c{fastpath.SATURATION_CONNS}) state changes, workers {n}: "
                 f"{sat['workers'][str(n)]}; upstream alone {sat['upstream']['rps']} req/s")
        soak_n = fastpath.SOAK_REQUESTS if not self.plan.quick else 2000
        _log(f"soak: {soak_n} allowed state changes, RSS sampled")
        soak = fastpath.soak(self.url("statelock_embedded"), self.pids["statelock_embedded"].pid, ids, soak_n, _log)
        self.results["fastpath"] = {"closed_loop": closed, "saturation": sat, "soak": soak}

    def rss(self, label: str) -> None:
        snap = {name: rss_kib(self.pids[name].pid) for name in ("statelock_embedded", "statelock_opa", "opa")
                if name in self.pids}
        self.results.setdefault("rss_kib", {})[label] = snap

    def engine_alone(self) -> None:
        _log("decision engine alone: embedded decide_sync vs OPA REST")
        self.results["engine_alone"] = asyncio.run(micro.engine_alone(
            BUNDLE, f"http://127.0.0.1:{self.ports['opa']}", self.plan.engine_n_embedded,
            self.plan.engine_n_opa))

    def profile(self) -> None:
        proc = self.pids["statelock_embedded"]
        url = self.url("statelock_embedded")
        _log(f"profiling statelock_embedded (pid {proc.pid}) under saturated state changes "
             f"for {self.plan.profile:g}s")
        work = load.Workload("state_change", locktable.UNLOCKED)
        prof = profile_pid(proc.pid, self.plan.profile, WORK / "profile",
                           partial(load.saturate, url, work, self.plan.profile))
        prof["request"] = "POST /v2.1/servers/{id}/action (soft reboot)"
        self.results["profile"] = prof
        secs = max(2.0, self.plan.profile / 2)
        _log(f"profiling statelock_embedded under saturated reads for {secs:g}s")
        work = load.Workload("read", locktable.UNLOCKED)
        prof = profile_pid(proc.pid, secs, WORK / "profile-read", partial(load.saturate, url, work, secs))
        prof["request"] = "GET /v2.1/servers/{id}"
        self.results["profile_read"] = prof

    def lock_tables(self) -> None:
        out: dict[str, Any] = {}
        work = load.Workload("state_change", locktable.UNLOCKED)
        for n in self.plan.table_sizes:
            db = WORK / "tables" / f"locks-{n}.db"
            built = locktable.build_lock_table(db, n)
            _log(f"lock table {n:>9,} rows built in {built['build_s']}s ({built['file_bytes'] / 1e6:.1f} MB)")
            path = asyncio.run(micro.decision_path_at_size(db, BUNDLE, locktable.UNLOCKED, self.plan.path_n))
            name = f"statelock_table_{n}"
            proc = self.start_statelock(name, "embedded", db)
            try:
                # NOTE: a fresh process needs a few hundred requests before it is at speed.
                load.fixed_rate(self.url(name), work, self.plan.table_rate, 2.0 if not self.plan.quick else 1.0,
                                0.5)
                res = self._measure(name, "state_change", self.plan.table_rate, partial(
                    load.fixed_rate, self.url(name), work, self.plan.table_rate, self.plan.table_duration,
                    self.plan.warmup), skip_s=self.plan.warmup)
                window = self.windows.pop()
                rss = rss_kib(proc.pid)
            finally:
                self.procs.stop(proc)
                self.pids.pop(name, None)
            timers = figures.audit_timers(self.decisions_file(name), window["start"], window["end"])
            out[str(n)] = {"table": built, "in_process": path, "end_to_end": res, "server_timers": timers,
                           "rss_kib": rss}
            c = res["corrected_ms"]
            _log(f"lock table {n:>9,}: lock read p50 {path['lock_read_us']['p50']} us, "
                 f"decide p50 {path['decide_us']['p50']} us; end-to-end at {self.plan.table_rate:g}/s "
                 f"p50 {c['p50']} p99 {c['p99']} ms")
            if n >= 1_000_000:
                db.unlink(missing_ok=True)
        self.results["lock_table"] = out

    def audit_micro(self) -> None:
        _log("decision record: durable append latency (group commit window 2 ms vs 0) and bare fsync")
        d = WORK / "audit-micro"
        d.mkdir(parents=True, exist_ok=True)
        self.results["audit_append"] = asyncio.run(micro.audit_append(d, self.plan.audit_n, 0.005))

    def server_timers(self) -> None:
        out: dict[str, Any] = {}
        for w in self.windows:
            if w["variant"] in STATELOCK and w["kind"] == "state_change":
                out.setdefault(w["variant"], {})[str(w["rate"])] = figures.audit_timers(
                    self.decisions_file(w["variant"]), w["start"], w["end"])
        self.results["server_timers"] = out

    # -- the whole run ---------------------------------------------------------------------

    def wait_for_quiet(self) -> None:
        """Wait (bounded) while other processes keep the machine busy; record what was seen."""
        limit = float(os.environ.get("BENCH_QUIET_WAIT_S", "60"))
        started = time.monotonic()
        said = -1e9
        while True:
            b0, m0 = machine_busy_s(), time.monotonic()
            time.sleep(1.0)
            busy = (machine_busy_s() - b0) / (time.monotonic() - m0)
            waited = time.monotonic() - started
            if busy < 0.3 or waited >= limit:
                break
            if waited - said >= 10:
                said = waited
                _log(f"machine busy with other work ({busy:.2f} cores); waiting up to {limit:g}s for it to calm down")
        self.results["other_load_at_start_cores"] = round(busy, 2)
        self.results["waited_for_quiet_s"] = round(time.monotonic() - started, 1)

    def run(self) -> None:
        steal0, wall0 = machine_steal_s(), time.monotonic()
        try:
            self._run()
        finally:
            # NOTE: a VM's cores lose this share to the host's other guests: it is in no process's CPU time.
            cores = os.cpu_count() or 1
            self.results["steal_share"] = round((machine_steal_s() - steal0) / ((time.monotonic() - wall0) * cores), 3)

    def _run(self) -> None:
        self.results["machine"] = machine_info()
        self.results["plan"] = self.plan.as_json()
        base_db = WORK / "tables" / "locks-base.db"
        locktable.build_lock_table(base_db, 10)
        self.start_nginx()
        self.start_opa()
        for name, engine in (("statelock_embedded", "embedded"), ("statelock_opa", "opa")):
            db = WORK / name / "locks.db"
            db.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(base_db, db)
            self.start_statelock(name, engine, db)
        _log("started: " + ", ".join(f"{k}:{v}" for k, v in self.ports.items()))
        self.results["preflight"] = self.preflight()
        self.rss("idle_after_start")
        self.prewarm()
        self.wait_for_quiet()
        self.fixed_rate_matrix()
        self.saturation()
        self.rss("after_load")
        self.fastpath()
        self.engine_alone()
        self.server_timers()
        self.procs.stop(self.pids.pop("statelock_opa"))
        if os.environ.get("BENCH_SKIP_PROFILE") != "1":
            self.profile()
        self.rss("after_profile")
        self.procs.stop(self.pids.pop("statelock_embedded"))
        self.procs.stop(self.pids.pop("opa"))
        self.lock_tables()
        self.audit_micro()


def main() -> int:
    started = time.monotonic()
    signal.signal(signal.SIGTERM, _on_term)
    quick = os.environ.get("BENCH_QUICK") == "1"
    _log("setup: bench/setup.sh (wrk, nginx, matplotlib, py-spy, load generator)")
    subprocess.run(["bash", str(BENCH / "setup.sh")], check=True, cwd=ROOT,
                   env={**os.environ, "BENCH_PYTHON": sys.executable})
    if WORK.exists():
        shutil.rmtree(WORK)
    (WORK / "logs").mkdir(parents=True)
    bench = Bench(Plan(quick))
    try:
        bench.run()
    finally:
        bench.procs.close()
    bench.results["wall_time_s"] = round(time.monotonic() - started, 1)
    bench.results["git_commit_end"] = machine_info()["git_commit"]
    # NOTE: a quick run is for trying the harness: it never replaces the published results.
    outdir = BENCH / ".work" / "results-quick" if quick else RESULTS
    report.write_all(bench.results, outdir)
    _log(f"done in {bench.results['wall_time_s']}s: {outdir / 'latest.md'}")
    return 0
