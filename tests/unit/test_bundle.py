"""Unit tests for sidecar.policy.bundle: a bundle directory -> modules, data, revision."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sidecar.errors import PolicyError
from sidecar.policy.bundle import load_bundle

POLICY = "package statelock.authz\n\ndecision := {\"allow\": true}\n"


def write(root: Path, rel: str, content: str | Any) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")


@pytest.fixture
def bundle_dir(tmp_path: Path) -> Path:
    root = tmp_path / "bundle"
    write(root, "authz.rego", POLICY)
    return root


def test_modules_exclude_tests_and_hidden_files(bundle_dir: Path) -> None:
    write(bundle_dir, "lib/util.rego", "package statelock.lib\n")
    write(bundle_dir, "authz_test.rego", "package statelock.authz_test\n")
    write(bundle_dir, "lib/util_test.rego", "package statelock.lib_test\n")
    write(bundle_dir, ".git/hooks.rego", "package hidden\n")
    write(bundle_dir, ".hidden.rego", "package hidden\n")
    write(bundle_dir, "README.md", "# not policy\n")
    bundle = load_bundle(bundle_dir)
    assert set(bundle.modules) == {"authz.rego", "lib/util.rego"}
    assert bundle.modules["authz.rego"] == POLICY
    assert bundle.root == bundle_dir


@pytest.mark.parametrize(("files", "expected"), [
    ({"data.json": {"roles": {"billing": True}}}, {"roles": {"billing": True}}),
    ({"statelock/data.json": {"kinds": ["boot"]}}, {"statelock": {"kinds": ["boot"]}}),
    ({"a/b/data.json": {"x": 1}}, {"a": {"b": {"x": 1}}}),
    ({"data.json": {"top": 1}, "a/data.json": {"x": 1}, "a/b/data.json": {"y": 2}},
     {"top": 1, "a": {"x": 1, "b": {"y": 2}}}),
    ({"data.json": {"a": {"x": 1}}, "a/b/data.json": {"y": 2}}, {"a": {"x": 1, "b": {"y": 2}}}),
    ({".hidden/data.json": {"x": 1}}, {}),
    ({"a/other.json": {"x": 1}}, {}),
])
def test_data_json_lands_at_its_directory(bundle_dir: Path, files: dict[str, Any], expected: dict[str, Any]) -> None:
    for rel, content in files.items():
        write(bundle_dir, rel, content)
    assert load_bundle(bundle_dir).data == expected


@pytest.mark.parametrize("files", [
    {"data.json": {"a": 1}, "a/data.json": {"x": 1}},
    {"data.json": {"a": {"x": 1}}, "a/data.json": {"x": 2}},
    {"data.json": {"z": {"x": 1}}, "z/data.json": {"x": 2}},
    {"data.json": {"a": {"b": {"y": 1}}}, "a/b/data.json": {"y": 2}},
    {"a/data.json": {"b": "scalar"}, "a/b/data.json": {"y": 1}},
    {"data.json": ["not", "an", "object"]},
    {"a/data.json": 3},
    {"data.json": "{not json"},
    {"a/data.json": '{"k": 1, '},
])
def test_conflicting_or_bad_data_is_a_policy_error_naming_a_data_file(
    bundle_dir: Path, files: dict[str, Any]
) -> None:
    for rel, content in files.items():
        write(bundle_dir, rel, content)
    with pytest.raises(PolicyError) as info:
        load_bundle(bundle_dir)
    named = [rel for rel in files if str(bundle_dir / rel) in info.value.message]
    assert named, info.value.message


def test_non_utf8_data_is_a_policy_error(bundle_dir: Path) -> None:
    (bundle_dir / "data.json").write_bytes(b'{"k": "\xff"}')
    with pytest.raises(PolicyError, match=r"data\.json"):
        load_bundle(bundle_dir)


@pytest.mark.parametrize("subdir", ["a", "z"])
def test_data_merge_does_not_depend_on_directory_order(bundle_dir: Path, subdir: str) -> None:
    write(bundle_dir, "data.json", {subdir: {"x": 1}})
    write(bundle_dir, f"{subdir}/data.json", {"y": 2})
    assert load_bundle(bundle_dir).data == {subdir: {"x": 1, "y": 2}}


def test_manifest_revision_is_used(bundle_dir: Path) -> None:
    write(bundle_dir, ".manifest", {"revision": "2026-08-21.3", "roots": ["statelock"]})
    assert load_bundle(bundle_dir).revision == "2026-08-21.3"


@pytest.mark.parametrize("manifest", [None, {}, {"revision": ""}, {"roots": ["statelock"]}])
def test_revision_falls_back_to_the_digest(bundle_dir: Path, manifest: dict[str, Any] | None) -> None:
    if manifest is not None:
        write(bundle_dir, ".manifest", manifest)
    bundle = load_bundle(bundle_dir)
    assert len(bundle.digest) == 12
    assert bundle.revision == f"sha256:{bundle.digest}"


def test_digest_follows_policy_and_data_but_not_tests(bundle_dir: Path) -> None:
    first = load_bundle(bundle_dir).digest
    assert load_bundle(bundle_dir).digest == first
    write(bundle_dir, "authz_test.rego", "package statelock.authz_test\n")
    write(bundle_dir, "notes.txt", "ignored")
    assert load_bundle(bundle_dir).digest == first
    write(bundle_dir, "data.json", {"k": 1})
    with_data = load_bundle(bundle_dir).digest
    assert with_data != first
    write(bundle_dir, "authz.rego", POLICY + "\n# changed\n")
    assert load_bundle(bundle_dir).digest not in (first, with_data)


def test_manifest_revision_does_not_change_the_digest(bundle_dir: Path) -> None:
    before = load_bundle(bundle_dir).digest
    write(bundle_dir, ".manifest", {"revision": "r1"})
    assert load_bundle(bundle_dir).digest == before


@pytest.mark.parametrize("manifest", ["{broken", "[]", "\"r1\"", "7", "null"])
def test_unusable_manifest_is_a_policy_error_naming_it(bundle_dir: Path, manifest: str) -> None:
    write(bundle_dir, ".manifest", manifest)
    with pytest.raises(PolicyError) as info:
        load_bundle(bundle_dir)
    assert str(bundle_dir / ".manifest") in info.value.message


def test_bundle_without_policy_is_a_policy_error(tmp_path: Path) -> None:
    write(tmp_path, "data.json", {"x": 1})
    write(tmp_path, "authz_test.rego", "package t\n")
    with pytest.raises(PolicyError, match=r"holds no \.rego policy"):
        load_bundle(tmp_path)


def test_empty_directory_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match=r"holds no \.rego policy"):
        load_bundle(tmp_path)


def test_missing_directory_is_a_policy_error(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="is not a directory"):
        load_bundle(tmp_path / "absent")


def test_a_file_is_not_a_bundle(tmp_path: Path) -> None:
    write(tmp_path, "authz.rego", POLICY)
    with pytest.raises(PolicyError, match="is not a directory"):
        load_bundle(tmp_path / "authz.rego")
