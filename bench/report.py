"""The report files of a run: latest.json, latest.md, latency.png and profile.txt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bench.figures import LABEL, STATE_P50_BUDGET_MS, STATE_P99_BUDGET_MS, STATELOCK, VARIANTS, added, breakdown, goals
from bench.markdown import markdown
from bench.profiling import render as render_profile


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
