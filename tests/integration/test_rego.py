"""The Rego bundle passes OPA's own checks: formatted, strict-compiles, tested, covered.

These run the real ``opa`` binary (``make opa`` builds it into .tools/bin), so
``make test`` fails on an unformatted file, a strict-mode error, a failing Rego
test, or policy coverage under MIN_COVERAGE percent.
"""

from __future__ import annotations

import json

import pytest

from tests.support.opa_server import run_opa
from tests.support.paths import POLICIES, ROOT

pytestmark = pytest.mark.integration

MIN_COVERAGE = 90.0
BUNDLE = str(POLICIES.relative_to(ROOT))


def test_policy_files_are_opa_formatted() -> None:
    done = run_opa("fmt", "--list", BUNDLE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"run `opa fmt -w {BUNDLE}` on:\n{done.stdout}"


def test_policy_compiles_in_strict_mode() -> None:
    done = run_opa("check", "--strict", BUNDLE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_bundle_manifest_and_data_load_as_a_bundle() -> None:
    done = run_opa("check", "--strict", "--bundle", BUNDLE)
    assert done.returncode == 0, done.stdout + done.stderr


def test_rego_tests_pass() -> None:
    done = run_opa("test", BUNDLE, "--format", "json")
    results = json.loads(done.stdout) if done.stdout.strip() else []
    failed = [f"{r['package']}.{r['name']}: {r.get('error') or 'failed'}" for r in results
              if r.get("fail") or r.get("error")]
    assert done.returncode == 0 and not failed, "\n".join(failed) or done.stderr
    assert len(results) >= 50, f"only {len(results)} Rego tests ran"
    assert not [r["name"] for r in results if r.get("skip")], "skipped Rego tests"


def test_rego_tests_cover_the_policy() -> None:
    done = run_opa("test", BUNDLE, "--coverage", "--format", "json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    # NOTE: OPA's total counts the *_test.rego files too; the policy's own lines are what matter.
    policy_files = {name: f for name, f in report["files"].items() if not name.endswith("_test.rego")}
    assert policy_files, report["files"].keys()
    covered = sum(f.get("covered_lines", 0) for f in policy_files.values())
    missed = sum(f.get("not_covered_lines", 0) for f in policy_files.values())
    coverage = 100.0 * covered / (covered + missed)
    uncovered = {name: f["not_covered"] for name, f in policy_files.items() if f.get("not_covered")}
    print(f"\nRego coverage {coverage:.1f}% of {covered + missed} lines in {sorted(policy_files)} "
          f"(OPA's total {report['coverage']}%)")
    assert coverage >= MIN_COVERAGE, f"coverage {coverage:.1f}% < {MIN_COVERAGE}%; not covered: {uncovered}"
