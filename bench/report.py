"""The report: latest.json, latest.md (tables and goal verdicts), latency.png, profile.txt."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

from bench.profiling import render as render_profile

VARIANTS = ("direct", "nginx", "statelock_embedded", "statelock_opa")
STATELOCK = ("statelock_embedded", "statelock_opa")
LABEL = {"direct": "direct", "nginx": "nginx proxy", "statelock_embedded": "Statelock (embedded)",
         "statelock_opa": "Statelock + OPA"}
PCTS = ("p50", "p90", "p99")

# Goals of issue 7.
STATE_P50_BUDGET_MS = 0.5
STATE_P99_BUDGET_MS = 2.0
READ_FACTOR_BUDGET = 3.0
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


# -- markdown -------------------------------------------------------------------------------


def _f(x: Any, nd: int = 3) -> str:
    if x is None:
        return "n/a"
    if isinstance(x, float | int):
        return f"{x:.{nd}f}"
    return str(x)


def _factor(x: float | None) -> str:
    return "n/a (nginx adds nothing measurable)" if x is None else f"{x:.2f}x"


def _p50_p99(stats: dict[str, Any], nd: int = 3) -> str:
    """``p50 / p99`` of a percentile dict with ``nd`` decimals; ``n/a`` for an empty one."""
    return f"{_f(stats.get('p50'), nd)} / {_f(stats.get('p99'), nd)}" if stats else "n/a"


def _signed(x: float) -> str:
    return f"{x:+.3f}"


def _md_fixed(results: dict[str, Any], kind: str) -> list[str]:
    fr = results["fixed_rate"][kind]
    add = added(results)[kind]
    out = ["| rate (req/s) | variant | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | added p50 / p99 vs direct"
           " | achieved req/s | CPU µs/req (process) | other load (cores) |",
           "|---:|---|---:|---:|---:|---:|---:|---|---:|---|---:|"]
    for rate, by_var in fr.items():
        for v in VARIANTS:
            r = by_var[v]
            c = r["corrected_ms"]
            a = "" if v == "direct" else f"{_signed(add[rate][v]['vs_direct']['p50'])} / " \
                                         f"{_signed(add[rate][v]['vs_direct']['p99'])}"
            cpu = ", ".join(f"{k} {val:g}" for k, val in r.get("cpu_us_per_request", {}).items())
            bad = {k: n for k, n in r["statuses"].items() if k not in ("200", "202")}
            ach = f"{r['rate_achieved']:g}" + (f" ({bad} other statuses)" if bad else "")
            if r["rate_achieved"] < 0.95 * r["rate_target"] or r.get("late_sends", 0) > 0.05 * r["requests"]:
                ach += " **overloaded**"
            out.append(f"| {rate} | {LABEL[v]} | {_f(c['p50'])} | {_f(c['p90'])} | {_f(c['p99'])} | "
                       f"{_f(c['p99.9'])} | {_f(c['max'])} | {a} | {ach} | {cpu} | "
                       f"{_f(r.get('other_load_cores'), 2)} |")
    return out


def breakdown(results: dict[str, Any], variant: str = "statelock_embedded", rate: str = "100") -> dict[str, Any]:
    """Where a state change's time goes at a low rate: the sidecar's own per-stage medians."""
    try:
        client = results["fixed_rate"]["state_change"][rate][variant]["corrected_ms"]["p50"]
        direct = results["fixed_rate"]["state_change"][rate]["direct"]["corrected_ms"]["p50"]
        t = results["server_timers"][variant][rate]
        parts = {
            "lock read (has_scoped_locks + effective locks)": t["lock_read_ms"]["p50"],
            "policy evaluation": t["policy_eval_ms"]["p50"],
            "durable decision record (group-commit window + write + fsync, via to_thread)":
                t["record_wait_ms"]["p50"],
            "upstream round trip as the sidecar sees it": t["upstream_ms"]["p50"],
        }
    except (KeyError, TypeError):
        return {}
    parts["everything else: HTTP in/out (aiohttp server + client), classify, identity, guard, "
          "building the records, scheduling"] = client - sum(parts.values())
    return {"variant": variant, "rate": int(rate), "client_p50_ms": client, "direct_p50_ms": direct,
            "added_p50_ms": round(client - direct, 3), "parts_ms": {k: round(v, 3) for k, v in parts.items()}}


def _md_breakdown(results: dict[str, Any]) -> list[str]:
    out: list[str] = []
    for v in STATELOCK:
        b = breakdown(results, v)
        if not b:
            continue
        out += ["", f"Where a state change's time goes in {LABEL[v]} at {b['rate']} req/s: client p50 "
                f"{b['client_p50_ms']:.3f} ms (direct {b['direct_p50_ms']:.3f} ms). Stage medians from the "
                "sidecar's own decision and completion records of the same requests (sums of medians: approximate).",
                "", "| stage | p50 ms |", "|---|---:|"]
        out += [f"| {k} | {val:.3f} |" for k, val in b["parts_ms"].items()]
    return out


def _md_verdicts(rows: list[dict[str, Any]], goal: str,
                 worst: Callable[[list[dict[str, Any]]], str]) -> list[str]:
    """One bullet per Statelock variant: the goal met at every rate, or the rates it was met at.

    ``goal`` follows the variant's label; ``worst`` adds to the "not met" line from that variant's rows.
    """
    out: list[str] = []
    for v in STATELOCK:
        mine = [r for r in rows if r["variant"] == v]
        ok = [r["rate"] for r in mine if r["met"]]
        verdict = ("met at every rate**" if len(ok) == len(mine) else
                   f"not met** (met at {', '.join(map(str, ok)) or 'no'} req/s{worst(mine)}).")
        out += ["", f"- **{LABEL[v]}{goal}: {verdict}"]
    return out


def _worst_ratios(rows: list[dict[str, Any]]) -> str:
    return (f"; worst p50 {max(r['p50_ratio_to_budget'] for r in rows):.2f}x, "
            f"worst p99 {max(r['p99_ratio_to_budget'] for r in rows):.2f}x the budget")


def _md_goals(results: dict[str, Any]) -> list[str]:
    rows = goals(results)
    out: list[str] = []
    state = [r for r in rows if r["goal"].startswith("state")]
    reads = [r for r in rows if r["goal"].startswith("reads")]
    out += ["### Goal 1: a state change adds at most 0.5 ms at p50 and 2 ms at p99 over direct", "",
            "Added latency = the variant's percentile minus direct's percentile, same rate, same run. "
            "Ratio = added / budget (<= 1.00 meets it).", "",
            "| engine | rate | added p50 ms | ratio (budget 0.5) | added p99 ms | ratio (budget 2) "
            "| added vs nginx p50 / p99 ms | met? |",
            "|---|---:|---:|---:|---:|---:|---|---|"]
    for r in state:
        out.append(f"| {LABEL[r['variant']]} | {r['rate']} | {_f(r['added_p50_ms'])} | "
                   f"{r['p50_ratio_to_budget']:.2f}x | {_f(r['added_p99_ms'])} | {r['p99_ratio_to_budget']:.2f}x | "
                   f"{_signed(r['added_vs_nginx_p50_ms'])} / {_signed(r['added_vs_nginx_p99_ms'])} | "
                   f"{'**met**' if r['met'] else '**not met**'} |")
    out += _md_verdicts(state, "", _worst_ratios)
    out += _md_breakdown(results)
    out += ["", f"For scale, OPA's published Envoy benchmark (RBAC policy, {ENVOY_REF['rate']} req/s, no "
            f"decision logging) adds about {ENVOY_REF['added_p50']} ms at p50 and {ENVOY_REF['added_p99']} ms "
            "at p99 over Envoy alone; Statelock's numbers above include a durable (fsynced) decision record.",
            "", "### Goal 2: reads add at most 3x what nginx adds", "",
            "Factor = (Statelock p - direct p) / (nginx p - direct p); <= 3.00 meets it. Reads skip the policy, "
            "so both engines take the same path.", "",
            "| variant | rate | Statelock adds p50 / p99 ms | nginx adds p50 / p99 ms | factor p50 | factor p99 "
            "| met? |", "|---|---:|---|---|---:|---:|---|"]
    for r in reads:
        out.append(f"| {LABEL[r['variant']]} | {r['rate']} | {_signed(r['statelock_added_p50_ms'])} / "
                   f"{_signed(r['statelock_added_p99_ms'])} | {_signed(r['nginx_added_p50_ms'])} / "
                   f"{_signed(r['nginx_added_p99_ms'])} | {_factor(r['p50_factor'])} | {_factor(r['p99_factor'])} | "
                   f"{'**met**' if r['met'] else '**not met**'} |")
    out += _md_verdicts(reads, " reads", lambda mine: "")
    return out


def _commit_note(results: dict[str, Any]) -> str:
    end = results.get("git_commit_end")
    if end and end != results["machine"]["git_commit"]:
        return (f" (**the checkout changed to {end} during the run**: processes started later ran newer code; "
                "re-run for one consistent set)")
    return ""


def _background_note(results: dict[str, Any]) -> list[str]:
    loads = [r.get("other_load_cores", 0.0) for by_rate in results.get("fixed_rate", {}).values()
             for by_var in by_rate.values() for r in by_var.values()]
    loads += [r.get("other_load_cores", 0.0) for by_var in results.get("saturation", {}).values()
              for r in by_var.values()]
    if not loads:
        return []
    worst = max(loads)
    busy = sum(1 for x in loads if x > 0.2)
    text = (f"Other processes on the machine (not part of the bench) used up to {worst:.2f} cores during the "
            f"measured runs ({busy} of {len(loads)} runs above 0.2 cores; per-run values in the tables).")
    if worst > 0.2:
        text += (" **Runs with other load have noisier tails: p99 differences of a few ms there are within the noise; "
                 "re-run on a quiet machine before reading much into them.**")
    return [text, ""]


def markdown(results: dict[str, Any]) -> str:
    m = results["machine"]
    plan = results["plan"]
    out = [
        "# Statelock benchmark: latest run", "",
        f"Run {m['date']} on {m['cores']} cores ({m['cpu_model']}), {m['memory_gib']} GiB, Linux {m['kernel']}, "
        f"{m['os']}; Python {m['python']}, OPA {m['opa']}, nginx {m['nginx']}, {m['wrk']}; "
        f"statelock {m['git_commit']}{_commit_note(results)}. "
        f"`make bench` took {results.get('wall_time_s', 0):.0f} s.", "",
        "Everything below comes from this one run. Load generator, upstream, proxy, OPA and the sidecar share "
        f"the same {m['cores']} cores, so absolute numbers are pessimistic; the comparisons are side by side.",
        "Raw numbers: [latest.json](latest.json); chart: [latency.png](latency.png); "
        "profile: [profile.txt](profile.txt); method: [../README.md](../README.md).", "",
        "![latency](latency.png)", "",
        *_background_note(results),
        "## Goals", "",
    ]
    out += _md_goals(results)
    out += ["", "## Latency at fixed rates", "",
            "Constant-rate load (bench/loadgen, wrk2-style, coordinated-omission corrected), "
            f"{plan['fixed_rate_conns']} keep-alive connections, {plan['warmup_s']:g} s warm-up, then "
            + ", ".join(f"{d:g} s at {r}/s" for r, d in plan["fixed_rate_s"].items())
            + ". Latency is client-side, request sent to last byte received.", "",
            "### Reads: GET /v2.1/servers/{id}", ""]
    out += _md_fixed(results, "read")
    out += ["", "### State changes: POST /v2.1/servers/{id}/action (soft reboot, allowed)", ""]
    out += _md_fixed(results, "state_change")
    out += ["", "## Throughput at saturation", "",
            f"wrk -t{plan['saturation_threads']} -c{plan['saturation_conns']} -d{plan['saturation_s']:g}s with "
            "bench/lua/read.lua and bench/lua/action.lua.", "",
            "| kind | variant | req/s | p50 ms | p99 ms | errors | CPU µs/req (process) | other load (cores) |",
            "|---|---|---:|---:|---:|---|---|---:|"]
    for kind, by_var in results["saturation"].items():
        for v in VARIANTS:
            r = by_var[v]
            errs = {k: n for k, n in r["errors"].items() if n}
            cpu = ", ".join(f"{k} {val:g}" for k, val in r.get("cpu_us_per_request", {}).items())
            out.append(f"| {kind} | {LABEL[v]} | {r['rps']:.0f} | {_f(r['latency_ms']['p50'])} | "
                       f"{_f(r['latency_ms']['p99'])} | {errs or 'none'} | {cpu} | "
                       f"{_f(r.get('other_load_cores'), 2)} |")
    st = results.get("server_timers", {})
    if st:
        out += ["", "## Inside Statelock: the decision records' own timers (state changes)", "",
                "From the `metrics` of each decision record (`timer_lock_read_ns`: effective-lock read incl. "
                "target resolution; `timer_policy_eval_ns`: the engine call) and the completion records "
                "(upstream latency as the sidecar saw it). Record wait = completion timestamp - decision "
                "timestamp - upstream latency: the durable append (group-commit window, write, fsync).", "",
                "| variant | load | lock read p50 / p99 ms | policy eval p50 / p99 ms | record wait p50 / p99 ms "
                "| upstream p50 / p99 ms |",
                "|---|---|---|---|---|---|"]
        for v, by_rate in st.items():
            for rate, t in by_rate.items():
                load = f"{rate}/s" if rate != "saturation" else "saturation"
                out.append(f"| {LABEL[v]} | {load} | {_p50_p99(t.get('lock_read_ms', {}))} | "
                           f"{_p50_p99(t.get('policy_eval_ms', {}))} | {_p50_p99(t.get('record_wait_ms', {}))} | "
                           f"{_p50_p99(t.get('upstream_ms', {}))} |")
    ea = results.get("engine_alone")
    if ea:
        out += ["", "## The decision engine alone (same inputs, one at a time)", "",
                "`EmbeddedEngine.decide_sync` (regopy, in process) against `OpaEngine.decide` (opa-python-client "
                "over keep-alive HTTP, what the sidecar uses), a bare aiohttp POST, and OPA's own timers "
                f"(`?metrics`). Engines agree on every input: **{ea['all_agree']}**.", "",
                "| input | decision | embedded p50 / p99 µs | OPA via client p50 / p99 µs | OPA bare POST p50 / p99 µs "
                "| OPA handler p50 / p99 µs | OPA eval p50 / p99 µs |",
                "|---|---|---|---|---|---|---|"]
        for name, r in ea["inputs"].items():
            om = r["opa_server_metrics_us"]
            out.append(f"| {name} | {'allow' if r['allow'] else 'deny ' + str(r['status'])} | "
                       f"{_p50_p99(r['embedded_decide_sync_us'], 0)} | {_p50_p99(r['opa_client_decide_us'], 0)} | "
                       f"{_p50_p99(r['opa_raw_post_us'], 0)} | {_p50_p99(om['timer_server_handler'], 0)} | "
                       f"{_p50_p99(om['timer_rego_query_eval'], 0)} |")
    lt = results.get("lock_table")
    if lt:
        out += ["", "## Lock-table size", "",
                "Rows generated into the sidecar's schema (instance locks on other instances, ~10 % expired, one "
                "project and one host lock so target resolution is on, as in a real cloud). "
                "In process: `has_scoped_locks` + `effective_locks` on `SqliteLockStore`, then `decide_sync`. "
                f"End to end: Statelock (embedded) on that table, state changes at {plan['lock_table_rate']:g}/s "
                f"for {plan['lock_table_duration_s']:g} s.", "",
                "| rows | DB MB | lock read p50 / p99 µs | decide p50 / p99 µs | end-to-end p50 / p99 ms "
                "| server lock read p50 / p99 ms | RSS MiB |",
                "|---:|---:|---|---|---|---|---:|"]
        for n, r in lt.items():
            ip = r["in_process"]
            e = r["end_to_end"]["corrected_ms"]
            sl = r["server_timers"].get("lock_read_ms", {})
            out.append(f"| {int(n):,} | {r['table']['file_bytes'] / 1e6:.1f} | {_p50_p99(ip['lock_read_us'], 0)} | "
                       f"{_p50_p99(ip['decide_us'], 0)} | {_p50_p99(e)} | {_f(sl.get('p50'))} / {_f(sl.get('p99'))} | "
                       f"{r['rss_kib'].get('VmRSS', 0) / 1024:.0f} |")
        last = list(lt.values())[-1]["in_process"]["query_plans"]
        out += ["", f"SQLite plans at the largest size: `has_scoped_locks`: {last['has_scoped_locks']}; "
                f"`effective_locks`: {last['effective_locks']}."]
    aa = results.get("audit_append")
    if aa:
        default = aa.get("default_flush_window_ms")
        out += ["", "## The decision record alone", "",
                "`JsonlAuditLog.append(durable=True)`, one request every 5 ms (a lightly loaded sidecar), "
                f"with a 2 ms group-commit window and with none (the sidecar's default `audit.flush_window_ms` "
                f"is {default:g} ms); and a bare 1.5 KB write + fsync, + fdatasync, and + fdatasync into a "
                "preallocated file, on the same disk.", "",
                "| what | p50 µs | p90 µs | p99 µs | max µs |", "|---|---:|---:|---:|---:|"]
        for name, s in aa.items():
            if not isinstance(s, dict):
                continue
            out.append(f"| {name} | {s['p50']:.0f} | {s['p90']:.0f} | {s['p99']:.0f} | {s['max']:.0f} |")
    rss = results.get("rss_kib")
    if rss:
        out += ["", "## Memory (RSS from /proc)", "", "| when | process | VmRSS MiB | VmHWM (peak) MiB |",
                "|---|---|---:|---:|"]
        for when, procs in rss.items():
            for name, r in procs.items():
                out.append(f"| {when} | {name} | {r.get('VmRSS', 0) / 1024:.1f} | {r.get('VmHWM', 0) / 1024:.1f} |")
    prof = results.get("profile")
    if prof and "error" not in prof:
        out += ["", "## Profile of the state-changing path (top 10 by self time)", "",
                f"py-spy on Statelock (embedded) under saturated state changes ({prof['load'].get('rps')} req/s); "
                f"{prof['samples']} samples. Threads: "
                + ", ".join(f"{k} {v}%" for k, v in prof["threads_pct"].items())
                + ". Full ranking: [profile.txt](profile.txt).", "",
                "| self % | total % | function |", "|---:|---:|---|"]
        for r in prof["top_self"][:10]:
            out.append(f"| {r['self_pct']:.1f} | {r['total_pct']:.1f} | `{r['function']}` |")
        out += ["", "Areas: " + ", ".join(f"{k} {v}%" for k, v in prof["areas_pct"].items())]
    elif prof:
        out += ["", "## Profile", "", f"Not taken: {prof['error']}"]
    return "\n".join(out) + "\n"


# -- chart ----------------------------------------------------------------------------------


def chart(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    colors = {"direct": "#555555", "nginx": "#2a9d8f", "statelock_embedded": "#e76f51", "statelock_opa": "#264653"}
    fig, axes = plt.subplots(1, 3, figsize=(16, 5.2))
    for ax, kind, title in ((axes[0], "read", "Reads: GET /v2.1/servers/{id}"),
                            (axes[1], "state_change", "State changes: POST .../action")):
        fr = results["fixed_rate"][kind]
        rates = [int(r) for r in fr]
        for v in VARIANTS:
            p50 = [fr[str(r)][v]["corrected_ms"]["p50"] for r in rates]
            p99 = [fr[str(r)][v]["corrected_ms"]["p99"] for r in rates]
            ax.plot(rates, p50, "-o", color=colors[v], label=f"{LABEL[v]} p50")
            ax.plot(rates, p99, "--^", color=colors[v], alpha=0.7, label=f"{LABEL[v]} p99")
        ax.set_yscale("log")
        ax.set_xticks(rates)
        ax.set_xlabel("offered load (req/s, constant rate)")
        ax.set_ylabel("latency (ms, log scale)")
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
    axes[0].legend(fontsize=7, ncol=2)
    ax = axes[2]
    add = added(results)["state_change"]
    rates = [int(r) for r in add]
    width = 0.2
    xs = list(range(len(rates)))
    for i, v in enumerate(("nginx", *STATELOCK)):
        for j, p in enumerate(("p50", "p99")):
            vals = [max(add[str(r)][v]["vs_direct"][p], 0.01) for r in rates]
            off = (i * 2 + j - 2.5) * width / 1.6
            ax.bar([x + off for x in xs], vals, width / 1.7, color=colors[v], alpha=1.0 if p == "p50" else 0.5,
                   label=f"{LABEL[v]} {p}")
    ax.axhline(STATE_P50_BUDGET_MS, color="#e9c46a", ls="-", lw=2, label="goal: p50 budget 0.5 ms")
    ax.axhline(STATE_P99_BUDGET_MS, color="#f4a261", ls="--", lw=2, label="goal: p99 budget 2 ms")
    ax.set_yscale("log")
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{r}/s" for r in rates])
    ax.set_ylim(bottom=0.01)
    ax.set_ylabel("added over direct (ms, log scale; <= 0.01 drawn at 0.01)")
    ax.set_title("State changes: latency added over direct")
    ax.legend(fontsize=7)
    ax.grid(True, axis="y", which="both", alpha=0.3)
    m = results["machine"]
    fig.suptitle(f"Statelock benchmark {m['date']}: {m['cores']} cores, {m['cpu_model']}", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(results: dict[str, Any], outdir: Path) -> None:
    """Write latest.json, latest.md, latency.png and profile.txt into ``outdir``."""
    outdir.mkdir(parents=True, exist_ok=True)
    results["added_ms"] = added(results)
    results["goals"] = goals(results)
    results["breakdown_100rps"] = {v: breakdown(results, v) for v in STATELOCK}
    (outdir / "latest.json").write_text(json.dumps(results, indent=1, sort_keys=False) + "\n")
    if "profile" in results:
        text = render_profile(results["profile"])
        if "profile_read" in results:
            text += "\n\n" + "=" * 100 + "\n\n" + render_profile(results["profile_read"], title=(
                "Statelock read path (GET /v2.1/servers/{id}, no policy call) under load, for comparison"))
        (outdir / "profile.txt").write_text(text)
    chart(results, outdir / "latency.png")
    (outdir / "latest.md").write_text(markdown(results))
