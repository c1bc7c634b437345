"""One compliance case run on the embedded Wasm engine and judged as OPA's own Wasm e2e test judges it.

``judge`` compiles the case's modules (``module-0.rego``...) for the entry point its
query names (``tests.compliance.cache`` keeps the result), loads the case's data,
evaluates once with its input and decides:

- ``refused``: the engine refused the module for host builtins it lacks (``builtins``);
- ``pass``: the answer is the one the case wants, by the rules of OPA's
  ``internal/wasm/sdk/test/e2e`` runner: the result set is compared as a set of
  rows, Rego sets come out as arrays in Rego's order, numbers compare by value,
  ``sort_bindings`` compares a binding's array as a set. A case whose error shows
  only with strict builtin errors (``strict_error``) wants an empty result, since
  Wasm has no strict mode; any other wanted error must be a conflict
  (``eval_conflict_error``: "var assignment conflict" or "object insert conflict");
- ``wrong``: anything else (another answer, an error for a value, a compile failure),
  with ``reason`` saying what differed.

Exceptions (``tests.compliance.exceptions``) are applied by the caller, not here.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from sidecar.errors import PolicyError
from sidecar.policy.wasm import values
from sidecar.policy.wasm.compiler import DivergentBuiltin
from sidecar.policy.wasm.runtime import UnsupportedBuiltin, WasmPolicy
from tests.compliance.cache import compiled_wasm, prepare_engine
from tests.compliance.cases import Case, applicable

__all__ = ["Outcome", "Verdict", "decide", "input_text", "judge", "rows_agree", "to_json"]

Outcome = Literal["pass", "refused", "excepted", "wrong"]
CONFLICT_TEXTS = ("var assignment conflict", "object insert conflict")
_SHOWN = 300


@dataclass(frozen=True)
class Verdict:
    """How one case ended; ``builtins`` are the missing ones when ``outcome`` is "refused"."""

    case_id: str
    note: str
    outcome: Outcome
    reason: str = ""
    builtins: tuple[str, ...] = field(default=())
    seconds: float = 0.0


# --- values as OPA's e2e runner sees them --------------------------------------------


def _go_json(value: Any, escape_html: bool = True) -> str:
    """``value`` as Go's ``json.Encoder`` writes it (compact; HTML characters escaped unless told)."""
    if isinstance(value, values.BigNumber):
        return str(value)
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_json(k, escape_html)}:{_go_json(v, escape_html)}"
                              for k, v in sorted(value.items())) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_go_json(v, escape_html) for v in value) + "]"
    text = json.dumps(value, ensure_ascii=False)
    if escape_html:
        for char, escaped in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"),
                              ("\u2028", "\\u2028"), ("\u2029", "\\u2029")):
            text = text.replace(char, escaped)
    return text


def to_json(value: Any) -> Any:
    """A Rego value as ``ast.JSON`` makes it: sets become arrays in Rego's order, non-string keys their JSON text."""
    if isinstance(value, values.Key):
        return to_json(value.value)
    if isinstance(value, values.RegoSet):
        return [to_json(v) for v in value]
    if isinstance(value, list):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            plain = to_json(key)
            out[plain if isinstance(plain, str) and not isinstance(plain, values.BigNumber) else _go_json(plain)] = \
                to_json(item)
        return out
    return value


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int | values.BigNumber):
        return Decimal(value)
    if isinstance(value, values.Number):
        return value.exact()
    if isinstance(value, float):
        return Decimal(repr(value))
    return None


def _same(a: Any, b: Any) -> bool:
    """Equal as Rego values (``ast.Compare`` == 0): numbers by value, booleans never numbers."""
    na, nb = _number(a), _number(b)
    if na is not None or nb is not None:
        return na is not None and nb is not None and na == nb
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    return type(a) is type(b) and bool(a == b)


def _sorted_bindings(row: dict[str, Any]) -> dict[str, Any]:
    return {k: sorted(v, key=values.sort_key) if isinstance(v, list) else v for k, v in row.items()}


def rows_agree(want: list[dict[str, Any]], got: list[dict[str, Any]], sort_bindings: bool) -> bool:
    """Whether two result sets are the same set of rows (``sort_bindings``: arrays as sets)."""
    if sort_bindings:
        want, got = [_sorted_bindings(r) for r in want], [_sorted_bindings(r) for r in got]
    return all(any(_same(w, g) for g in got) for w in want) and all(any(_same(g, w) for w in want) for g in got)


