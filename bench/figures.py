"""What a run's numbers mean: the variants, the goals and their budgets, added latency, stage timers."""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

VARIANTS = ("direct", "nginx", "statelock_embedded", "statelock_opa")
STATELOCK = ("statelock_embedded", "statelock_opa")
LABEL = {"direct": "direct", "nginx": "nginx proxy", "statelock_embedded": "Statelock (embedded)",
         "statelock_opa": "Statelock + OPA"}
PCTS = ("p50", "p90", "p99")

# Goals of issue 7.
STATE_P50_BUDGET_MS = 0.5
STATE_P99_BUDGET_MS = 2.0
READ_FACTOR_BUDGET = 3.0
# Goals of issue 18 (closed loop, one connection; saturation with workers at their best; the soak).
FAST_P50_BUDGET_MS = 1.0
FAST_P99_BUDGET_MS = 2.0
SATURATION_SHARE_GOAL = 0.2
RSS_GROWTH_BUDGET = 0.15
# OPA docs "envoy-performance" (v0.27-v0.29), Envoy gRPC client, 100 rps, read from the published
# graphs (shared/reference/opa.md section 1.4): App+Envoy vs App+Envoy+OPA RBAC.
ENVOY_REF = {"rate": 100, "envoy_p50": 1.4, "envoy_p99": 2.8, "opa_rbac_p50": 2.8, "opa_rbac_p99": 8.5,
             "added_p50": 1.4, "added_p99": 5.7}


# -- decision-record timers -----------------------------------------------------------------


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@lru_cache(maxsize=16)
def _records(path: str, mtime_ns: int) -> list[tuple[float, float, float, float | None, float | None]]:
    """Per decision: (timestamp, lock read ms, policy eval ms, upstream ms, record wait ms).

    The record wait is what the request spent between building its decision record and
    the forward: the durable append (group-commit window + write + fsync). It is the
    completion record's timestamp minus the decision record's, less the upstream time.
    """
    decisions: dict[str, tuple[float, float, float]] = {}
    completions: dict[str, tuple[float, float]] = {}
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            ts = _ts(rec.get("timestamp", "1970-01-01T00:00:00Z"))
            did = str(rec.get("decision_id"))
            if rec.get("type") == "completion":
                up = rec.get("statelock", {}).get("upstream", {})
                completions[did] = (ts, float(up.get("latency_ms", 0.0)))
            else:
                m = rec.get("metrics", {})
                decisions[did] = (ts, int(m.get("timer_lock_read_ns", 0)) / 1e6,
                                  int(m.get("timer_policy_eval_ns", 0)) / 1e6)
    out: list[tuple[float, float, float, float | None, float | None]] = []
    for did, (ts, lock, policy) in decisions.items():
        done = completions.get(did)
        upstream = done[1] if done else None
        wait = max(0.0, (done[0] - ts) * 1e3 - done[1]) if done else None
        out.append((ts, lock, policy, upstream, wait))
    return out


