"""The embedded engine (OPA-compiled Wasm) and a real OPA server decide identically on the same bundle.

A hypothesis property test generates over 10,000 policy inputs (subjects and role
mixes, every action of config/actions.yaml and the lock API, lock kinds, scopes,
owners of every authority, expiry, 0-4 locks, malformed shapes, awkward strings and
numbers) and requires ``EmbeddedEngine.evaluate`` and OPA's ``POST /v1/data`` to
return the same decision document, or both to fail. OPA is queried over one
keep-alive connection. Runs are derandomized, so CI sees the same inputs every time.

Disagreements found on the way are kept below as concrete regression cases.
"""

from __future__ import annotations

import itertools
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from sidecar.classify import load_route_table
from sidecar.config import PolicyConfig
from sidecar.errors import PolicyError
from sidecar.policy.embedded import EmbeddedEngine
from tests.support.opa_server import DecisionClient, OpaServer, run_opa, running_opa
from tests.support.paths import ACTIONS, POLICIES

pytestmark = pytest.mark.integration

DISTINCT_INPUTS = 10_000
# NOTE: hypothesis repeats some inputs (about one in twelve here); this many examples give
# well over DISTINCT_INPUTS distinct ones, and repeats are not evaluated twice.
EXAMPLES = 12_000
INSTANCE = "8f0c5a4e-1b2c-4d3e-8f40-0123456789ab"


@pytest.fixture(scope="module")
def opa() -> Iterator[OpaServer]:
    with running_opa(POLICIES, decision_logs=False) as server:
        yield server


@pytest.fixture(scope="module")
def embedded() -> EmbeddedEngine:
    engine = EmbeddedEngine(PolicyConfig(bundle=str(POLICIES)))
    engine.load()
    return engine


@pytest.fixture(scope="module")
def client(opa: OpaServer) -> Iterator[DecisionClient]:
    decisions = DecisionClient(opa)
    yield decisions
    decisions.close()


def opa_outcome(client: DecisionClient, input_doc: Any) -> tuple[str, Any]:
    """("result", doc), ("undefined", None) or ("error", None) as OPA answers."""
    return classify_opa(*client.query(input_doc))


def classify_opa(status: int, doc: dict[str, Any]) -> tuple[str, Any]:
    if status != 200:
        return ("error", None)
    return ("result", doc["result"]) if "result" in doc else ("undefined", None)


def embedded_outcome(engine: EmbeddedEngine, input_doc: Any) -> tuple[str, Any]:
    """The same classification of what the embedded engine answers."""
    try:
        result = engine.evaluate(input_doc)
    except PolicyError:
        return ("error", None)
    return ("undefined", None) if result is None else ("result", result)


def assert_agree(engine: EmbeddedEngine, client: DecisionClient, input_doc: Any) -> tuple[str, Any]:
    client.send(input_doc)
    try:
        got = embedded_outcome(engine, input_doc)  # NOTE: while OPA works on the same input
    finally:
        expected = classify_opa(*client.receive())
    assert got == expected, f"engines disagree on input {json.dumps(input_doc, ensure_ascii=False)}"
    return got


# --- the input space ------------------------------------------------------------------------------
# NOTE: every strategy is built once, here: strategies made inside a draw cost hypothesis
# far more than the draws themselves, and the test needs 10,000 examples.

def _actions() -> list[tuple[str, str]]:
    """(kind, name) of every action a request can reach the policy with."""
    table = load_route_table(ACTIONS)
    found = {(r.kind, r.name) for r in table.server_routes if r.kind not in ("action", "migration_action")}
    found |= {(s.kind, s.name) for s in table.actions.values()}
    found |= {(s.kind, s.name) for s in table.migration_actions.values()}
    found |= {("state_change", name) for name in table.other_resources}
    # The lock API's own actions (sidecar/lockops.py).
    found |= {("lock", "lock"), ("lock", "suspend_lock"), ("unlock", "unlock"), ("unlock", "unlock_resume")}
    return sorted(found)


