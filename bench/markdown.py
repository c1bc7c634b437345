"""latest.md: the run's tables and goal verdicts as Markdown, from the results ``bench.run`` collects."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bench.figures import ENVOY_REF, LABEL, STATELOCK, VARIANTS, acceptance, added, breakdown, goals


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


def _md_row(*cells: object) -> str:
    """One Markdown table row."""
    return "| " + " | ".join(str(cell) for cell in cells) + " |"


def _cpu(result: dict[str, Any]) -> str:
    """A run's CPU microseconds per request, by process."""
    return ", ".join(f"{k} {val:g}" for k, val in result.get("cpu_us_per_request", {}).items())


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
            bad = {k: n for k, n in r["statuses"].items() if k not in ("200", "202")}
            ach = f"{r['rate_achieved']:g}" + (f" ({bad} other statuses)" if bad else "")
            if r["rate_achieved"] < 0.95 * r["rate_target"] or r.get("late_sends", 0) > 0.05 * r["requests"]:
                ach += " **overloaded**"
            out.append(_md_row(rate, LABEL[v], *(_f(c[p]) for p in ("p50", "p90", "p99", "p99.9", "max")), a, ach,
                               _cpu(r), _f(r.get("other_load_cores"), 2)))
    return out


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
        out += [_md_row(k, f"{val:.3f}") for k, val in b["parts_ms"].items()]
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


def _met(row: dict[str, Any]) -> str:
    return "**met**" if row["met"] else "**not met**"


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
        out.append(_md_row(LABEL[r["variant"]], r["rate"], _f(r["added_p50_ms"]), f"{r['p50_ratio_to_budget']:.2f}x",
                           _f(r["added_p99_ms"]), f"{r['p99_ratio_to_budget']:.2f}x",
                           f"{_signed(r['added_vs_nginx_p50_ms'])} / {_signed(r['added_vs_nginx_p99_ms'])}",
                           _met(r)))
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
        out.append(_md_row(LABEL[r["variant"]], r["rate"],
                           f"{_signed(r['statelock_added_p50_ms'])} / {_signed(r['statelock_added_p99_ms'])}",
                           f"{_signed(r['nginx_added_p50_ms'])} / {_signed(r['nginx_added_p99_ms'])}",
                           _factor(r["p50_factor"]), _factor(r["p99_factor"]), _met(r)))
    out += _md_verdicts(reads, " reads", lambda mine: "")
    return out


