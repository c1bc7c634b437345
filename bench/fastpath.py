"""The fast path's acceptance measurements (issue 18): closed loop, saturation with workers, the RSS soak.

- **Closed loop, one connection** (``wrk -t1 -c1``): direct, nginx and Statelock, reads
  and state changes; what one client sees with nothing queued behind it.
- **State changes at saturation** (``wrk -t1 -c16``): the upstream alone, and Statelock
  with each ``server.workers`` setting the bench was asked for (``BENCH_WORKERS``,
  default ``1,2``); a setting the sidecar does not accept is reported as such.
- **RSS soak**: about 20,000 allowed state changes (``wrk -c4`` rounds) against a
  Statelock that has served the fixed-rate runs already (warm), with VmRSS sampled
  after each round; growth is the last sample over the first.

Nothing here decides a verdict: ``bench.figures.acceptance`` turns the numbers into ratios.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import load
from bench.procs import children, rss_kib

CLOSED_S = 5.0
SATURATION_CONNS = 16
SOAK_REQUESTS = 20_000
SOAK_ROUND_S = 2.0


def workers_settings() -> list[int]:
    """The ``server.workers`` settings to measure (``BENCH_WORKERS``, e.g. ``1,2``)."""
    raw = os.environ.get("BENCH_WORKERS", "1,2")
    return sorted({int(x) for x in raw.split(",") if x.strip()})


def closed_loop(urls: dict[str, str], ids: list[str], duration_s: float = CLOSED_S) -> dict[str, Any]:
    """p50/p99 per kind and variant, closed loop on one keep-alive connection."""
    out: dict[str, Any] = {}
    for kind in ("read", "state_change"):
        work = load.Workload(kind, ids)
        out[kind] = {}
        for variant, url in urls.items():
            res = load.saturate(url, work, duration_s, conns=1)
            out[kind][variant] = {"p50": res["latency_ms"]["p50"], "p99": res["latency_ms"]["p99"],
                                  "rps": res["rps"], "errors": res["errors"]}
    return out


def saturation(url: str, ids: list[str], duration_s: float) -> dict[str, Any]:
    """State changes at saturation (``wrk -c16``): requests/s and latency."""
    res = load.saturate(url, load.Workload("state_change", ids), duration_s, conns=SATURATION_CONNS)
    return {"rps": res["rps"], "p50": res["latency_ms"]["p50"], "p99": res["latency_ms"]["p99"],
            "errors": res["errors"], "conns": SATURATION_CONNS}


def soak(url: str, pid: int, ids: list[str], requests: int = SOAK_REQUESTS,
         log: Callable[[str], None] = print) -> dict[str, Any]:
    """About ``requests`` allowed state changes in rounds, VmRSS (KiB) after each; growth of the last over the first."""
    work = load.Workload("state_change", ids)

    def rss() -> int:
        return rss_kib(pid).get("VmRSS", 0)

    def indexer_rss() -> int:
        return sum(rss_kib(child).get("VmRSS", 0) for child in indexer_pids(pid))

    samples = [{"requests": 0, "rss_kib": rss(), "indexer_rss_kib": indexer_rss()}]
    done = errors = 0
    while done < requests:
        res = load.saturate(url, work, SOAK_ROUND_S, conns=4)
        done += res["requests"]
        errors += sum(res["errors"].values())
        samples.append({"requests": done, "rss_kib": rss(), "indexer_rss_kib": indexer_rss()})
    first, last = samples[0]["rss_kib"], samples[-1]["rss_kib"]
    growth = (last - first) / first if first else 0.0
    i_first, i_last = samples[0]["indexer_rss_kib"], samples[-1]["indexer_rss_kib"]
    i_growth = (i_last - i_first) / i_first if i_first else None
    log(f"soak: {done} state changes, RSS {first} -> {last} KiB ({growth:+.1%}), indexer RSS {i_first} -> "
        f"{i_last} KiB, errors {errors}")
    return {"requests": done, "errors": errors, "samples": samples, "growth": round(growth, 4),
            "kib_per_1000": round((last - first) / max(done, 1) * 1000, 1),
            "indexer_growth": None if i_growth is None else round(i_growth, 4)}


def indexer_pids(pid: int) -> list[int]:
    """The decision indexer processes (``python -m sidecar.audit.indexer``) started by ``pid``."""
    found = []
    for child in children(pid):
        try:
            cmdline = Path(f"/proc/{child}/cmdline").read_bytes()
        except OSError:
            continue
        if b"sidecar.audit.indexer" in cmdline:
            found.append(child)
    return found