ACTIONS_ALL = _actions()
ROLES = ["admin", "billing", "legal", "security", "statelock-override", "member", "reader"]
PROJECTS = ["demo", "other", "service", "ops", "admin"]
USERS = ["alice", "bob", "admin", "billing-svc", "legal-svc", "sec-svc", "oscar"]
# Every mix of up to three roles (none, one, two, three), plus near-misses.
ROLE_MIXES = [list(mix) for n in range(4) for mix in itertools.combinations(ROLES, n)]
ROLE_MIXES += [["Admin"], ["admin "], ["root"], ["member", "member"], ["reader", "billing", "admin", "legal"]]
# Owners of every authority (billing, legal, security, admin, a plain owner) and mixes of them.
OWNER_ROLES = [["billing"], ["legal"], ["security"], ["admin"], ["member"], ["member", "reader"],
               ["admin", "billing"], ["security", "legal"], ["billing", "legal"], ["statelock-override"],
               ["reader"], []]
TIMES = ["2026-11-25T00:00:00Z", "2026-11-24T23:59:59.5Z", "2027-01-01T00:00:00Z",
         "2026-11-25T01:00:00+01:00", "yesterday", ""]
# Strings that have broken an engine before.
AWKWARD = ['say "no"', "back\\slash", "line\nbreak\ttab", "nul\x00byte", "\x7f\x1b[0m", "é中😀",
           "\u2028\u2029", "\\u0041", "%s %d", "", " "]

awkward_text = st.one_of(st.sampled_from(AWKWARD), st.text(max_size=8))
odd_scalar = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                       st.floats(allow_nan=False, allow_infinity=False), awkward_text)
odd_value: st.SearchStrategy[Any] = st.one_of(odd_scalar, st.just({}), st.just([]), st.lists(odd_scalar, max_size=2))
json_value = st.recursive(odd_scalar, lambda inner: st.one_of(
    st.lists(inner, max_size=2), st.dictionaries(st.text(max_size=4), inner, max_size=2)), max_leaves=4)