def _md_acceptance(results: dict[str, Any]) -> list[str]:
    """Issue 18's acceptance as ratios (closed loop, saturation with workers, the soak), then the raw numbers."""
    rows = acceptance(results)
    fp = results.get("fastpath")
    if not rows or not fp:
        return []
    out = ["### The fast path (issue 18): each goal as a ratio", "",
           "Closed loop on one keep-alive connection (`wrk -t1 -c1 -d5s`), Statelock (embedded) with its defaults; "
           "saturation `wrk -t1 -c16`; the soak: state changes in `wrk -c4` rounds after the fixed-rate runs, "
           "VmRSS after each. Ratio = value / budget (<= 1.00 meets it), for saturation share / goal "
           "(>= 1.00 meets it).", "",
           "| goal | value | budget | ratio | met? |", "|---|---:|---:|---:|---|"]
    for r in rows:
        ratio = "n/a" if r["ratio"] is None else f"{r['ratio']:.2f}"
        out.append(_md_row(r["goal"], f"{r['value']} {r['unit']}", r["budget"], ratio, _met(r)))
    out += ["", "| closed loop | direct p50 / p99 ms | nginx | Statelock (embedded) |", "|---|---|---|---|"]
    for kind, by_var in fp["closed_loop"].items():
        out.append(_md_row(kind, *(_p50_p99(by_var.get(v, {})) for v in ("direct", "nginx", "statelock_embedded"))))
    sat = fp["saturation"]
    out += ["", f"State changes at saturation: upstream alone {sat['upstream']['rps']:.0f} req/s; "
            + "; ".join(f"workers {w}: " + (f"{r['rps']:.0f} req/s (p50 {r['p50']:.2f} ms, p99 {r['p99']:.2f} ms)"
                                            if "rps" in r else f"not run ({r.get('error', '?')})")
                        for w, r in sat["workers"].items()) + "."]
    soak = fp["soak"]
    points = ", ".join(f"{s_['requests']}: {s_['rss_kib'] / 1024:.1f}" for s_ in soak["samples"][::max(1, len(
        soak["samples"]) // 8)])
    out += ["", f"Soak: {soak['requests']:,} state changes ({soak['errors']} errors), RSS {soak['growth']:+.1%} "
            f"({soak['kib_per_1000']} KiB per 1,000); requests: MiB {points}."
            + (f" The decision indexer process: RSS {soak['indexer_growth']:+.1%} "
               f"({soak['samples'][0]['indexer_rss_kib'] / 1024:.1f} -> "
               f"{soak['samples'][-1]['indexer_rss_kib'] / 1024:.1f} MiB)."
               if soak.get("indexer_growth") is not None else ""), ""]
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
    steal = results.get("steal_share")
    stolen = [] if steal is None else [
        f"The hypervisor took {steal:.1%} of this machine's core time for other guests during the run (steal, "
        "in /proc/stat)" + (": **a contended host, where every latency is longer and noisier than on a quiet "
                            "one; read the ratios, not the absolute numbers.**" if steal > 0.05 else "."), ""]
    if not loads:
        return stolen
    worst = max(loads)
    busy = sum(1 for x in loads if x > 0.2)
    text = (f"Other processes on the machine (not part of the bench) used up to {worst:.2f} cores during the "
            f"measured runs ({busy} of {len(loads)} runs above 0.2 cores; per-run values in the tables).")
    if worst > 0.2:
        text += (" **Runs with other load have noisier tails: p99 differences of a few ms there are within the noise; "
                 "re-run on a quiet machine before reading much into them.**")
    return [text, "", *stolen]


def markdown(results: dict[str, Any]) -> str:
    """The run as Markdown: machine, goals, then one section per measurement the run holds."""
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
    out += _md_acceptance(results)
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
    for key, section in _SECTIONS:
        if results.get(key):
            out += section(results[key], results)
    return "\n".join(out) + "\n"


def _md_saturation(saturation: dict[str, Any], results: dict[str, Any]) -> list[str]:
    plan = results["plan"]
    out = ["", "## Throughput at saturation", "",
           f"wrk -t{plan['saturation_threads']} -c{plan['saturation_conns']} -d{plan['saturation_s']:g}s with "
           "bench/lua/read.lua and bench/lua/action.lua.", "",
           "| kind | variant | req/s | p50 ms | p99 ms | errors | CPU µs/req (process) | other load (cores) |",
           "|---|---|---:|---:|---:|---|---|---:|"]
    for kind, by_var in saturation.items():
        for v in VARIANTS:
            r = by_var[v]
            errs = {k: n for k, n in r["errors"].items() if n}
            out.append(_md_row(kind, LABEL[v], f"{r['rps']:.0f}", _f(r["latency_ms"]["p50"]),
                               _f(r["latency_ms"]["p99"]), errs or "none", _cpu(r), _f(r.get("other_load_cores"), 2)))
    return out


def _md_server_timers(st: dict[str, Any], results: dict[str, Any]) -> list[str]:
    out = ["", "## Inside Statelock: the decision records' own timers (state changes)", "",
           "From the `metrics` of each decision record (`timer_lock_read_ns`: effective-lock read incl. "
           "target resolution; `timer_policy_eval_ns`: the engine call) and the completion records "
           "(upstream latency as the sidecar saw it). Record wait = completion timestamp - decision "
           "timestamp - upstream latency: the durable append (group-commit window, write, fsync).", "",
           "| variant | load | lock read p50 / p99 ms | policy eval p50 / p99 ms | record wait p50 / p99 ms "
           "| upstream p50 / p99 ms |",
           "|---|---|---|---|---|---|"]
    timers = ("lock_read_ms", "policy_eval_ms", "record_wait_ms", "upstream_ms")
    for v, by_rate in st.items():
        for rate, t in by_rate.items():
            load = f"{rate}/s" if rate != "saturation" else "saturation"
            out.append(_md_row(LABEL[v], load, *(_p50_p99(t.get(timer, {})) for timer in timers)))
    return out


def _md_engine_alone(ea: dict[str, Any], results: dict[str, Any]) -> list[str]:
    before = ea.get("regopy_before")
    out = ["", "## The decision engine alone (same inputs, one at a time)", "",
           "`EmbeddedEngine.decide_sync` (the bundle compiled by OPA to Wasm, in process on wasmtime) against "
           "`OpaEngine.decide` (opa-python-client over keep-alive HTTP, what the sidecar uses), a bare aiohttp "
           "POST, OPA's own timers (`?metrics`) and, as *before*, the regopy engine it replaced "
           + (f"(regopy {before['version']}, in its own process)" if before else "(regopy not installed: no column)")
           + f". The Wasm engine and OPA return the same decision document on every input: **{ea['all_agree']}**."
           " Goal: embedded p50 <= 50 µs with 0 and 2 locks.", "",
           "| input | decision | embedded (Wasm) p50 / p99 µs | before: regopy p50 / p99 µs "
           "| OPA via client p50 / p99 µs | OPA bare POST p50 / p99 µs | OPA eval p50 / p99 µs | goal |",
           "|---|---|---|---|---|---|---|---|"]
    for name, r in ea["inputs"].items():
        om = r["opa_server_metrics_us"]
        emb = r["embedded_decide_sync_us"]
        regopy = _p50_p99(r["regopy_before_us"], 0) if "regopy_before_us" in r else "-"
        goal = "-" if name.startswith("20") else ("met" if emb["p50"] <= 50 else "**not met**")
        out.append(_md_row(name, "allow" if r["allow"] else f"deny {r['status']}", _p50_p99(emb, 0), regopy,
                           *(_p50_p99(timing, 0) for timing in (r["opa_client_decide_us"], r["opa_raw_post_us"],
                                                                 om["timer_rego_query_eval"])), goal))
    return out


def _md_lock_table(lt: dict[str, Any], results: dict[str, Any]) -> list[str]:
    plan = results["plan"]
    out = ["", "## Lock-table size", "",
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
        sl = r["server_timers"].get("lock_read_ms", {})
        out.append(_md_row(f"{int(n):,}", f"{r['table']['file_bytes'] / 1e6:.1f}", _p50_p99(ip["lock_read_us"], 0),
                           _p50_p99(ip["decide_us"], 0), _p50_p99(r["end_to_end"]["corrected_ms"]),
                           f"{_f(sl.get('p50'))} / {_f(sl.get('p99'))}", f"{r['rss_kib'].get('VmRSS', 0) / 1024:.0f}"))
    last = list(lt.values())[-1]["in_process"]["query_plans"]
    return [*out, "", f"SQLite plans at the largest size: `has_scoped_locks`: {last['has_scoped_locks']}; "
            f"`effective_locks`: {last['effective_locks']}."]


def _md_audit_append(aa: dict[str, Any], results: dict[str, Any]) -> list[str]:
    out = ["", "## The decision record alone", "",
           "`JsonlAuditLog.append(durable=True)`, one request every 5 ms (a lightly loaded sidecar), "
           f"with a 2 ms group-commit window and with none (the sidecar's default `audit.flush_window_ms` "
           f"is {aa.get('default_flush_window_ms'):g} ms); and a bare 1.5 KB write + fsync, + fdatasync, and + "
           "fdatasync into a preallocated file, on the same disk.", "",
           "| what | p50 µs | p90 µs | p99 µs | max µs |", "|---|---:|---:|---:|---:|"]
    out += [_md_row(name, *(f"{s[p]:.0f}" for p in ("p50", "p90", "p99", "max")))
            for name, s in aa.items() if isinstance(s, dict)]
    return out


def _md_memory(rss: dict[str, Any], results: dict[str, Any]) -> list[str]:
    return ["", "## Memory (RSS from /proc)", "", "| when | process | VmRSS MiB | VmHWM (peak) MiB |",
            "|---|---|---:|---:|",
            *(_md_row(when, name, f"{r.get('VmRSS', 0) / 1024:.1f}", f"{r.get('VmHWM', 0) / 1024:.1f}")
              for when, procs in rss.items() for name, r in procs.items())]


def _md_profile(prof: dict[str, Any], results: dict[str, Any]) -> list[str]:
    if "error" in prof:
        return ["", "## Profile", "", f"Not taken: {prof['error']}"]
    return ["", "## Profile of the state-changing path (top 10 by self time)", "",
            f"py-spy on Statelock (embedded) under saturated state changes ({prof['load'].get('rps')} req/s); "
            f"{prof['samples']} samples. Threads: "
            + ", ".join(f"{k} {v}%" for k, v in prof["threads_pct"].items())
            + ". Full ranking: [profile.txt](profile.txt).", "",
            "| self % | total % | function |", "|---:|---:|---|",
            *(_md_row(f"{r['self_pct']:.1f}", f"{r['total_pct']:.1f}", f"`{r['function']}`")
              for r in prof["top_self"][:10]),
            "", "Areas: " + ", ".join(f"{k} {v}%" for k, v in prof["areas_pct"].items())]


# (results key, its section): a section shows only what the run measured.
_SECTIONS: tuple[tuple[str, Callable[[dict[str, Any], dict[str, Any]], list[str]]], ...] = (
    ("saturation", _md_saturation),
    ("server_timers", _md_server_timers),
    ("engine_alone", _md_engine_alone),
    ("lock_table", _md_lock_table),
    ("audit_append", _md_audit_append),
    ("rss_kib", _md_memory),
    ("profile", _md_profile),
)
