"""``object.subset`` and ``graph.reachable_paths`` against the real OPA: every expression must decide alike.

OPA is the oracle (``tests.support.rego_diff``). Set-valued results are compared
through ``sort`` (OPA's Wasm writes a set in hash order). Mixed and ill-typed
operands come through ``input``.
"""

from __future__ import annotations

import pytest

from tests.support.rego_diff import compare_expressions

pytestmark = pytest.mark.integration

_SUBSET_PAIRS = [
    ("{}", "{}"), ('{"a": 1}', "{}"), ("{}", '{"a": 1}'), ('{"a": 1, "b": 2}', '{"a": 1}'),
    ('{"a": 1}', '{"a": 2}'), ('{"a": 1}', '{"a": 1.0}'), ('{"a": {"b": {"c": 1, "d": 2}}}', '{"a": {"b": {"c": 1}}}'),
    ('{"a": {"b": 1}}', '{"a": {"b": 1, "c": 2}}'), ('{"a": [1, 2, 3, 4]}', '{"a": [2, 3]}'),
    ('{"a": [1, 2, 3, 4]}', '{"a": [2, 4]}'), ('{"a": {1, 2, 3}}', '{"a": {1, 3}}'), ('{"a": {1, 2}}', '{"a": {1, 4}}'),
    ('{"a": [1, 2]}', '{"a": {1}}'), ('{"a": {1, 2}}', '{"a": [1]}'), ('{"a": "x"}', '{"a": ["x"]}'),
    ('{"a": null}', '{"a": null}'), ('{"a": null}', '{"b": null}'), ('{1: "x", "1": "y"}', '{1: "x"}'),
    ('{1: "x"}', '{"1": "x"}'), ('{[1, 2]: "k"}', '{[1, 2]: "k"}'), ('{"a": [[1, 2], [3]]}', '{"a": [[3]]}'),
    ('{"a": [{"b": 1, "c": 2}]}', '{"a": [{"b": 1}]}'),
    ("{1, 2, 3}", "{1, 2}"), ("{1, 2}", "{1, 2, 3}"), ("set()", "set()"), ("{1}", "set()"), ("set()", "{1}"),
    ('{"a", ["b"]}', '{["b"]}'), ("{1, 2}", "{1.0}"),
    ("[1, 2, 3, 4, 5]", "[2, 3, 4]"), ("[1, 2, 3]", "[1, 3]"), ("[1, 2, 3]", "[]"), ("[]", "[]"), ("[]", "[1]"),
    ("[1, 1, 2]", "[1, 2]"), ("[1, 2, 1, 2, 3]", "[1, 2, 3]"), ("[1, 2]", "[1, 2, 3]"), ("[[1], [2]]", "[[2]]"),
    ("[1, 2, 3]", "{1, 3}"), ("[1, 2, 3]", "{1, 4}"), ("[1, 1]", "{1, 2}"), ("[]", "set()"), ("[1]", "set()"),
    ('["a", "b"]', '{"b", "a"}'), ("[1, 2, 2, 3]", "{2, 3}"),
]
SUBSET = [f"object.subset({a}, {b})" for a, b in _SUBSET_PAIRS] + [
    f"object.subset(input.{a}, input.{b})"
    for a in ("obj", "set_like", "arr", "num", "str") for b in ("obj", "arr", "num", "str", "null")
]

_GRAPHS = {
    "line": '{"a": ["b"], "b": ["c"], "c": []}',
    "cycle": '{"a": ["b"], "b": ["c"], "c": ["a"]}',
    "self": '{"a": ["a"]}',
    "diamond": '{"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": set()}',
    "dangling": '{"a": ["b", "x"], "b": []}',
    "numbers": '{1: [2, 3], 2: [3], 3: [1]}',
    "wide": '{"r": ["a", "b", "c"], "a": ["b"], "b": ["c"], "c": ["r"]}',
    "empty": "{}",
}
_STARTS = ['["a"]', '{"a"}', '["a", "b"]', '["x"]', "[]", '["a", "a"]', '{"d", "b"}', "[1]", "[2, 1]", '["r", "c"]']
PATHS = [f"sort(graph.reachable_paths({g}, {s}))" for g in _GRAPHS.values() for s in _STARTS] + [
    'is_set(graph.reachable_paths({"a": ["b"]}, ["a"]))',
    "graph.reachable_paths(input.arr, input.arr)", "graph.reachable_paths(input.obj, input.str)",
    "graph.reachable_paths(input.obj, input.num)", "sort(graph.reachable_paths(input.graph, input.arr))",
    "sort(graph.reachable_paths(input.graph, input.obj))",
] + [f"sort(graph.reachable_paths(input.odd_edges, {s}))" for s in _STARTS] + [
    'sort(graph.reachable_paths(input.odd_edges, ["c", "d"]))',
]

INPUT = {"obj": {"a": 1, "b": [1, 2]}, "arr": ["a", 1], "num": 3, "str": "a", "null": None, "set_like": ["a"],
         "graph": {"a": ["b", 1], "b": ["a"], "1": ["b"]},
         "odd_edges": {"a": "b", "b": None, "c": 5, "d": ["a", "b", "c", "e"], "e": {"x": 1}}}


@pytest.mark.parametrize("name, exprs", [("object.subset", SUBSET), ("graph.reachable_paths", PATHS)])
def test_document_builtins_agree_with_opa(name: str, exprs: list[str]) -> None:
    assert compare_expressions(exprs, input_doc=INPUT) == []
