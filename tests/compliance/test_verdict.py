"""The compliance harness's own rules: reading cases as OPA does, and judging answers as OPA's e2e does.

No OPA and no Wasm here: these pin what counts as agreement, so a lenient harness
can't hide a wrong answer and a strict one can't invent it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from sidecar.policy.wasm import values
from tests.compliance.cases import Case, applicable, load_cases
from tests.compliance.exceptions import EXCEPTIONS, apply_exceptions
from tests.compliance.verdict import Verdict, decide, input_text, rows_agree, to_json


def _case(**fields: Any) -> Case:
    return Case(file="f.yaml", note="t/n", query="data.test.p = x", **fields)


@pytest.mark.parametrize(("query", "expected"), [
    ("data.test.p = x", ("test/p", "x")),
    ("data.a.b.c = b", ("a/b/c", "b")),
    ("data.generated.p(1) = x", None),
    ("data.test.p[x] = z", None),
    ("data.x.p.a.b = 1", None),
    ("data = x", None),
    ("data.test.p = input", None),
    ("x = data.test.p", None),
    ("data.test.a = a; data.test.b = b", None),
])
def test_applicable_takes_only_a_rule_bound_to_a_var(query: str, expected: tuple[str, str] | None) -> None:
    assert applicable(Case(file="f", note="n", query=query)) == expected


def test_cases_are_read_as_opa_reads_yaml(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.yaml").write_text(
        "cases:\n"
        "- note: t/one\n  query: data.test.p = x\n  modules: ['package test']\n"
        "  data: {flags: {on: true, 1: 2.0}, when: 2020-01-02}\n"
        "  input: null\n"
        "  want_result: [{x: 1.5}]\n"
        "- note: t/two\n  query: data.test.p = x\n  input: {a: 1}\n  want_result: []\n  sort_bindings: true\n",
        encoding="utf-8")
    one, two = load_cases(tmp_path)
    assert one.case_id == "sub/c.yaml: t/one"
    assert one.data == {"flags": {"on": True, "1": 2}, "when": "2020-01-02"}
    assert type(one.data["flags"]["1"]) is int
    assert (one.has_input, one.want_result, one.modules) == (False, [{"x": 1.5}], ("package test",))
    assert (two.has_input, two.input, two.want_result, two.sort_bindings) == (True, {"a": 1}, [], True)


def test_results_convert_as_ast_json_does() -> None:
    value = values.parse('{1: {3, 1, "a"}, [1, 2]: set(), "k": {"<b>": {1}}, 2.5: null}')
    assert to_json(value) == {"1": [1, 3, "a"], "[1,2]": [], "k": {"<b>": [1]}, "2.5": None}
    assert to_json(values.parse('{{"a": 1}: 1}')) == {'{"a":1}': 1}
    assert to_json(values.parse('{{"<": 1}: 1}')) == {'{"\\u003c":1}': 1}


@pytest.mark.parametrize(("want", "got", "sort_bindings", "agree"), [
    ([{"x": 1}], [{"x": 1.0}], False, True),
    ([{"x": 0.1}], [{"x": 0.1}], False, True),
    ([{"x": 1}], [{"x": True}], False, False),
    ([{"x": False}], [{"x": 0}], False, False),
    ([{"x": "1"}], [{"x": 1}], False, False),
    ([{"x": None}], [{"x": None}], False, True),
    ([{"x": None}], [], False, False),
    ([], [], False, True),
    ([{"x": [1, 2]}], [{"x": [2, 1]}], False, False),
    ([{"x": [1, 2]}], [{"x": [2, 1]}], True, True),
    ([{"x": [[2, 1]]}], [{"x": [[1, 2]]}], True, False),
    ([{"x": {"a": [1]}}], [{"x": {"a": [1], "b": 2}}], False, False),
    ([{"x": 1}, {"x": 2}], [{"x": 2}, {"x": 1}], False, True),
    ([{"x": values.BigNumber("1e400")}], [{"x": values.BigNumber("1E400")}], False, True),
])
def test_result_sets_agree_as_opa_compares_them(want: list[dict[str, Any]], got: list[dict[str, Any]],
                                                sort_bindings: bool, agree: bool) -> None:
    assert rows_agree(want, got, sort_bindings) is agree


_STRICT = {"want_error_code": "eval_builtin_error", "strict_error": True}
_CONFLICT = {"want_error_code": "eval_conflict_error"}


@pytest.mark.parametrize(("fields", "rows", "error", "agree"), [
    ({"want_result": [{"x": 1}]}, [{"result": 1}], "", True),
    ({"want_result": [{"x": 1}]}, [{"result": 2}], "", False),
    ({"want_result": [{"x": 1}]}, None, "policy evaluation failed: boom", False),
    ({"want_result": []}, [], "", True),
    ({"want_result": []}, None, "boom", False),
    (_STRICT, [], "", True),
    (_STRICT, [{"result": 1}], "", False),
    (_STRICT, None, "boom", False),
    (_CONFLICT, None, "policy evaluation failed: var assignment conflict", True),
    (_CONFLICT, None, "policy evaluation failed: object insert conflict", True),
    (_CONFLICT, None, "policy evaluation failed: unreachable", False),
    (_CONFLICT, [], "", False),
    ({"want_error_code": "eval_type_error"}, None, "policy evaluation failed: type error", False),
    ({"want_defined": True}, [{"result": False}], "", True),
    ({"want_defined": False}, [{"result": False}], "", False),
    ({}, None, "boom", False),
])
def test_answers_are_judged_by_the_e2e_rules(fields: dict[str, Any], rows: list[dict[str, Any]] | None,
                                             error: str, agree: bool) -> None:
    ok, reason = decide(_case(**fields), "x", rows, error)
    assert ok is agree, reason


@pytest.mark.parametrize(("fields", "sent"), [
    ({}, None),
    ({"input": None, "has_input": False}, None),
    ({"input": {}, "has_input": True}, b"{}"),
    ({"input": {"a": [1, "é"]}, "has_input": True}, '{"a":[1,"é"]}'.encode()),
    ({"input_term": '{ "graph": { "a": ["b"], }, "initial": {"a", "b"} }'},
     b'{ "graph": { "a": ["b"] }, "initial": {"a", "b"} }'),
    ({"input_term": '{"x": ",}"}'}, b'{"x": ",}"}'),
    ({"input_term": "1.0", "input": {"ignored": 1}, "has_input": True}, b"1.0"),
])
def test_input_is_sent_as_the_e2e_runner_sends_it(fields: dict[str, Any], sent: bytes | None) -> None:
    assert input_text(_case(**fields)) == sent


def test_an_input_term_that_is_not_a_value_is_refused() -> None:
    with pytest.raises(values.ValueSyntaxError):
        input_text(_case(input_term="[x | x := 1]"))


def test_exceptions_turn_only_wrong_answers_into_excepted() -> None:
    note = next(iter(EXCEPTIONS))
    wrong, passing, other = (Verdict("a", note, "wrong", "gave 1"), Verdict("b", note, "pass"),
                             Verdict("c", "t/other", "wrong", "gave 2"))
    out = apply_exceptions([wrong, passing, other])
    assert [v.outcome for v in out] == ["excepted", "pass", "wrong"]
    assert out[0].reason.startswith(EXCEPTIONS[note]) and "gave 1" in out[0].reason
