"""``object.subset``, ``graph.reachable_paths``, ``json.patch`` against the real OPA: all must decide alike.

OPA is the oracle (``tests.support.rego_diff``). Set-valued results are compared
through ``sort`` (OPA's Wasm writes a set in hash order). Mixed and ill-typed
operands come through ``input``.
"""

from __future__ import annotations

import json

import pytest

from tests.support.rego_diff import compare_expressions, opa_outcome, wasm_outcome

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

INPUT = {"zero": 0, "obj": {"a": 1, "b": [1, 2]}, "arr": ["a", 1], "num": 3, "str": "a", "null": None,
         "set_like": ["a"],
         "graph": {"a": ["b", 1], "b": ["a"], "1": ["b"]},
         "odd_edges": {"a": "b", "b": None, "c": 5, "d": ["a", "b", "c", "e"], "e": {"x": 1}}}


@pytest.mark.parametrize("name, exprs", [("object.subset", SUBSET), ("graph.reachable_paths", PATHS)])
def test_document_builtins_agree_with_opa(name: str, exprs: list[str]) -> None:
    assert compare_expressions(exprs, input_doc=INPUT) == []


_DOC = '{"a": {"b": [1, 2, 3], "c": "x"}, "n": null, "arr": [{"k": 1}, {"k": 2}], "t~/": 5}'
_PATCHES = [
    "[]",
    '[{"op": "add", "path": "/a/d", "value": 4}]', '[{"op": "add", "path": "/a/c", "value": "y"}]',
    '[{"op": "add", "path": "/a/b/0", "value": 0}]', '[{"op": "add", "path": "/a/b/3", "value": 9}]',
    '[{"op": "add", "path": "/a/b/4", "value": 9}]', '[{"op": "add", "path": "/a/b/-", "value": 9}]',
    '[{"op": "add", "path": "/a/b/01", "value": 9}]', '[{"op": "add", "path": "/a/b/+1", "value": 9}]',
    '[{"op": "add", "path": "/a/b/-1", "value": 9}]', '[{"op": "add", "path": "/a/b/x", "value": 9}]',
    '[{"op": "add", "path": "/a/b/1.0", "value": 9}]', '[{"op": "add", "path": "/x/y", "value": 1}]',
    '[{"op": "add", "path": "/a/c/z", "value": 1}]', '[{"op": "add", "path": "", "value": [1]}]',
    '[{"op": "add", "path": "/", "value": "root-key"}]', '[{"op": "add", "path": "//a//", "value": 1}]',
    '[{"op": "add", "path": "a/e", "value": 1}]', '[{"op": "add", "path": "/t~0~1", "value": 6}]',
    '[{"op": "add", "path": "/s/o", "value": "o"}]', '[{"op": "add", "path": "/s/o", "value": "p"}]',
    '[{"op": "add", "path": ["a", "b", 1], "value": "i"}]', '[{"op": "add", "path": ["a", "b", 1.5], "value": 1}]',
    '[{"op": "add", "path": ["new", 1], "value": 1}]', '[{"op": "add", "path": [7], "value": "num-key"}]',
    '[{"op": "add", "path": "/arr/1/k", "value": 3}]', '[{"op": "add", "path": "/n/x", "value": 1}]',
    '[{"op": "add", "path": "/a/d"}]', '[{"path": "/a"}]', '[{"op": "add"}]', '[{"op": 1, "path": "/a"}]',
    '[{"op": "frob", "path": "/a"}]', '[{"op": "add", "path": 5, "value": 1}]', '["not an object"]',
    '[{"op": "remove", "path": "/a/c"}]', '[{"op": "remove", "path": "/a/zz"}]',
    '[{"op": "remove", "path": "/a/b/1"}]', '[{"op": "remove", "path": "/a/b/3"}]',
    '[{"op": "remove", "path": "/a/b/-"}]', '[{"op": "remove", "path": "/s/m"}]', '[{"op": "remove", "path": "/s/q"}]',
    '[{"op": "remove", "path": "/a/c"}, {"op": "remove", "path": "/a/c"}]',
    '[{"op": "remove", "path": "/a/b/0"}, {"op": "remove", "path": "/a/b/0"}, '
    '{"op": "add", "path": "/a/b/1", "value": 7}]',
    '[{"op": "replace", "path": "/a/c", "value": 1}]', '[{"op": "replace", "path": "/a/zz", "value": 1}]',
    '[{"op": "replace", "path": "/a/b/2", "value": 1}]', '[{"op": "replace", "path": "", "value": {"new": true}}]',
    '[{"op": "replace", "path": "/s/m", "value": "m"}]', '[{"op": "replace", "path": "/s/m", "value": "z"}]',
    '[{"op": "move", "from": "/a/c", "path": "/moved"}]', '[{"op": "move", "from": "/a/b/0", "path": "/a/b/2"}]',
    '[{"op": "move", "from": "/a", "path": "/a/x"}]', '[{"op": "move", "from": "/zz", "path": "/y"}]',
    '[{"op": "move", "path": "/y"}]', '[{"op": "copy", "from": "/a/b", "path": "/b2"}]',
    '[{"op": "copy", "from": "/a", "path": "/a/self"}]', '[{"op": "copy", "from": "/arr/0", "path": "/arr/-"}]',
    '[{"op": "copy", "from": "", "path": "/whole"}]',
    '[{"op": "test", "path": "/a/c", "value": "x"}]', '[{"op": "test", "path": "/a/c", "value": "y"}]',
    '[{"op": "test", "path": "/a/b", "value": [1, 2, 3]}]', '[{"op": "test", "path": "/a/b/0", "value": 1.0}]',
    '[{"op": "test", "path": "/zz", "value": null}]', '[{"op": "test", "path": "/n", "value": null}]',
    '[{"op": "test", "path": "", "value": 1}]',
    '[{"op": "test", "path": "/a/c", "value": "x"}, {"op": "add", "path": "/ok", "value": true}]',
    '[{"op": "add", "path": "/a/b/-", "value": 4}, {"op": "add", "path": "/a/b/-", "value": 5}, '
    '{"op": "remove", "path": "/a/b/1"}, {"op": "move", "from": "/a/b/0", "path": "/a/b/-"}]',
    '[{"op": "add", "path": "/arr/0/k", "value": 9}, {"op": "copy", "from": "/arr/0", "path": "/first"}]',
    '[{"op": "remove", "path": "/arr/0"}, {"op": "add", "path": "/arr/0/k2", "value": 0}]',
    # OPA's edit tree walks through an array element by its position in the unpatched array:
    '[{"op": "remove", "path": "/arr/0"}, {"op": "test", "path": "/arr/0", "value": {"k": 2}}]',
    '[{"op": "remove", "path": "/arr/0"}, {"op": "test", "path": "/arr/0", "value": {"k": 1}}]',
    '[{"op": "add", "path": "/a/b/0", "value": 0}, {"op": "copy", "from": "/a/b/1", "path": "/c1"}]',
    '[{"op": "add", "path": "/arr/0", "value": {"new": 1}}, {"op": "add", "path": "/arr/1/z", "value": 5}]',
    '[{"op": "remove", "path": "/arr/1"}, {"op": "add", "path": "/arr/-", "value": {"q": 1}}, '
    '{"op": "add", "path": "/arr/1/r", "value": 1}]',
    '[{"op": "move", "from": "/arr/0", "path": "/arr/1"}, {"op": "add", "path": "/arr/0/m", "value": 1}]',
    '[{"op": "add", "path": "/m", "value": [[1, 2], [3]]}, {"op": "remove", "path": "/m/0"}, '
    '{"op": "add", "path": "/m/0/-", "value": 9}]',
    '[{"op": "add", "path": "/arr/0/x", "value": 1}, {"op": "remove", "path": "/arr/0"}, '
    '{"op": "add", "path": "/arr/0/y", "value": 2}]',
    '[{"op": "add", "path": "/arr/2", "value": {"k": 3}}, {"op": "remove", "path": "/arr/0"}, '
    '{"op": "copy", "from": "/arr/1", "path": "/arr/-"}, {"op": "test", "path": "/arr/2", "value": {"k": 3}}]',
    '[{"op": "replace", "path": "/arr/0", "value": {"r": 1}}, {"op": "add", "path": "/arr/1/s", "value": 1}]',
    '[{"op": "remove", "path": "/arr/0"}, {"op": "remove", "path": "/arr/0"}, '
    '{"op": "add", "path": "/arr/-", "value": {"z": 0}}, {"op": "add", "path": "/arr/0/w", "value": 1}]',
]
# NOTE: the patches come through input: OPA's type checker refuses ill-formed literal patches.
PATCH = [f"json.patch({_DOC}, input.patches[{i}])" for i in range(len(_PATCHES))] + [
    'json.patch([1, 2], [{"op": "add", "path": "/1", "value": "x"}])',
    'json.patch("scalar", [{"op": "add", "path": "/a", "value": 1}])',
    'json.patch("scalar", [{"op": "replace", "path": "", "value": 1}])',
    'json.patch({"a": 1}, [{"op": "remove", "path": ""}, {"op": "add", "path": "", "value": 2}])',
    "json.patch(input.obj, input.set_like)", "json.patch(input.obj, input.num)",
    'json.patch({1: "num", "1": "str"}, [{"op": "remove", "path": "/1"}])',
    'json.patch([[1], [2]], [{"op": "remove", "path": "/0"}, {"op": "add", "path": "/0/-", "value": 5}])',
    'json.patch({"a": [1, 2]}, [{"op": "add", "path": ["a", [1e400, 0][input.zero]], "value": 0}])',
    'json.patch({"1e400": 1}, [{"op": "remove", "path": [[1e400, 0][input.zero]]}])',
    'object.subset({"a": 1e400}, {"a": 1e400})', 'object.subset([1e400, "1e400"], ["1e400"])',
    'json.patch([[1], [2], [3]], [{"op": "add", "path": "/0", "value": [0]}, '
    '{"op": "add", "path": "/2/-", "value": 5}])',
    'json.patch({1: "num", "1": "str"}, [{"op": "remove", "path": [1]}])',
    'json.patch({[1]: "k"}, [{"op": "replace", "path": [[1]], "value": "v"}])',
    'sort(json.patch({"s": {[1], [2]}}, [{"op": "add", "path": ["s", [3]], "value": [3]}]).s)',
] + [f'sort(json.patch({{"m", "n", ["x"]}}, input.patches[{i}]))' for i in range(len(_PATCHES))]


def test_json_patch_agrees_with_opa() -> None:
    patches = [json.loads(p) for p in _PATCHES]
    assert compare_expressions(PATCH, input_doc={**INPUT, "patches": patches}) == []


def test_json_patch_removing_the_whole_document_fails_as_opa_does() -> None:
    module = {"t.rego": 'package t\nx := json.patch({"a": 1}, [{"op": "remove", "path": ""}])\n'}
    assert opa_outcome(module, "t").kind == "error"
    assert wasm_outcome(module, "t").kind == "error"


def test_json_patch_reads_an_array_index_by_its_text() -> None:
    """OPA reads the index's text: 1.0 is index 1, 1e0 is no index."""
    assert compare_expressions([
        'json.patch([1, 2], [{"op": "add", "path": [1.0], "value": 0}])',
        'json.patch([1, 2], [{"op": "add", "path": [1e0], "value": 0}])',
        'json.patch([1, 2], [{"op": "add", "path": [1.50], "value": 0}])',
    ]) == []
