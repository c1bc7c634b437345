"""``statelock policy test`` and ``statelock policy eval`` (sidecar/cli/policy.py).

The commands run through ``add_policy_commands``/``run_policy_command`` exactly as
``statelock`` wires them, against the real bundle, the real embedded (Wasm) engine and the
real ``opa`` binary (and, for ``--opa-url``, a real OPA server).
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from sidecar.cli.policy import main
from sidecar.policy.wasm import compiler
from tests.support.opa_server import opa_binary, running_opa
from tests.support.paths import POLICIES

INSTANCE = "8f0c5a4e-1b2c-4d3e-8f40-0123456789ab"
REVISION = json.loads((POLICIES / ".manifest").read_text())["revision"]
MEMBER = {"user_id": "alice", "project_id": "demo", "roles": ["member"]}
OVERRIDE = {"user_id": "oscar", "project_id": "ops", "roles": ["statelock-override"]}


def lock(lock_id: str, kind: str, roles: list[str], project: str = "service") -> dict[str, Any]:
    return {"id": lock_id, "kind": kind, "scope": "instance", "target": INSTANCE, "reason": f"reason {lock_id}",
            "owner": {"user_id": "owner", "project_id": project, "roles": roles},
            "created_at": "2026-11-25T00:00:00Z", "expires_at": None}


def policy_input(subject: dict[str, Any], name: str, kind: str, locks: list[Any]) -> dict[str, Any]:
    return {"now": "2026-11-25T01:00:00Z", "subject": subject,
            "action": {"name": name, "kind": kind, "method": "POST",
                       "path": f"/v2.1/servers/{INSTANCE}/action", "params": {}},
            "target": {"instance_id": INSTANCE, "project_id": "demo", "host": "cmp-3"}, "locks": locks}


@pytest.fixture
def opa_on_path(monkeypatch: pytest.MonkeyPatch) -> str:
    """Make sure the commands find the real opa binary."""
    binary = opa_binary()
    monkeypatch.setenv("PATH", f"{Path(binary).parent}:{Path('/usr/bin')}:{Path('/bin')}")
    return binary


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["policy", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def write_input(tmp_path: Path, doc: Any) -> str:
    path = tmp_path / "input.json"
    path.write_text(json.dumps(doc))
    return str(path)


# --- policy test -------------------------------------------------------------------------------------

def test_policy_test_passes_on_the_bundle(opa_on_path: str, capfd: pytest.CaptureFixture[str]) -> None:
    assert main(["policy", "test", "--bundle", str(POLICIES), "--coverage"]) == 0
    out, _ = capfd.readouterr()
    assert "PASS" in out
    assert "coverage 100.0%  " in out and "authz.rego" in out


def test_policy_test_fails_on_a_failing_rego_test(opa_on_path: str, tmp_path: Path,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(POLICIES, bundle)
    (bundle / "statelock" / "extra_test.rego").write_text(
        "package statelock.extra_test\n\nimport data.statelock.authz\n\n"
        'test_wrong if authz.decision.allow with input as {"action": {"kind": "delete"}}\n')
    assert main(["policy", "test", "--bundle", str(bundle), "-v"]) == 1
    out, err = capfd.readouterr()
    assert "test_wrong" in out and "FAIL" in out
    assert "failed" in err


def test_policy_test_without_opa_says_how_to_get_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setattr(compiler, "REPO_ROOT", tmp_path)
    code, _, err = run(capsys, "test", "--bundle", str(POLICIES))
    assert code == 2
    assert "OPA is not installed" in err and "make opa" in err


def test_policy_test_with_a_missing_bundle_is_an_error(opa_on_path: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "test", "--bundle", str(tmp_path / "nope"))
    assert code == 2 and "not a directory" in err


def test_policy_test_with_an_explicit_opa_that_is_not_there(capsys: pytest.CaptureFixture[str],
                                                             tmp_path: Path) -> None:
    code, _, err = run(capsys, "test", "--bundle", str(POLICIES), "--opa", str(tmp_path / "opa"))
    assert code == 2 and "make opa" in err


# --- policy eval -------------------------------------------------------------------------------------

EVAL_CASES = [
    pytest.param(policy_input(MEMBER, "suspend", "state_change", []), 0,
                 ["decision: ALLOW (200)", "guard_decision: no locks in force"], id="allowed-no-locks"),
    pytest.param(policy_input(MEMBER, "resume", "state_change",
                              [lock("lk-1", "boot", ["billing"]), lock("lk-2", "delete", ["legal"])]), 1,
                 ["decision: DENY (409)", f"Instance {INSTANCE} is locked (boot lock lk-1: reason lk-1)",
                  "locks that denied it: lk-1",
                  "[0] lk-1  kind boot  scope instance  authority billing: blocks this action and holds",
                  "[1] lk-2  kind delete  scope instance  authority legal: does not block this action"],
                 id="denied-by-a-billing-boot-lock"),
    pytest.param(policy_input(OVERRIDE, "resume", "state_change", [lock("lk-1", "boot", ["billing"])]), 0,
                 ["decision: ALLOW (200)", "locks overridden by the subject's role: lk-1",
                  "authority billing: blocks this action, bypassed by the subject's role (an override)"],
                 id="override-role-bypasses"),
    pytest.param(policy_input(MEMBER, "unlock", "unlock", [lock("lk-9", "state", ["admin"], "admin")]), 1,
                 ["decision: DENY (403)", "can be removed only by: admin", "unlock_decision",
                  "authority admin: may NOT be removed by this subject"], id="unlock-of-an-admin-lock-refused"),
    pytest.param(policy_input(MEMBER, "unlock", "unlock", [lock("lk-3", "state", ["member"], "demo")]), 0,
                 ["decision: ALLOW (200)", "authority owner: may be removed by this subject"],
                 id="owner-unlocks-own-lock"),
    pytest.param(policy_input(MEMBER, "suspend_lock", "lock", []), 1,
                 ["decision: DENY (403)", "suspend_lock_decision"], id="suspend-lock-needs-a-role"),
    pytest.param(policy_input(MEMBER, "show", "read", [lock("lk-1", "state", ["admin"])]), 0,
                 ["decision: ALLOW (200)", "reads are always allowed", "does not matter to this action"],
                 id="read"),
    pytest.param({**policy_input(MEMBER, "suspend", "state_change", []), "locks": "nope"}, 1,
                 ["decision: DENY (403)", "default decision: the input lacks"], id="malformed-input"),
    pytest.param(policy_input(MEMBER, "suspend", "state_change", [lock("lk-1", "freeze", ["billing"])]), 1,
                 ["decision: DENY (403)", "default decision: a lock is malformed"], id="unknown-lock-kind"),
    pytest.param(policy_input(MEMBER, "suspend", "launch", []), 1,
                 ["default decision: action.kind 'launch' is not one the policy knows"], id="unknown-action-kind"),
]


@pytest.mark.parametrize("engine", ["embedded", "opa"])
@pytest.mark.parametrize(("doc", "code", "expected"), EVAL_CASES)
def test_policy_eval_prints_the_decision_and_what_decided_it(
    opa_on_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], engine: str,
    doc: dict[str, Any], code: int, expected: list[str],
) -> None:
    got, out, err = run(capsys, "eval", "--input", write_input(tmp_path, doc), "--bundle", str(POLICIES),
                        "--engine", engine, "--explain")
    assert got == code, err
    assert f"revision {REVISION}" in out
    for text in expected:
        assert text in out, out


@pytest.mark.parametrize(("doc", "code", "expected"), EVAL_CASES[:4])
def test_both_engines_print_identical_json(
    opa_on_path: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], doc: dict[str, Any], code: int,
    expected: list[str],
) -> None:
    path = write_input(tmp_path, doc)
    outputs = []
    for engine in ("embedded", "opa"):
        got, out, err = run(capsys, "eval", "-i", path, "--bundle", str(POLICIES), "--engine", engine,
                            "--explain", "--json")
        assert got == code, err
        outputs.append(json.loads(out))
    assert outputs[0] == outputs[1]
    assert outputs[0]["revision"] == REVISION
    assert [lk["id"] for lk in outputs[0]["locks"]] == [lk["id"] for lk in doc["locks"]]


def test_policy_eval_without_explain_is_short(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = policy_input(MEMBER, "resume", "state_change", [lock("lk-1", "boot", ["billing"])])
    code, out, _ = run(capsys, "eval", "--input", write_input(tmp_path, doc), "--bundle", str(POLICIES))
    assert code == 1
    assert "rule: guard_locks_decision" in out
    assert "[0] lk-1" not in out


def test_policy_eval_reads_a_decision_record_or_stdin(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    doc = policy_input(MEMBER, "resume", "state_change", [lock("lk-1", "boot", ["billing"])])
    record = {"decision_id": "d-1", "input": doc, "result": {"allow": False}, "bundles": {}}
    code, out, _ = run(capsys, "eval", "--input", write_input(tmp_path, record), "--bundle", str(POLICIES))
    assert code == 1 and "boot lock lk-1" in out
    monkeypatch.setattr("sys.stdin", io.StringIO(json.dumps({"input": doc})))
    code, out, _ = run(capsys, "eval", "--input", "-", "--bundle", str(POLICIES))
    assert code == 1 and "boot lock lk-1" in out


@pytest.mark.parametrize(("content", "error"), [
    ("{not json", "Expecting property name"),
    ("[1, 2]", "must be a JSON object"),
])
def test_policy_eval_refuses_unreadable_input(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                              content: str, error: str) -> None:
    path = tmp_path / "input.json"
    path.write_text(content)
    code, _, err = run(capsys, "eval", "--input", str(path), "--bundle", str(POLICIES))
    assert code == 2 and error in err


def test_policy_eval_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = write_input(tmp_path, policy_input(MEMBER, "suspend", "state_change", []))
    code, _, err = run(capsys, "eval", "--input", str(tmp_path / "missing.json"))
    assert code == 2 and "missing.json" in err
    code, _, err = run(capsys, "eval", "--input", doc, "--bundle", str(tmp_path / "nope"))
    assert code == 2 and "not a directory" in err
    broken = tmp_path / "broken"
    shutil.copytree(POLICIES, broken)
    (broken / "statelock" / "authz.rego").write_text("package statelock.authz\n\ndecision := {\n")
    code, _, err = run(capsys, "eval", "--input", doc, "--bundle", str(broken))
    assert code == 2 and "does not compile: statelock/authz.rego:4: rego_parse_error: unexpected eof token" in err
    # A bundle whose package was renamed: OPA's words for the missing entry point.
    (broken / "statelock" / "authz.rego").write_text(
        (POLICIES / "statelock" / "authz.rego").read_text().replace("package statelock.authz", "package other", 1))
    code, _, err = run(capsys, "eval", "--input", doc, "--bundle", str(broken))
    assert code == 2 and 'entrypoint "statelock/authz/decision" does not refer to a rule' in err


def test_policy_eval_against_an_opa_server(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = policy_input(MEMBER, "resume", "state_change", [lock("lk-1", "boot", ["billing"])])
    with running_opa(POLICIES, log_path=tmp_path / "opa.log") as server:
        code, out, err = run(capsys, "eval", "--input", write_input(tmp_path, doc), "--engine", "opa",
                             "--opa-url", server.url, "--explain")
    assert code == 1, err
    assert f"engine opa server {server.url}" in out
    assert f"revision {REVISION}" in out and "opa decision_id " in out
    assert "authority billing: blocks this action and holds" in out
    code, _, err = run(capsys, "eval", "--input", write_input(tmp_path, doc), "--opa-url", server.url,
                       "--timeout-ms", "300")
    assert code == 2 and "OPA request failed" in err
    code, _, err = run(capsys, "eval", "--input", write_input(tmp_path, doc), "--engine", "embedded",
                       "--opa-url", server.url)
    assert code == 2 and "use it with --engine opa" in err
