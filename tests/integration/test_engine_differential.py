"""The embedded Wasm engine decides as the real OPA on a corpus of policies that are not ours.

Every policy of ``tests/corpus/policies`` (its own package ``corpus.<name>``) is
compiled once for Wasm, and one ``opa run --server`` serves them all. For each
policy, hypothesis generates EXAMPLES inputs (derandomized: CI sees the same ones)
and every rule the corpus names is decided by ``WasmPolicy.evaluate_raw`` (its value
text read by ``values.result_json``, as ``evaluate`` reads it) and by OPA's
``POST /v1/data/corpus/<name>/<rule>``, from the same input text. The two must
give the same value (numbers compared exactly), both be undefined, or both fail,
and a conflict in one must be a conflict in the other.

A policy the embedded engine refuses for a builtin of the families the issue
requires (time, sprintf and strings, regex, net.cidr_*, semver) fails; one refused
for another builtin is skipped, naming it. Inputs on which the engines once
disagreed are kept in REGRESSIONS. Differences of OPA's own Wasm library from OPA
(``tests.corpus.upstream``) are counted and reported as a warning, not failed, and
one input of each is pinned as a strict expected failure.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.policy.wasm.compiler import DivergentBuiltin, compile_wasm
from sidecar.policy.wasm.runtime import UnsupportedBuiltin, WasmPolicy
from tests.corpus.cases import CASES, Case
from tests.corpus.harness import CORPUS, OpaRest, Verdict, encode, required_by_issue, string_builtins, wasm_verdict
from tests.corpus.upstream import KNOWN, PINNED, known_divergence
from tests.support.opa_server import OpaServer, running_opa

pytestmark = pytest.mark.integration

EXAMPLES = 200
# NOTE: hypothesis repeats some inputs; fewer distinct ones than this means a generator too narrow to test with.
MIN_DISTINCT = 120
BY_NAME = {case.name: case for case in CASES}
# NOTE: missing host builtins, or compiled-in ones whose Wasm answer is known to differ (compiler.DIVERGENT_NATIVE).
Refusal = UnsupportedBuiltin | DivergentBuiltin

# (policy, input text): inputs on which the engines once disagreed, each an engine bug now fixed.
REGRESSIONS: list[tuple[str, str]] = [
    ("comprehensions", '{"items":[{"name":"","team":"core"},{"name":"","team":""}]}'),  # a set in hash order
    ("some_in", '{"labels":[1,"a"],"hosts":[],"groups":[]}'),  # a set in hash order
    ("comprehensions", '{"items":[{"name":"","team":-0.0},{"name":"a","team":1.0},{"name":"b","team":1e2}]}'),
    ("set_algebra", '{"required":[5.775808911430121e+16]}'),  # an integral float beyond 2**53
    ("set_algebra", '{"required":["a"],"granted":[{"k":1}]}'),  # an object sorts before a set
    ("defaults", '{"limit":"\\ud840\\udc00"}'),  # an escaped surrogate pair (U+20000, not U+10000)
    ("else_chain", '{"custom_message":"\\ud800x"}'),  # a lone escaped surrogate reads as U+FFFD
    ("json_audit", '{"b64":"/w=="}'),  # a string that is not UTF-8
    ("json_audit", '{"text":".5"}'),  # a number JSON can't hold: an error in both
    ("messages", '{"size":0,"value":[-0]}'),  # the integer -0 keeps its text in sprintf's %v
]


@pytest.fixture(scope="module")
def opa() -> Iterator[OpaServer]:
    with running_opa(CORPUS, decision_logs=False) as server:
        yield server


@pytest.fixture(scope="module")
def rest(opa: OpaServer) -> Iterator[OpaRest]:
    client = OpaRest(opa)
    yield client
    client.close()


@pytest.fixture(scope="module")
def strings() -> frozenset[str]:
    return string_builtins()


class Engines:
    """Each corpus policy compiled once for Wasm; a refused one fails or skips the test that needs it."""

    def __init__(self, strings: frozenset[str]) -> None:
        self._strings = strings
        self._loaded: dict[str, WasmPolicy | Refusal] = {}

    def policy(self, case: Case) -> WasmPolicy:
        """The compiled policy; fails the test when it is refused for a required builtin, else skips it."""
        return self._judge(case, self.load(case))

    def load(self, case: Case) -> WasmPolicy | Refusal:
        """The policy compiled once, or the engine's refusal of the builtins it calls."""
        if case.name not in self._loaded:
            module = {f"{case.name}.rego": (CORPUS / f"{case.name}.rego").read_text(encoding="utf-8")}
            try:
                wasm = compile_wasm(module, [case.entrypoint(rule) for rule in case.rules])
                self._loaded[case.name] = WasmPolicy(wasm, {})
            except (UnsupportedBuiltin, DivergentBuiltin) as exc:
                self._loaded[case.name] = exc
        return self._loaded[case.name]

    def _judge(self, case: Case, loaded: WasmPolicy | Refusal) -> WasmPolicy:
        if isinstance(loaded, WasmPolicy):
            return loaded
        required = [name for name in loaded.names if required_by_issue(name, self._strings)]
        if required:
            pytest.fail(f"{case.name}: the embedded engine refuses the required builtins {', '.join(required)}",
                        pytrace=False)
        pytest.skip(f"{case.name}: refused for builtins the issue does not require: {loaded.message}")