def _stats_ms(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    s = sorted(values)

    def at(p: float) -> float:
        return s[min(len(s) - 1, max(0, round(p / 100 * len(s)) - 1))]

    return {"n": len(s), "p50": round(at(50), 3), "p90": round(at(90), 3), "p99": round(at(99), 3),
            "max": round(s[-1], 3)}


def audit_timers(path: Path, start: float, end: float) -> dict[str, Any]:
    """What the sidecar's own decision records say about requests in [start, end]."""
    if not path.exists():
        return {}
    rows = [r for r in _records(str(path), path.stat().st_mtime_ns) if start <= r[0] <= end]
    return {"lock_read_ms": _stats_ms([r[1] for r in rows]),
            "policy_eval_ms": _stats_ms([r[2] for r in rows]),
            "record_wait_ms": _stats_ms([r[4] for r in rows if r[4] is not None]),
            "upstream_ms": _stats_ms([r[3] for r in rows if r[3] is not None])}


# -- derived numbers ------------------------------------------------------------------------


def added(results: dict[str, Any]) -> dict[str, Any]:
    """Percentile differences to direct (and, for Statelock, to nginx) per kind and rate."""
    out: dict[str, Any] = {}
    for kind, by_rate in results.get("fixed_rate", {}).items():
        for rate, by_var in by_rate.items():
            d = by_var["direct"]["corrected_ms"]
            n = by_var["nginx"]["corrected_ms"]
            row: dict[str, Any] = {}
            for v in VARIANTS[1:]:
                c = by_var[v]["corrected_ms"]
                row[v] = {"vs_direct": {p: round(c[p] - d[p], 3) for p in PCTS}}
                if v in STATELOCK:
                    row[v]["vs_nginx"] = {p: round(c[p] - n[p], 3) for p in PCTS}
            out.setdefault(kind, {})[rate] = row
    return out


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal of issue 7, per engine and rate, as measured ratios."""
    add = added(results)
    rows: list[dict[str, Any]] = []
    for v in STATELOCK:
        for rate, row in add.get("state_change", {}).items():
            a = row[v]["vs_direct"]
            rows.append({
                "goal": "state change adds <= 0.5 ms p50 and <= 2 ms p99 over direct",
                "variant": v, "rate": int(rate),
                "added_p50_ms": a["p50"], "added_p99_ms": a["p99"],
                "p50_ratio_to_budget": round(a["p50"] / STATE_P50_BUDGET_MS, 2),
                "p99_ratio_to_budget": round(a["p99"] / STATE_P99_BUDGET_MS, 2),
                "added_vs_nginx_p50_ms": row[v]["vs_nginx"]["p50"],
                "added_vs_nginx_p99_ms": row[v]["vs_nginx"]["p99"],
                "met": a["p50"] <= STATE_P50_BUDGET_MS and a["p99"] <= STATE_P99_BUDGET_MS,
            })
    for v in STATELOCK:
        for rate, row in add.get("read", {}).items():
            s = row[v]["vs_direct"]
            n = row["nginx"]["vs_direct"]
            ratios: dict[str, float | None] = {}
            for p in ("p50", "p99"):
                # NOTE: when nginx adds nothing measurable the ratio is undefined, not a pass.
                ratios[p] = round(s[p] / n[p], 2) if n[p] > 0.005 else None
            met = all(r is not None and r <= READ_FACTOR_BUDGET for r in ratios.values())
            rows.append({
                "goal": "reads add at most 3x what nginx adds",
                "variant": v, "rate": int(rate),
                "statelock_added_p50_ms": s["p50"], "nginx_added_p50_ms": n["p50"],
                "statelock_added_p99_ms": s["p99"], "nginx_added_p99_ms": n["p99"],
                "p50_factor": ratios["p50"], "p99_factor": ratios["p99"], "met": met,
            })
    return rows


def breakdown(results: dict[str, Any], variant: str = "statelock_embedded", rate: str = "100") -> dict[str, Any]:
    """Where a state change's time goes at a low rate: the sidecar's own per-stage medians."""
    try:
        client = results["fixed_rate"]["state_change"][rate][variant]["corrected_ms"]["p50"]
        direct = results["fixed_rate"]["state_change"][rate]["direct"]["corrected_ms"]["p50"]
        t = results["server_timers"][variant][rate]
        parts = {
            "lock read (instance_locks + effective_locks; SQLite: from memory)": t["lock_read_ms"]["p50"],
            "policy evaluation": t["policy_eval_ms"]["p50"],
            "durable decision record (queue to the writer thread, write + fdatasync, group commit)":
                t["record_wait_ms"]["p50"],
            "upstream round trip as the sidecar sees it": t["upstream_ms"]["p50"],
        }
    except (KeyError, TypeError):
        return {}
    parts["everything else: HTTP in/out (aiohttp server, the http1 forwarding client), classify, identity, guard, "
          "building the records, scheduling"] = client - sum(parts.values())
    return {"variant": variant, "rate": int(rate), "client_p50_ms": client, "direct_p50_ms": direct,
            "added_p50_ms": round(client - direct, 3), "parts_ms": {k: round(v, 3) for k, v in parts.items()}}


def acceptance(results: dict[str, Any], variant: str = "statelock_embedded") -> list[dict[str, Any]]:
    """Issue 18's acceptance as ratios from one run's ``fastpath`` numbers (empty without them).

    Each row: ``goal``, the measured ``value``, the ``budget`` it is held to, ``ratio``
    (value / budget, except saturation: share / goal, where >= 1 meets it) and ``met``.
    """
    fp = results.get("fastpath") or {}
    rows: list[dict[str, Any]] = []
    closed = fp.get("closed_loop", {})
    state, read = closed.get("state_change", {}), closed.get("read", {})
    if variant in state and "direct" in state:
        for p, budget in (("p50", FAST_P50_BUDGET_MS), ("p99", FAST_P99_BUDGET_MS)):
            add = round(state[variant][p] - state["direct"][p], 3)
            rows.append({"goal": f"state change added over direct, {p} (closed loop, 1 connection)",
                         "value": add, "unit": "ms", "budget": budget, "ratio": round(add / budget, 2),
                         "met": add <= budget})
    if variant in read and "nginx" in read and "direct" in read:
        for p in ("p50", "p99"):
            ours, theirs = read[variant][p] - read["direct"][p], read["nginx"][p] - read["direct"][p]
            factor = round(ours / theirs, 2) if theirs > 0.005 else None
            rows.append({"goal": f"read added over direct vs nginx's addition, {p} (closed loop)",
                         "value": round(ours, 3), "unit": f"ms (nginx +{theirs:.3f} ms)",
                         "budget": READ_FACTOR_BUDGET, "ratio": factor,
                         "met": factor is not None and factor <= READ_FACTOR_BUDGET})
    sat = fp.get("saturation", {})
    up = sat.get("upstream", {}).get("rps")
    measured = {w: r for w, r in sat.get("workers", {}).items() if "rps" in r}
    if up and measured:
        best = max(measured, key=lambda w: measured[w]["rps"])
        share = measured[best]["rps"] / up
        rows.append({"goal": f"state changes at saturation vs the upstream's own (workers {best})",
                     "value": round(share, 3), "unit": f"x ({measured[best]['rps']:.0f} vs {up:.0f} req/s)",
                     "budget": SATURATION_SHARE_GOAL, "ratio": round(share / SATURATION_SHARE_GOAL, 2),
                     "met": share >= SATURATION_SHARE_GOAL})
    soak = fp.get("soak")
    if soak:
        rows.append({"goal": f"RSS growth over {soak['requests']:,} state changes after warm-up",
                     "value": round(soak["growth"] * 100, 2), "unit": "%", "budget": RSS_GROWTH_BUDGET * 100,
                     "ratio": round(soak["growth"] / RSS_GROWTH_BUDGET, 2), "met": soak["growth"] < RSS_GROWTH_BUDGET})
    return rows
