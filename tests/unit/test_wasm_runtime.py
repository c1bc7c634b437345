"""The Wasm caller on modules compiled by the real ``opa build``: evaluation, host calls, failures."""

from __future__ import annotations

import json
from typing import Any

import pytest

from sidecar.errors import PolicyError
from sidecar.policy.wasm.builtins import BuiltinError, EvalContext, Halt
from sidecar.policy.wasm.compiler import DivergentBuiltin, compile_wasm, divergent_calls
from sidecar.policy.wasm.runtime import UnsupportedBuiltin, WasmPolicy
from sidecar.policy.wasm.values import RegoSet


def policy(rego: str, entrypoints: tuple[str, ...] = ("t/x",), data: Any = None,
           builtins: dict[str, Any] | None = None) -> WasmPolicy:
    return WasmPolicy(compile_wasm({"t.rego": "package t\n\n" + rego}, list(entrypoints)), data or {},
                      builtins=builtins)


def value(p: WasmPolicy, input_doc: Any, entrypoint: str = "t/x") -> Any:
    return p.evaluate(p.entrypoint_id(entrypoint), input_doc)


def test_evaluates_with_input_and_data() -> None:
    p = policy("x := {\"sum\": input.a + data.b, \"names\": {n | some n in input.names}}", data={"b": 2})
    assert value(p, {"a": 1, "names": ["z", "y", "z"]}) == {"sum": 3, "names": ["y", "z"]}


def test_undefined_is_none_and_no_input_is_not_null() -> None:
    p = policy("x := input.a\n\ny := true if input == null\n\nz := true if not input", ("t/x", "t/y", "t/z"))
    assert value(p, {}) is None
    assert json.loads(p.evaluate_raw(p.entrypoint_id("t/y"), b"null")) == [{"result": True}]
    assert json.loads(p.evaluate_raw(p.entrypoint_id("t/z"), None)) == [{"result": True}]


def test_an_unknown_entry_point_names_those_there_are() -> None:
    p = policy("x := 1")
    with pytest.raises(PolicyError, match="no entry point t/nope; it has t/x"):
        p.entrypoint_id("t/nope")


def test_a_conflict_is_an_error_never_a_value() -> None:
    p = policy("x := 1 if input.a\n\nx := 2 if input.b")
    assert value(p, {"a": True}) == 1
    with pytest.raises(PolicyError, match="policy evaluation failed"):
        value(p, {"a": True, "b": True})
    assert value(p, {"b": True}) == 2  # NOTE: the instance is usable after an abort


def test_a_missing_host_builtin_is_refused_by_name() -> None:
    wasm = compile_wasm({"t.rego": 'package t\n\nx := http.send({"method": "GET", "url": input.u})'}, ["t/x"])
    with pytest.raises(UnsupportedBuiltin, match=r"builtin http\.send") as caught:
        WasmPolicy(wasm, {}, builtins={})
    assert caught.value.names == ["http.send"] and "policy.engine: opa" in caught.value.message


def test_host_builtins_get_rego_values_and_their_errors_mean_undefined_or_failure() -> None:
    seen: list[Any] = []

    def fake_sprintf(ctx: EvalContext, fmt: Any, args: Any) -> Any:
        seen.append((fmt, args))
        if fmt == "undefined":
            raise BuiltinError("bad operand")
        if fmt == "halt":
            raise Halt("stop")
        if fmt == "bug":
            raise ZeroDivisionError("a bug in a builtin")
        return RegoSet([fmt, *args]) if fmt == "set" else f"{fmt}:{len(args)}"

    p = policy("x := sprintf(input.f, input.args)", builtins={"sprintf": fake_sprintf})
    assert value(p, {"f": "%s", "args": ["a", {"k": [1]}]}) == "%s:2"
    assert seen[-1] == ("%s", ["a", {"k": [1]}])
    assert value(p, {"f": "set", "args": ["b", "a"]}) == ["a", "b", "set"]
    assert value(p, {"f": "undefined", "args": []}) is None
    for fmt in ("halt", "bug"):
        with pytest.raises(PolicyError, match="policy evaluation failed"):
            value(p, {"f": fmt, "args": []})


def test_inputs_larger_than_memory_grow_it_and_the_heap_is_reused() -> None:
    p = policy("x := count(input.s)")
    assert value(p, {"s": "a" * 3_000_000}) == 3_000_000
    for _ in range(2000):
        assert value(p, {"s": "abc"}) == 3
    size = p._refresh()  # NOTE: the heap is reset by every opa_eval: 2,000 calls grow nothing
    for _ in range(2000):
        value(p, {"s": "abc"})
    assert p._refresh() == size


def test_not_a_wasm_module() -> None:
    with pytest.raises(PolicyError, match="not a valid Wasm module"):
        WasmPolicy(b"\0asm-not-really", {})


def test_a_non_json_input_is_refused() -> None:
    p = policy("x := 1")
    with pytest.raises(PolicyError, match="not JSON"):
        value(p, {"a": float("nan")})


def test_a_module_with_more_constants_than_its_declared_memory_loads() -> None:
    rules = "\n".join(f'r{i} := "{"x" * 200}-{i}"' for i in range(1500))
    p = policy(rules + "\n\nx := count([r0, r1499])")
    assert value(p, {}) == 2


@pytest.mark.parametrize(("rego", "names"), [
    ('x := json.marshal(input)', ["json.marshal"]),
    ('x := base64.decode(input.s)\n\ny := to_number ( input.n )', ["base64.decode", "to_number"]),
    ('x := base64url.decode(input.s)', ["base64url.decode"]),
])
def test_a_builtin_whose_wasm_answer_differs_from_opas_is_refused_by_name(rego: str, names: list[str]) -> None:
    with pytest.raises(DivergentBuiltin) as caught:
        compile_wasm({"t.rego": "package t\n\n" + rego}, ["t/x"])
    assert caught.value.names == names and "policy.engine: opa" in caught.value.message


@pytest.mark.parametrize("rego", [
    '# json.marshal(input) is not used\nx := 1',
    'x := "json.marshal(input)"',
    'x := `to_number(1)`',
    'x := json.marshal_with_options(input, {}) == ""',
    'my.json.marshal(v) := v\n\nx := 1',
])
def test_the_scan_ignores_comments_strings_and_other_names(rego: str) -> None:
    assert divergent_calls({"t.rego": rego}) == []


# --- found by the differential corpus (tests/integration/test_engine_differential.py) -------------


def test_escaped_surrogate_pairs_in_the_input_are_the_characters_they_name() -> None:
    p = policy("x := [input.s, count(input.s)]")
    assert json.loads(p.evaluate_raw(p.entrypoint_id("t/x"), rb'{"s": "\ud840\udc00\ud800"}')) == [
        {"result": ["\U00020000\ufffd", 2]}]


def test_a_trap_names_its_cause() -> None:
    p = policy("x := v if {\n\tv := y with input.a as 1\n}\n\ny := input.a")
    with pytest.raises(PolicyError, match=r"wasm trap: .* in opa\.wasm!"):
        value(p, None)
