"""Load: the constant-rate generator (bench/loadgen, Go) and wrk (saturation, Lua scripts)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
LOADGEN = BENCH / ".work" / "bin" / "loadgen"
LUA = BENCH / "lua"
TOKEN = "alice:demo"
ACTION_BODY = '{"reboot": {"type": "SOFT"}}'


@dataclass(frozen=True)
class Workload:
    """What one run sends: reads (show) or state changes (a soft reboot)."""

    kind: str  # "read" or "state_change"
    ids: Sequence[str]

    @property
    def method(self) -> str:
        return "GET" if self.kind == "read" else "POST"

    @property
    def path(self) -> str:
        return "/v2.1/servers/{id}" if self.kind == "read" else "/v2.1/servers/{id}/action"

    @property
    def body(self) -> str:
        return "" if self.kind == "read" else ACTION_BODY

    @property
    def lua(self) -> Path:
        return LUA / ("read.lua" if self.kind == "read" else "action.lua")


def fixed_rate(url: str, work: Workload, rate: float, duration_s: float, warmup_s: float,
               conns: int = 32) -> dict[str, Any]:
    """Run the constant-rate generator; its JSON summary (latencies in ms)."""
    argv = [str(LOADGEN), "-url", url, "-method", work.method, "-path", work.path,
            "-ids", ",".join(work.ids), "-rate", str(rate), "-duration", f"{duration_s}s",
            "-warmup", f"{warmup_s}s", "-conns", str(conns),
            "-H", f"X-Auth-Token: {TOKEN}", "-H", "Accept: application/json"]
    if work.body:
        argv += ["-body", work.body, "-H", "Content-Type: application/json"]
    env = {**os.environ, "GOMAXPROCS": "1"}
    proc = subprocess.run(argv, capture_output=True, text=True, env=env,
                          timeout=duration_s + warmup_s + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"loadgen failed ({proc.returncode}): {proc.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def saturate(url: str, work: Workload, duration_s: float, conns: int = 32,
             threads: int = 1) -> dict[str, Any]:
    """wrk with the workload's Lua script; requests/s and latency (ms) at saturation."""
    wrk = shutil.which("wrk")
    if wrk is None:
        raise RuntimeError("wrk not found (bench/setup.sh installs it)")
    env = {**os.environ, "BENCH_IDS": ",".join(work.ids), "BENCH_TOKEN": TOKEN,
           "BENCH_BODY": ACTION_BODY, "BENCH_LUA_DIR": str(LUA)}
    argv = [wrk, "-t", str(threads), "-c", str(conns), "-d", f"{max(1, round(duration_s))}s", "--timeout", "10s",
            "-s", str(work.lua), url]
    proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=duration_s + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr[-2000:]}{proc.stdout[-2000:]}")
    m = re.search(r"^BENCHJSON (\{.*\})$", proc.stdout, re.M)
    if m is None:
        raise RuntimeError(f"wrk printed no summary: {proc.stdout[-2000:]}")
    raw = json.loads(m.group(1))
    secs = raw["duration_us"] / 1e6
    lat = {k: round(v / 1e3, 3) for k, v in raw["latency_us"].items()}
    return {"requests": raw["requests"], "duration_s": round(secs, 3),
            "rps": round(raw["requests"] / secs, 1) if secs else 0.0,
            "errors": raw["errors"], "latency_ms": lat, "conns": conns, "threads": threads}