# --- input -------------------------------------------------------------------------

_STRING = re.compile(r'("(?:[^"\\]|\\.)*")')
_TRAILING_COMMA = re.compile(r",(\s*[}\]])")


def input_text(case: Case) -> bytes | None:
    """The input the e2e runner sends: ``input_term`` as a Rego term's text, else the input's JSON, else none.

    The term's text loses the trailing commas Rego allows (``{"a": 1,}``), as OPA's
    ``Term.String()`` does. Raises ValueSyntaxError when ``input_term`` is not a plain
    value (the Wasm module parses values, not Rego expressions).
    """
    if case.input_term is not None:
        parts = _STRING.split(case.input_term.strip())
        text = "".join(p if i % 2 else _TRAILING_COMMA.sub(r"\1", p) for i, p in enumerate(parts))
        values.parse(text)
        return text.encode()
    if not case.has_input:
        return None
    return json.dumps(case.input, ensure_ascii=False, separators=(",", ":")).encode()


# --- the run -----------------------------------------------------------------------


def _short(value: Any) -> str:
    text = _go_json(value, escape_html=False)
    return text if len(text) <= _SHOWN else text[:_SHOWN] + "..."


def _evaluate(case: Case, entrypoint: str, timeout_s: float) -> tuple[list[dict[str, Any]] | None, str]:
    """The result rows, or None and the error text; raises UnsupportedBuiltin and (compile) PolicyError."""
    modules = {f"module-{i}.rego": text for i, text in enumerate(case.modules)}
    prepare_engine()
    wasm = compiled_wasm(modules, entrypoint, timeout_s)
    policy = WasmPolicy(wasm, case.data or {})
    raw_input = input_text(case)
    try:
        raw = policy.evaluate_raw(policy.entrypoint_id(entrypoint), raw_input, values_out=True)
    except PolicyError as exc:
        return None, exc.message
    result = values.parse(raw.decode())
    return [to_json(row) for row in result], ""


def decide(case: Case, var: str, rows: list[dict[str, Any]] | None, error: str) -> tuple[bool, str]:
    """(agrees, what differed), by the e2e runner's rules (module docstring)."""
    got = None if rows is None else [{var: r["result"]} for r in rows if "result" in r]
    shown = f"error: {error}" if got is None else _short(got)
    if case.want_defined is not None:
        ok = got is not None and (len(got) > 0) == case.want_defined
        return ok, f"want {'defined' if case.want_defined else 'undefined'}, got {shown}"
    if case.want_result is not None:
        ok = got is not None and rows_agree(case.want_result, got, case.sort_bindings)
        return ok, f"want {_short(case.want_result)}, got {shown}"
    if case.want_error_code is not None or case.want_error is not None:
        wanted = case.want_error_code or case.want_error
        if case.strict_error:
            return got == [], f"want no result (strict-only error {wanted}; Wasm is non-strict), got {shown}"
        if got is not None:
            return False, f"want error {wanted}, got {shown}"
        if case.want_error_code == "eval_conflict_error":
            return any(t in error for t in CONFLICT_TEXTS), f"want a conflict error, got error: {error}"
        return False, f"want error {wanted}: OPA's e2e accepts only conflict errors from Wasm; got error: {error}"
    return got is not None, f"want any answer, got {shown}"


def judge(case: Case, timeout_s: float = 60.0) -> Verdict:
    """Run ``case`` on the embedded engine and judge the answer (module docstring); never raises."""
    target = applicable(case)
    if target is None:
        raise ValueError(f"{case.case_id}: query {case.query!r} is not data.<path> = <var>")
    entrypoint, var = target
    try:
        rows, error = _evaluate(case, entrypoint, timeout_s)
    except (UnsupportedBuiltin, DivergentBuiltin) as exc:
        return Verdict(case.case_id, case.note, "refused", exc.message, tuple(exc.names))
    except PolicyError as exc:
        return Verdict(case.case_id, case.note, "wrong", f"not compiled or loaded: {exc.message}")
    except Exception as exc:  # NOTE: a harness or engine crash is a finding, never a pass
        return Verdict(case.case_id, case.note, "wrong", f"crashed: {type(exc).__name__}: {exc}")
    ok, reason = decide(case, var, rows, error)
    return Verdict(case.case_id, case.note, "pass" if ok else "wrong", "" if ok else reason)