roles = st.sampled_from(ROLE_MIXES)
owner_roles = st.sampled_from(OWNER_ROLES)
project = st.sampled_from([*PROJECTS, None, ""])
user = st.sampled_from([*USERS, None, 'o"scar'])
lock_id = st.sampled_from(["lk-1", "lk-2", "lk-3", "lk-4"])
lock_kind = st.sampled_from(["state", "boot", "delete"])
odd_kind = st.sampled_from(["freeze", "State", "", None, 3])
scope = st.sampled_from(["instance", "project", "host"])
lock_target = st.sampled_from([INSTANCE, "demo", "cmp-3", None])
reason = st.sampled_from(["billing: invoice 881 overdue", "legal hold", ""])
times = st.sampled_from(TIMES)
expires = st.one_of(st.none(), times)
action = st.sampled_from(ACTIONS_ALL)
odd_action_kind = st.sampled_from(["unknown", "State_change", "", "read"])
method = st.sampled_from(["POST", "PUT", "DELETE"])
params = st.dictionaries(st.sampled_from(["type", "rotation", "host", "name"]), json_value, max_size=2)
instance = st.sampled_from([INSTANCE, None, ""])
host = st.sampled_from(["cmp-3", "cmp-4", None])
lock_count = st.integers(0, 4)
def shape(**one_in: int) -> st.SearchStrategy[str]:
    """"ok" mostly; each name in ``one_in`` about once in that many draws. One choice per object."""
    pool = 240
    rare = [name for name, n in one_in.items() for _ in range(pool // n)]
    return st.sampled_from(["ok"] * (pool - len(rare)) + rare)


def drop_a_key(draw: st.DrawFn, doc: dict[str, Any]) -> dict[str, Any]:
    del doc[draw(st.sampled_from(sorted(doc)))]
    return doc


subject_shape = shape(odd=60, odd_user=8, odd_roles=30, drop=40, keystone=3)
is_admin = st.sampled_from([False, True, None, "true", 1])
system_scope = st.sampled_from([None, "all", ""])
domain = st.sampled_from(["default", None])
owner_shape = shape(odd=40, odd_roles=30)
lock_shape = shape(odd=80, odd_id=20, odd_kind=12, odd_reason=4, odd_expiry=30, drop=30)
action_shape = shape(odd=80, odd_kind=30, odd_name=30, params=4)
target_shape = shape(odd=40)
input_shape = shape(odd_now=40, odd_locks=60, drop=60)


def subject(draw: st.DrawFn) -> Any:
    form = draw(subject_shape)
    if form == "odd":
        return draw(odd_value)
    doc = {"user_id": draw(awkward_text) if form == "odd_user" else draw(user),
           "project_id": draw(project),
           "roles": draw(odd_value) if form == "odd_roles" else draw(roles)}
    if form == "keystone":
        # The keystone identity mode's extra fields (docs/policy-contract.md).
        doc.update(is_admin=draw(is_admin), system_scope=draw(system_scope), domain_id=draw(domain))
    return drop_a_key(draw, doc) if form == "drop" else doc


def owner(draw: st.DrawFn) -> Any:
    form = draw(owner_shape)
    if form == "odd":
        return draw(odd_value)
    return {"user_id": draw(user), "project_id": draw(project),
            "roles": draw(odd_value) if form == "odd_roles" else draw(owner_roles)}


def a_lock(draw: st.DrawFn) -> Any:
    form = draw(lock_shape)
    if form == "odd":
        return draw(odd_value)
    doc = {
        "id": draw(odd_scalar) if form == "odd_id" else draw(lock_id),
        "kind": draw(odd_kind) if form == "odd_kind" else draw(lock_kind),
        "scope": draw(scope),
        "target": draw(lock_target),
        "reason": draw(awkward_text) if form == "odd_reason" else draw(reason),
        "owner": owner(draw),
        "created_at": draw(times),
        "expires_at": draw(odd_scalar) if form == "odd_expiry" else draw(expires),
    }
    return drop_a_key(draw, doc) if form == "drop" else doc


def an_action(draw: st.DrawFn) -> Any:
    form = draw(action_shape)
    if form == "odd":
        return draw(odd_value)
    kind, name = draw(action)
    if form == "odd_kind":
        kind = draw(odd_action_kind)
    elif form == "odd_name":
        name = draw(awkward_text)
    doc: dict[str, Any] = {"name": name, "kind": kind, "method": draw(method),
                           "path": f"/v2.1/servers/{INSTANCE}/action", "params": {}}
    if kind == "lock":
        doc["params"] = {"kind": draw(lock_kind), "scope": draw(scope), "reason": draw(reason)}
    elif form == "params":
        doc["params"] = draw(params)
    return doc


def a_target(draw: st.DrawFn) -> Any:
    if draw(target_shape) == "odd":
        return draw(odd_value)
    return {"instance_id": draw(instance), "project_id": draw(project), "host": draw(host)}


@st.composite
def policy_inputs(draw: st.DrawFn) -> Any:
    form = draw(input_shape)
    doc: dict[str, Any] = {
        "now": draw(odd_scalar) if form == "odd_now" else "2026-11-25T01:00:00Z",
        "subject": subject(draw),
        "action": an_action(draw),
        "target": a_target(draw),
        "locks": draw(odd_value) if form == "odd_locks" else [a_lock(draw) for _ in range(draw(lock_count))],
    }
    return drop_a_key(draw, doc) if form == "drop" else doc


# --- the property ----------------------------------------------------------------------------------

def test_engines_agree_on_generated_inputs(embedded: EmbeddedEngine, client: DecisionClient) -> None:
    seen: dict[str, tuple[str, Any]] = {}
    examples = 0
    outcomes: dict[str, int] = {}

    @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, print_blob=True,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(policy_inputs())
    def agree(input_doc: Any) -> None:
        nonlocal examples
        examples += 1
        key = json.dumps(input_doc, sort_keys=True)
        if key in seen:
            return
        kind, result = seen[key] = assert_agree(embedded, client, input_doc)
        label = kind if kind != "result" else f"allow={result['allow']} status={result['status']}"
        outcomes[label] = outcomes.get(label, 0) + 1

    agree()
    print(f"\n{examples} examples, {len(seen)} distinct inputs, outcomes {sorted(outcomes.items())}")
    assert len(seen) >= DISTINCT_INPUTS
    # The generator must reach every kind of answer, or it tests less than it seems to.
    for key in ("allow=True status=200", "allow=False status=409", "allow=False status=403"):
        assert outcomes.get(key, 0) > 100, outcomes


# --- regression cases: inputs the engines once disagreed on -------------------------------------------

BASE: dict[str, Any] = {
    "now": "2026-11-25T01:00:00Z",
    "subject": {"user_id": "alice", "project_id": "demo", "roles": ["member"]},
    "action": {"name": "resume", "kind": "state_change", "method": "POST",
               "path": f"/v2.1/servers/{INSTANCE}/action", "params": {}},
    "target": {"instance_id": INSTANCE, "project_id": "demo", "host": "cmp-3"},
    "locks": [],
}


def lock(reason: Any = "billing: invoice 881 overdue", owner_project: Any = "service",
         owner_roles: Any = ("billing",), kind: str = "boot", lock_id: Any = "lk-1") -> dict[str, Any]:
    return {"id": lock_id, "kind": kind, "scope": "instance", "target": INSTANCE, "reason": reason,
            "owner": {"user_id": "billing-svc", "project_id": owner_project, "roles": list(owner_roles)},
            "created_at": "2026-11-25T00:00:00Z", "expires_at": None}


def case(subject: dict[str, Any] | None = None, action: dict[str, Any] | None = None,
         locks: list[Any] | None = None, **top: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(json.dumps(BASE))
    if subject:
        doc["subject"].update(subject)
    if action:
        doc["action"].update(action)
    if locks is not None:
        doc["locks"] = locks
    doc.update(top)
    return doc


OVERRIDE = {"user_id": "oscar", "roles": ["statelock-override"]}
UNLOCK = {"name": "unlock", "kind": "unlock"}

# Each was a disagreement of the earlier engine (regopy, rego-cpp), kept for the Wasm engine:
# rego-cpp wrote strings into its JSON output unescaped (so the output could not be read and
# the embedded engine answered 503 where OPA answered 409 or allowed), cut strings at a NUL
# (so "demo\x00a" == "demo\x00b" and a stranger counted as the lock owner's project), and
# turned integers beyond 64 bits into 0.
REGRESSIONS = [
    pytest.param(case(locks=[lock(reason='invoice "881" overdue')]), id="quote-in-lock-reason"),
    pytest.param(case(locks=[lock(reason="C:\\billing\\881")]), id="backslash-in-lock-reason"),
    pytest.param(case(locks=[lock(reason="line one\nline two\ttab")]), id="newline-tab-in-lock-reason"),
    pytest.param(case(locks=[lock(reason="esc \x1b[31m del \x7f")]), id="control-chars-in-lock-reason"),
    pytest.param(case(locks=[lock(reason="before\x00after")]), id="nul-in-lock-reason"),
    pytest.param(case(locks=[lock(lock_id='lk-"1"')]), id="quote-in-lock-id"),
    pytest.param(case(subject={**OVERRIDE, "user_id": 'o"scar\\'}, locks=[lock()]),
                 id="quote-in-user-id-of-an-override"),
    pytest.param(case(subject={**OVERRIDE, "user_id": "oscar\x00evil"}, locks=[lock()]),
                 id="nul-in-user-id-of-an-override"),
    pytest.param(case(subject={"project_id": "demo\x00a"}, action=UNLOCK,
                      locks=[lock(owner_project="demo\x00b", owner_roles=["member"], kind="state")]),
                 id="nul-makes-a-stranger-the-owner"),
    pytest.param(case(subject={"project_id": "demo\x00a"}, action={"name": "lock", "kind": "lock"},
                      target={"instance_id": INSTANCE, "project_id": "demo\x00b", "host": None}),
                 id="nul-makes-a-stranger-a-project-member"),
    pytest.param(case(subject={**OVERRIDE, "user_id": "\\u0041"}, locks=[lock()]),
                 id="escape-sequence-in-user-id-came-out-decoded"),
    pytest.param(case(action={"name": "os-getConsoleOutput\x00x"}, locks=[lock(kind="state")]),
                 id="nul-makes-an-unknown-action-exempt"),
    pytest.param(case(action=UNLOCK, locks=[lock(owner_project='de"mo', owner_roles=["member"], kind="state")],
                      subject={"project_id": "other"}),
                 id="quote-in-owner-project-of-a-refused-unlock"),
    pytest.param(case(target={"instance_id": 'i"d', "project_id": "demo", "host": None}, locks=[lock()]),
                 id="quote-in-instance-id-of-a-409-message"),
]


@pytest.mark.parametrize("input_doc", REGRESSIONS)
def test_engines_agree_on_regressions(embedded: EmbeddedEngine, client: DecisionClient,
                                      input_doc: dict[str, Any]) -> None:
    kind, _ = assert_agree(embedded, client, input_doc)
    assert kind == "result"


def test_both_engines_refuse_a_non_finite_number(embedded: EmbeddedEngine, client: DecisionClient) -> None:
    # NOTE: Python's json accepts NaN in a request body; OPA can't parse it, so neither engine decides.
    doc = case(action={"name": "createBackup", "params": {"rotation": float("nan")}})
    assert opa_outcome(client, doc) == ("error", None)
    with pytest.raises(PolicyError, match="non-finite"):
        embedded.decide_sync(doc)


# --- engine regressions the production policy can't show: a probe bundle, checked with `opa eval` ---

PROBE = """package probe

roles := data.probe_data.roles

result := {
	"big": input.n > 9223372036854775807,
	"n": input.n,
	"role_known": input.role in roles,
	"same_project": input.a == input.b,
	"echo": concat("|", [input.a, input.b]),
}
"""


@pytest.mark.parametrize("input_doc", [
    pytest.param({"n": 2**70, "role": "x", "a": "a", "b": "b"}, id="integer-beyond-64-bits-compares-exactly"),
    pytest.param({"n": 1, "role": "prüfer", "a": "a", "b": "b"}, id="non-ascii-input-matches-non-ascii-data"),
    pytest.param({"n": 1, "role": "x", "a": "p\x00a", "b": "p\x00b"}, id="nul-does-not-end-a-string"),
    pytest.param({"n": 1, "role": "x", "a": 'q"\\', "b": "\n"}, id="escapes-survive-concat"),
])
def test_engine_input_conversion_matches_opa(tmp_path: Path, input_doc: dict[str, Any]) -> None:
    bundle = tmp_path / "probe"
    (bundle / "probe").mkdir(parents=True)
    (bundle / "probe" / "probe.rego").write_text(PROBE)
    (bundle / "data.json").write_text(json.dumps({"probe_data": {"roles": ["prüfer", "reader"]}}, ensure_ascii=False))
    (tmp_path / "input.json").write_text(json.dumps(input_doc))
    done = run_opa("eval", "--format", "json", "--bundle", str(bundle), "--input", str(tmp_path / "input.json"),
                   "data.probe.result")
    assert done.returncode == 0, done.stderr
    expected = json.loads(done.stdout)["result"][0]["expressions"][0]["value"]
    engine = EmbeddedEngine(PolicyConfig(bundle=str(bundle), decision_path="probe/result"))
    engine.load()
    assert engine.evaluate(input_doc) == expected


# --- the same policy with other data: the optional keys the generated inputs never change ------------

CLOUD_ADMIN = {"user_id": "u-ops", "project_id": "ops", "roles": ["cloud-admin"], "is_admin": True,
               "system_scope": None, "domain_id": "default"}


@pytest.mark.parametrize("input_doc", [
    pytest.param(case(subject=CLOUD_ADMIN, action=UNLOCK, locks=[lock(owner_roles=["admin"], kind="state")]),
                 id="is-admin-unlocks-an-admin-lock-under-a-renamed-admin-role"),
    pytest.param(case(subject=CLOUD_ADMIN, locks=[lock(owner_roles=["member"], owner_project="demo", kind="state")]),
                 id="is-admin-bypasses-an-owner-lock-under-a-renamed-admin-role"),
    pytest.param(case(subject={**CLOUD_ADMIN, "is_admin": False}, action=UNLOCK,
                      locks=[lock(owner_roles=["admin"], kind="state")]), id="no-is-admin-no-admin-role"),
])
def test_engines_agree_with_admin_role_renamed_in_data(tmp_path: Path, input_doc: dict[str, Any]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(POLICIES, bundle)
    data = json.loads((bundle / "data.json").read_text())
    data["statelock"]["admin_role"] = "cloud-admin"
    (bundle / "data.json").write_text(json.dumps(data))
    (tmp_path / "input.json").write_text(json.dumps(input_doc))
    done = run_opa("eval", "--format", "json", "--bundle", str(bundle), "--ignore", "*_test.rego",
                   "--input", str(tmp_path / "input.json"), "data.statelock.authz.decision")
    assert done.returncode == 0, done.stderr
    expected = json.loads(done.stdout)["result"][0]["expressions"][0]["value"]
    engine = EmbeddedEngine(PolicyConfig(bundle=str(bundle)))
    engine.load()
    assert engine.evaluate(input_doc) == expected


def test_generated_names_cover_actions_yaml() -> None:
    kinds = {kind for kind, _ in ACTIONS_ALL}
    assert kinds >= {"state_change", "create", "delete", "lock", "unlock", "read"}
    names = {name for _, name in ACTIONS_ALL}
    assert {"suspend_lock", "unlock_resume", "create", "os-start", "forceDelete"} <= names
