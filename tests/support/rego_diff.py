"""Deciding the same Rego with the real OPA (``opa eval``) and with the embedded Wasm engine.

``Outcome`` is what one evaluation gave: a value, undefined, or an error. Two
evaluations agree when both are the same value (JSON-equal: sets come out as
sorted arrays from both), both undefined, or both errors.

``compare_expressions`` puts many expressions into one module as rules
``c_0 := <expr>``... and evaluates ``data.t`` once with each engine, so hundreds
of builtin calls cost two ``opa`` runs. An expression whose builtin fails is
undefined (OPA's non-strict answer), so its rule is absent from both results.
Expressions must type-check (pass ill-typed operands through ``input``), or the
whole module is refused by both engines.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.errors import PolicyError
from sidecar.policy.wasm.compiler import compile_wasm
from sidecar.policy.wasm.runtime import WasmPolicy
from sidecar.policy.wasm.values import result_json
from tests.support.opa_server import run_opa

__all__ = ["Outcome", "compare_expressions", "opa_outcome", "wasm_outcome"]

_NO_INPUT = object()


@dataclass(frozen=True)
class Outcome:
    """``kind`` is "value", "undefined" or "error"; ``value`` the result, ``error`` the message."""

    kind: str
    value: Any = None
    error: str = ""

    def agrees(self, other: Outcome) -> bool:
        if self.kind != other.kind:
            return False
        return self.kind != "value" or _canonical(self.value) == _canonical(other.value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


def opa_outcome(modules: Mapping[str, str], query_path: str, input_doc: Any = _NO_INPUT,
                data: Mapping[str, Any] | None = None) -> Outcome:
    """What ``opa eval data.<query_path>`` answers (``query_path`` as ``pkg/rule``)."""
    with tempfile.TemporaryDirectory(prefix="statelock-diff-") as tmp:
        args = ["eval", "-f", "json"]
        for name, text in modules.items():
            path = Path(tmp, name)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
            args += ["-d", str(path)]
        if data is not None:
            Path(tmp, "data.json").write_text(json.dumps(data), encoding="utf-8")
            args += ["-d", str(Path(tmp, "data.json"))]
        if input_doc is not _NO_INPUT:
            Path(tmp, "input.json").write_text(json.dumps(input_doc), encoding="utf-8")
            args += ["-i", str(Path(tmp, "input.json"))]
        args.append("data." + query_path.replace("/", "."))
        done = run_opa(*args)
    if done.returncode != 0:
        return Outcome("error", error=(done.stderr or done.stdout).strip())
    doc = json.loads(done.stdout)
    if "errors" in doc:
        return Outcome("error", error=json.dumps(doc["errors"]))
    results = doc.get("result") or []
    if not results:
        return Outcome("undefined")
    return Outcome("value", results[0]["expressions"][0]["value"])


def wasm_outcome(modules: Mapping[str, str], query_path: str, input_doc: Any = _NO_INPUT,
                 data: Mapping[str, Any] | None = None) -> Outcome:
    """What the embedded engine answers for the same question (compile errors included)."""
    try:
        policy = WasmPolicy(compile_wasm(modules, [query_path]), data or {})
        raw = None if input_doc is _NO_INPUT else json.dumps(input_doc).encode()
        results = result_json(policy.evaluate_raw(policy.entrypoint_id(query_path), raw, values_out=True))
    except PolicyError as exc:
        return Outcome("error", error=exc.message)
    if not results:
        return Outcome("undefined")
    return Outcome("value", results[0].get("result"))


def compare_expressions(expressions: Sequence[str], input_doc: Any = _NO_INPUT,
                        imports: str = "") -> list[tuple[str, Any, Any]]:
    """The expressions on which OPA and the embedded engine disagree: (expr, OPA's, ours).

    A value missing from a side is shown as "undefined". Raises AssertionError when
    the module does not compile for OPA (fix the expressions, not the engine).
    """
    lines = ["package t", imports] + [f"c_{i} := {expr}" for i, expr in enumerate(expressions)]
    modules = {"t.rego": "\n".join(lines) + "\n"}
    theirs = opa_outcome(modules, "t", input_doc)
    ours = wasm_outcome(modules, "t", input_doc)
    if theirs.kind == "error":
        raise AssertionError(f"opa refused the test module: {theirs.error}")
    if ours.kind == "error":
        return [("(whole module)", "compiled", ours.error)]
    mine = ours.value or {}
    out = []
    for i, expr in enumerate(expressions):
        key = f"c_{i}"
        a = theirs.value.get(key, "undefined")
        b = mine.get(key, "undefined")
        if _canonical(a) != _canonical(b):
            out.append((expr, a, b))
    return out
