"""The engine before the Wasm one, for the bench's "before" column: regopy (rego-cpp) on the same bundle.

``python -m bench.regopy_before BUNDLE N < inputs.json`` prints, as JSON, the
per-decision latency (µs) of each named input, measured as the old
``EmbeddedEngine.decide_sync`` did it: set the input (strings JSON-escaped, as
rego-cpp stored them) and query the compiled entry point. Run in its own process,
so regopy's allocator never shares one with the sidecar (the leak of issue 18).
regopy is a bench-only package (bench/setup.sh installs it), not a dependency.
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Mapping
from typing import Any

from bench.micro import stats_us
from sidecar.policy.bundle import load_bundle

ENTRYPOINT = "statelock/authz/decision"
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)[1:-1] if _NEEDS_ESCAPE.search(value) else value
    if isinstance(value, Mapping):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_escaped(v) for v in value]
    return value


def main(bundle_dir: str, n: int) -> dict[str, Any]:
    """Per-input latency of regopy on ``bundle_dir``; the inputs come as a JSON object on stdin."""
    import regopy  # type: ignore[import-not-found]  # NOTE: bench-only, see the docstring

    inputs: dict[str, Any] = json.load(sys.stdin)
    bundle = load_bundle(bundle_dir)
    builder = regopy.Interpreter()
    builder.add_data_json(json.dumps(bundle.data, ensure_ascii=False))
    for name, text in bundle.modules.items():
        builder.add_module(name, text)
    plan = builder.build(None, [ENTRYPOINT])
    interpreter = regopy.Interpreter()
    out: dict[str, Any] = {"version": getattr(regopy, "__version__", "?"), "inputs": {}}
    for name, doc in inputs.items():
        def decide(doc: Any = doc) -> Any:
            interpreter.set_input(regopy.Input(_escaped(doc)))
            return interpreter.query_bundle_entrypoint(plan, ENTRYPOINT)

        first = decide()
        for _ in range(200):
            decide()
        ns = []
        for _ in range(n):
            t = time.perf_counter_ns()
            decide()
            ns.append(time.perf_counter_ns() - t)
        result = first.results[0].expressions[0] if first.ok() and first.results else None
        out["inputs"][name] = {"us": stats_us(ns), "result": result}
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
