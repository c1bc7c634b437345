"""The decision engines alone, side by side in one run: ``python -m bench.engines [--n N]``.

Starts a real ``opa run --server`` on the repository's bundle and measures, on the
same inputs (a reboot under 0, 2 and 20 locks), the embedded engine (OPA-compiled
Wasm, in process), OPA over REST (the client the sidecar uses, a bare POST, and
OPA's own eval timer) and, as "before", regopy in its own process when it is
installed (bench/setup.sh installs it). Writes bench/results/engines.md and
engines.json. ``make bench`` runs the same measurement as part of the whole bench.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from bench import micro
from bench.markdown import _md_engine_alone
from bench.procs import Processes, free_port, http_ok
from sidecar.policy.wasm.compiler import find_opa

ROOT = Path(__file__).resolve().parents[1]
BUNDLE = ROOT / "policies"
RESULTS = ROOT / "bench" / "results"
WORK = ROOT / "bench" / ".work" / "engines"


def main() -> int:
    """Run the engines bench and write its results; returns the exit code."""
    parser = argparse.ArgumentParser(prog="python -m bench.engines", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=5000, help="decisions measured per engine and input")
    args = parser.parse_args()
    WORK.mkdir(parents=True, exist_ok=True)
    procs = Processes(WORK)
    try:
        port = free_port()
        procs.start("opa", [find_opa(), "run", "--server", "--addr", f"127.0.0.1:{port}", "--log-level", "error",
                            "--skip-version-check", "--ignore", "*_test.rego", "--bundle", str(BUNDLE)],
                    cwd=ROOT, ready=lambda: http_ok(f"http://127.0.0.1:{port}/health?bundles"))
        print(f"bench.engines: {args.n} decisions per engine and input (OPA on port {port})")
        result = asyncio.run(micro.engine_alone(BUNDLE, f"http://127.0.0.1:{port}", args.n, max(args.n // 5, 200)))
    finally:
        procs.close()
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                            text=True, check=False).stdout.strip()
    result["run"] = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "commit": commit,
                     "python": platform.python_version(), "machine": platform.node()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "engines.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# The decision engines alone: run {result['run']['at']} on {commit}", ""]
    lines += _md_engine_alone(result, {})[1:]
    (RESULTS / "engines.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