@pytest.fixture(scope="module")
def engines(strings: frozenset[str]) -> Engines:
    return Engines(strings)


def disagreements(case: Case, policy: WasmPolicy, rest: OpaRest, raw: bytes | None,
                  known: Counter[str] | None = None) -> tuple[list[str], list[Verdict]]:
    """What differs between the engines for one input, one line per rule, and OPA's verdicts.

    With ``known``, a difference that is a known divergence of OPA's Wasm library is
    counted there by name instead of listed.
    """
    lines, theirs_all = [], []
    for rule in case.rules:
        path = case.entrypoint(rule)
        theirs = rest.verdict(path, raw)
        ours = wasm_verdict(policy, policy.entrypoint_id(path), raw)
        theirs_all.append(theirs)
        if ours.same_decision(theirs):
            continue
        divergence = known_divergence(path, raw, theirs, ours) if known is not None else None
        if divergence is not None and known is not None:
            known[divergence.name] += 1
        else:
            lines.append(f"{rule}: OPA {theirs}\n    Wasm {ours}")
    return lines, theirs_all


def _shown(raw: bytes | None) -> str:
    return "no input" if raw is None else raw.decode()


@pytest.mark.parametrize("name", sorted(BY_NAME))
def test_embedded_engine_decides_as_opa(name: str, rest: OpaRest, engines: Engines) -> None:
    case = BY_NAME[name]
    policy = engines.policy(case)
    seen: set[bytes | None] = set()
    kinds: set[str] = set()
    known: Counter[str] = Counter()
    conflicts = 0

    @settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(doc=case.inputs, ascii_only=st.booleans())
    def agree(doc: Any, ascii_only: bool) -> None:
        nonlocal conflicts
        raw = encode(doc, ascii_only)
        seen.add(raw)
        lines, verdicts = disagreements(case, policy, rest, raw, known)
        kinds.update(v.kind for v in verdicts)
        conflicts += sum(v.conflict for v in verdicts)
        assert not lines, f"{name} on {_shown(raw)}:\n  " + "\n  ".join(lines)

    agree()
    if known:
        warnings.warn(f"{name}: known divergences of OPA's Wasm library: "
                      + ", ".join(f"{k} x{n}" for k, n in sorted(known.items())), stacklevel=1)
    assert len(seen) >= MIN_DISTINCT, f"{name}: only {len(seen)} distinct inputs"
    assert "value" in kinds, f"{name}: no generated input gave any rule a value"
    if case.conflicts:
        assert conflicts, f"{name}: no generated input reached the conflict"


@pytest.mark.parametrize(("name", "text"), REGRESSIONS)
def test_past_disagreements_agree(name: str, text: str, rest: OpaRest, engines: Engines) -> None:
    case = BY_NAME[name]
    policy = engines.policy(case)
    lines, _ = disagreements(case, policy, rest, text.encode())
    assert not lines, f"{name} on {text}:\n  " + "\n  ".join(lines)


@pytest.mark.parametrize(("divergence", "name", "text"), [
    pytest.param(d, n, t, marks=pytest.mark.xfail(strict=True, reason=next(k.why for k in KNOWN if k.name == d)))
    for d, n, t in PINNED])
def test_known_wasm_library_divergences_persist(divergence: str, name: str, text: str, rest: OpaRest,
                                                engines: Engines) -> None:
    case = BY_NAME[name]
    loaded = engines.load(case)
    if not isinstance(loaded, WasmPolicy):
        pytest.skip(f"{name} is refused ({', '.join(loaded.names)}): the divergence can't be shown yet")
    known: Counter[str] = Counter()
    lines, _ = disagreements(case, loaded, rest, text.encode(), known)
    assert not lines, f"{name} on {text}: a difference that is not the known one:\n  " + "\n  ".join(lines)
    assert not known, f"{name} on {text}: {divergence} is gone; drop it from tests/corpus/upstream.py"
