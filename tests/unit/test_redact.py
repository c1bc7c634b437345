"""Redaction of secrets in the policy input before a record is written."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from sidecar.audit.record import make_record
from sidecar.audit.redact import MASK, check_paths, is_secret_key, redact

SECRET = "s3cr3t-value"


def _input() -> dict[str, Any]:
    return {
        "subject": {"user_id": "alice", "project_id": "demo", "roles": ["member"]},
        "action": {"name": "rebuild", "kind": "state_change", "params": {
            "imageRef": "img-1",
            "adminPass": SECRET,
            "metadata": {"ssh_key": "ssh-rsa AAAA", "owner": "team-a"},
            "personality": [{"path": "/etc/motd", "contents": "aGk="},
                            {"path": "/root/.pw", "contents": "cHc="}],
        }},
        "request": {"headers": {"X-Auth-Token": SECRET, "Accept": "application/json"}},
        "target": {"instance_id": "vm-1", "project_id": "demo", "host": "cmp-3"},
        "locks": [{"id": "lk-1", "kind": "boot", "reason": "billing", "owner": {"user_id": "billing"}}],
        "nested": [{"deep": {"Password": SECRET, "credentials": {"id": "c1", "secret": SECRET}}},
                   {"auth": {"user": "x"}, "author": "not a secret"}],
        "service": {"api_key": SECRET, "private-key": SECRET, "client_secret": SECRET, "token_ttl": 3},
    }


def test_secret_keys_are_masked_at_any_depth_and_reported() -> None:
    doc = _input()
    masked, pointers = redact(doc, [])

    assert pointers == sorted([
        "/input/action/params/adminPass",
        "/input/request/headers/X-Auth-Token",
        "/input/nested/0/deep/Password",
        "/input/nested/0/deep/credentials",
        "/input/nested/1/auth",
        "/input/service/api_key",
        "/input/service/private-key",
        "/input/service/client_secret",
        "/input/service/token_ttl",
    ])
    assert masked["action"]["params"]["adminPass"] == MASK
    assert masked["request"]["headers"] == {"X-Auth-Token": MASK, "Accept": "application/json"}
    assert masked["nested"][0]["deep"] == {"Password": MASK, "credentials": MASK}
    assert masked["nested"][1] == {"auth": MASK, "author": "not a secret"}
    assert SECRET not in json.dumps(masked)
    assert masked["locks"] == doc["locks"]
    assert masked["subject"] == doc["subject"]


def test_the_callers_document_is_not_changed() -> None:
    doc = _input()
    before = copy.deepcopy(doc)
    masked, _ = redact(doc, ["/input/action/params/metadata/ssh_key"])
    assert doc == before
    assert masked is not doc
    assert masked["action"]["params"]["metadata"] is not doc["action"]["params"]["metadata"]


@pytest.mark.parametrize(("paths", "expected"), [
    (["/input/action/params/metadata/ssh_key"], ["/input/action/params/metadata/ssh_key"]),
    (["/input/action/params/personality/1/contents"], ["/input/action/params/personality/1/contents"]),
    (["/input/action/params/personality/*/contents"],
     ["/input/action/params/personality/0/contents", "/input/action/params/personality/1/contents"]),
    (["/input/locks/*/reason", "/input/target/host"], ["/input/locks/0/reason", "/input/target/host"]),
    (["/input/action/params/metadata"], ["/input/action/params/metadata"]),
    (["/input/no/such/path", "/input/locks/7/reason", "/input/locks/01/reason"], []),
    (["/input/action/params/adminPass"], []),
], ids=["key", "array-index", "wildcard", "two-paths", "subtree", "undefined", "already-masked"])
def test_extra_paths_are_masked_and_reported(paths: list[str], expected: list[str]) -> None:
    masked, pointers = redact(_input(), paths)
    name_based = set(redact(_input(), [])[1])
    assert set(pointers) - name_based == set(expected)
    for pointer in expected:
        node: Any = masked
        for part in pointer.split("/")[2:]:
            node = node[int(part)] if isinstance(node, list) else node[part]
        assert node == MASK


def test_escaped_pointer_segments() -> None:
    doc = {"labels": {"a/b": "x", "c~d": "y", "keep": "z"}}
    masked, pointers = redact(doc, ["/input/labels/a~1b", "/input/labels/c~0d"])
    assert masked == {"labels": {"a/b": MASK, "c~d": MASK, "keep": "z"}}
    assert pointers == ["/input/labels/a~1b", "/input/labels/c~0d"]


def test_pointers_of_masked_keys_are_escaped() -> None:
    _, pointers = redact({"h": {"x/token": "t"}}, [])
    assert pointers == ["/input/h/x~1token"]


@pytest.mark.parametrize(("path", "message"), [
    ("input/action", "starts with '/'"),
    ("/action/params/adminPass", "inside the policy input"),
    ("/input", "inside the policy input"),
    ("/input/a~2b", "must be escaped"),
])
def test_bad_extra_paths_are_refused_with_a_clear_message(path: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        check_paths(["/input/ok", path])
    with pytest.raises(ValueError, match=message):
        redact({}, [path])


@pytest.mark.parametrize(("key", "secret"), [
    ("adminPass", True), ("ADMINPASS", True), ("password", True), ("new_password", True),
    ("X-Auth-Token", True), ("x-subject-token", True), ("token", True), ("secret", True),
    ("credential", True), ("application_credentials", True), ("auth", True), ("Authorization", True),
    ("api_key", True), ("locked_reason", False), ("author", False), ("auth_url", False),
    ("user_id", False), ("key_name", False), ("imageRef", False),
])
def test_which_keys_are_secrets(key: str, secret: bool) -> None:
    assert is_secret_key(key) is secret


def test_make_record_redacts_its_input_and_lists_what_it_masked() -> None:
    doc = _input()
    record = make_record(
        decision_id="d-1", req_id=1, input_doc=doc, result={"allow": True}, revision="r",
        outcome="allow", enforced=True, method="POST", path="/v2.1/servers/vm-1/action", status=0,
        requested_by="", redact_paths=["/input/action/params/metadata/ssh_key"])
    text = json.dumps(record)
    assert SECRET not in text and "ssh-rsa" not in text
    assert "/input/action/params/adminPass" in record["masked"]
    assert "/input/action/params/metadata/ssh_key" in record["masked"]
    assert doc["action"]["params"]["adminPass"] == SECRET


def test_a_record_with_nothing_to_mask_has_no_masked_field() -> None:
    record = make_record(
        decision_id="d-1", req_id=1, input_doc={"subject": {"user_id": "a"}}, result=None, revision="r",
        outcome="error", enforced=True, method="POST", path="/", status=400, requested_by="")
    assert "masked" not in record
