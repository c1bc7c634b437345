"""The enforcement path end to end: real app, real embedded policy, real upstream app."""

from __future__ import annotations

import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from tests.functional.conftest import ADMIN, BILLING, OWNER, Stack
from tests.support.paths import BUNDLE_REVISION, POLICIES

StackFactory = Callable[..., Awaitable[Stack]]

BLOCKED_BY_OWNER_LOCK = [
    ("suspend", None),
    ("resume", None),
    ("os-start", None),
    ("os-stop", None),
    ("reboot", {"type": "HARD"}),
    ("pause", None),
    ("rebuild", {"imageRef": "img-1"}),
    ("forceDelete", None),
]


async def _lock(stack: Stack, sid: str, token: str, reason: str = "maintenance") -> None:
    resp = await stack.action(sid, {"lock": {"locked_reason": reason}}, token=token)
    assert resp.status == 202, await resp.text()


@pytest.mark.parametrize(("action", "arg"), BLOCKED_BY_OWNER_LOCK)
async def test_locked_instance_refuses_owner_state_changes(
    stack: Stack, action: str, arg: Any
) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER, "owner lock")
    resp = await stack.action(sid, {action: arg})
    assert resp.status == 409
    doc = await resp.json()
    assert doc["conflictingRequest"]["code"] == 409
    assert f"Instance {sid} is locked" in doc["conflictingRequest"]["message"]
    assert "owner lock" in doc["conflictingRequest"]["message"]
    assert resp.headers["X-Statelock-Decision-Id"]
    assert resp.headers["OpenStack-API-Version"] == "compute 2.73"
    assert stack.nova.actions_for(sid) == []


async def test_locked_instance_refuses_delete(stack: Stack) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER)
    resp = await stack.client.delete(f"/v2.1/servers/{sid}", headers={"X-Auth-Token": OWNER})
    assert resp.status == 409
    assert not [r for r in stack.nova.forwarded(sid) if r.method == "DELETE"]


async def test_reads_pass_on_locked_instance(stack: Stack) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER)
    resp = await stack.client.get(f"/v2.1/servers/{sid}", headers={"X-Auth-Token": OWNER})
    assert resp.status == 200
    assert (await resp.json())["server"]["id"] == sid
    listing = await stack.client.get("/v2.1/servers/detail", headers={"X-Auth-Token": OWNER})
    assert listing.status == 200


async def test_lock_and_unlock_are_served_not_forwarded(stack: Stack) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER)
    resp = await stack.action(sid, {"unlock": None})
    assert resp.status == 202
    assert stack.nova.actions_for(sid) == []


async def test_owner_cannot_unlock_admin_lock(stack: Stack) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, ADMIN, "admin lock")
    resp = await stack.action(sid, {"unlock": None}, token=OWNER)
    assert resp.status == 403
    assert "forbidden" in await resp.json()
    still = await stack.action(sid, {"os-stop": None})
    assert still.status == 409
    assert (await stack.action(sid, {"unlock": None}, token=ADMIN)).status == 202
    assert (await stack.action(sid, {"os-stop": None})).status == 202


async def test_admin_passes_owner_lock_and_override_is_recorded(stack: Stack) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER)
    resp = await stack.action(sid, {"os-stop": None}, token=ADMIN)
    assert resp.status == 202
    assert stack.nova.actions_for(sid) == ["os-stop"]
    allowed = [r for r in stack.decisions() if r["statelock"]["outcome"] == "allow"
               and r["input"]["action"]["name"] == "os-stop"]
    assert allowed and allowed[-1]["statelock"].get("overrides")


async def test_admin_cannot_pass_or_lift_billing_lock(stack: Stack) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, BILLING, "billing: invoice 881 overdue")
    denied = await stack.action(sid, {"os-start": None}, token=ADMIN)
    assert denied.status == 409
    assert "invoice 881" in (await denied.json())["conflictingRequest"]["message"]
    assert (await stack.action(sid, {"unlock": None}, token=ADMIN)).status == 403
    assert (await stack.action(sid, {"unlock": None}, token=BILLING)).status == 202
    assert (await stack.action(sid, {"os-start": None}, token=ADMIN)).status == 202


async def test_after_unlock_request_reaches_upstream_byte_for_byte(stack: Stack) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER)
    raw = b'{"reboot":  {"type": "SOFT"}}'
    assert (await stack.action(sid, None, raw=raw)).status == 409
    assert (await stack.action(sid, {"unlock": None})).status == 202
    resp = await stack.action(sid, None, raw=raw)
    assert resp.status == 202
    got = [r for r in stack.nova.forwarded(sid) if r.method == "POST"]
    assert len(got) == 1
    assert got[0].body == raw
    assert got[0].headers["Content-Length"] == str(len(raw))
    assert got[0].headers["X-Auth-Token"] == OWNER
    assert got[0].headers["OpenStack-API-Version"] == "compute 2.73"
    assert got[0].headers["X-Forwarded-For"] == "127.0.0.1"
    assert resp.headers["X-Statelock-Decision-Id"]


AMBIGUOUS = [
    b'{"suspend": null, "resume": null}',
    b'{"reboot": {"type": "SOFT"}, "reboot": {"type": "HARD"}}',
    b'{"reboot": {"type": "SOFT", "type": "HARD"}}',
    b"{}",
    b"[]",
    b'"suspend"',
    b"not json",
    b"",
    b'\xef\xbb\xbf{"suspend": null}',
    b'{"suspend": "\xff"}',
    b'{"SUSPEND": null}',
    b'{"no-such-action": null}',
]


@pytest.mark.parametrize("raw", AMBIGUOUS)
async def test_ambiguous_bodies_get_400_and_reach_nothing(stack: Stack, raw: bytes) -> None:
    sid = stack.nova.add_server()
    resp = await stack.action(sid, None, raw=raw)
    assert resp.status == 400
    doc = await resp.json()
    assert doc["badRequest"]["code"] == 400
    assert stack.nova.forwarded(sid) == []


async def test_unsupported_content_type_is_415(stack: Stack) -> None:
    sid = stack.nova.add_server()
    resp = await stack.client.post(
        f"/v2.1/servers/{sid}/action", data=b'{"suspend": null}',
        headers={"X-Auth-Token": OWNER, "Content-Type": "application/xml"})
    assert resp.status == 415
    assert stack.nova.forwarded(sid) == []


async def test_unknown_state_changing_route_is_refused(stack: Stack) -> None:
    sid = stack.nova.add_server()
    resp = await stack.client.post(f"/v2.1/servers/{sid}/frobnicate", data=b"{}",
                                   headers={"X-Auth-Token": OWNER})
    assert resp.status == 404
    assert stack.nova.forwarded(sid) == []


async def test_escaped_action_key_is_still_denied(stack: Stack) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER)
    resp = await stack.action(sid, None, raw=b'{"\\u0073uspend": null}')
    assert resp.status == 409
    assert stack.nova.actions_for(sid) == []


@pytest.mark.parametrize("path", [
    "/v2.1/servers/{sid}/action",
    "/v2/servers/{sid}/action",
    "/v2.1/0123abcd/servers/{sid}/action",
    "/v2.1//servers//{sid}//action",
    "/compute/v2.1/servers/{sid}/action",
    "/v2.1/servers/{SID}/action",
    "/v2.1/servers/{sid_pct}/action",
    "/v2.1/%73ervers/{sid}/%61ction",
])
async def test_url_forms_nova_accepts_are_all_enforced(stack: Stack, path: str) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER)
    url = (path.replace("{sid}", sid).replace("{SID}", sid.upper())
           .replace("{sid_pct}", sid.replace("-", "%2D")))
    resp = await stack.client.post(url, data=b'{"suspend": null}',
                                   headers={"X-Auth-Token": OWNER, "Content-Type": "application/json"})
    assert resp.status == 409, url
    assert stack.nova.actions_for(sid) == []


async def test_every_state_change_is_recorded_without_tokens(stack: Stack) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER)
    await stack.action(sid, {"suspend": None})
    await stack.action(sid, {"changePassword": {"adminPass": "s3cret-pass"}}, token=ADMIN)
    await stack.action(sid, {"suspend": None, "resume": None})
    text = stack.audit_path.read_text()
    assert OWNER not in text and ADMIN not in text
    assert "s3cret-pass" not in text
    outcomes = [r["statelock"]["outcome"] for r in stack.decisions()]
    assert outcomes == ["allow", "deny", "allow", "error"]
    deny = stack.decisions()[1]
    subject = deny["input"]["subject"]
    assert (subject["user_id"], subject["project_id"], subject["roles"]) == (
        "alice", "demo", ["member", "reader"])
    assert deny["result"]["lock_ids"] and deny["bundles"]["statelock"]["revision"]
    assert deny["input"]["locks"][0]["reason"] == "maintenance"


async def test_dry_run_forwards_and_records_what_would_have_happened(
    stack_factory: StackFactory,
) -> None:
    stack = await stack_factory(mode="dry-run")
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER)
    resp = await stack.action(sid, {"suspend": None})
    assert resp.status == 202
    assert stack.nova.actions_for(sid) == ["suspend"]
    rec = [r for r in stack.decisions() if r["input"]["action"]["name"] == "suspend"][-1]
    assert rec["statelock"]["outcome"] == "deny"
    assert rec["statelock"]["enforced"] is False
    assert rec["statelock"]["would_have"]["status"] == 409


async def test_undefined_policy_fails_closed(stack_factory: StackFactory, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(POLICIES, bundle)
    for rego in (bundle / "statelock").glob("*.rego"):
        rego.unlink()
    (bundle / "statelock" / "authz.rego").write_text(
        "package statelock.authz\n\ndecision := {\"allow\": true} if input.never\n")
    stack = await stack_factory(policy={"bundle": str(bundle)})
    sid = stack.nova.add_server()
    resp = await stack.action(sid, {"suspend": None})
    assert resp.status == 503
    assert "serviceUnavailable" in await resp.json()
    assert stack.nova.forwarded(sid) == []
    assert stack.decisions()[-1]["statelock"]["outcome"] == "error"
    read = await stack.client.get(f"/v2.1/servers/{sid}", headers={"X-Auth-Token": OWNER})
    assert read.status == 200


async def test_upstream_down_gives_502(stack_factory: StackFactory) -> None:
    stack = await stack_factory(backend={"upstream_url": "http://127.0.0.1:9"})
    resp = await stack.client.get("/v2.1/servers", headers={"X-Auth-Token": OWNER})
    assert resp.status == 502
    assert (await resp.json())["computeFault"]["code"] == 502


async def test_missing_token_is_401_and_not_forwarded(stack: Stack) -> None:
    sid = stack.nova.add_server()
    resp = await stack.client.post(f"/v2.1/servers/{sid}/action", data=b'{"suspend": null}',
                                   headers={"Content-Type": "application/json"})
    assert resp.status == 401
    assert (await resp.json())["error"]["code"] == 401
    assert stack.nova.forwarded(sid) == []


async def test_lock_reason_is_validated(stack: Stack) -> None:
    sid = stack.nova.add_server()
    resp = await stack.action(sid, {"lock": {"locked_reason": "x" * 256}})
    assert resp.status == 400
    resp = await stack.action(sid, {"lock": {"locked_reason": "ok", "extra": 1}})
    assert resp.status == 400


async def test_lock_on_missing_instance_is_404(stack: Stack) -> None:
    resp = await stack.action("8f0c1e2d-0000-4000-8000-000000000000", {"lock": None})
    assert resp.status == 404


async def test_other_project_cannot_lock(stack: Stack) -> None:
    sid = stack.nova.add_server(project_id="demo")
    resp = await stack.action(sid, {"lock": None}, token="bob:other")
    assert resp.status == 403
    assert (await stack.action(sid, {"suspend": None})).status == 202


async def test_health_reports_revision(stack: Stack) -> None:
    resp = await stack.client.get("/statelock/v1/health")
    assert resp.status == 200
    doc = await resp.json()
    assert doc["policy"]["revision"]
    assert doc["lockstore"]["ok"] is True
    assert json.dumps(doc)


async def test_metrics_count_decisions_and_locks(stack: Stack) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER)
    await stack.action(sid, {"suspend": None})
    await stack.action(sid, {"suspend": None, "resume": None})
    await stack.client.get(f"/v2.1/servers/{sid}", headers={"X-Auth-Token": OWNER})
    resp = await stack.client.get("/metrics")
    assert resp.status == 200
    text = await resp.text()
    assert 'statelock_decisions_total{action="suspend",outcome="deny"} 1.0' in text
    assert 'statelock_decisions_total{action="lock",outcome="allow"} 1.0' in text
    assert 'statelock_refused_requests_total{code="bad_request"} 1.0' in text
    assert 'statelock_active_locks{kind="state"} 1.0' in text
    assert "statelock_reads_forwarded_total 1.0" in text
    assert f'statelock_policy_info{{engine="embedded",revision="{BUNDLE_REVISION}"}} 1.0' in text
    assert "statelock_decision_seconds_count" in text


async def test_unlock_lifts_every_lock_that_shows_and_the_server_is_unlocked(stack: Stack) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER, "owner lock")
    for kind, scope, target in (("boot", "instance", sid), ("delete", "project", "demo")):
        placed = await stack.client.post("/statelock/v1/locks", headers={"X-Auth-Token": OWNER}, json={
            "lock": {"kind": kind, "scope": scope, "target": target, "reason": f"{kind} by owner"}})
        assert placed.status == 201, await placed.text()
    assert (await stack.action(sid, {"unlock": None})).status == 202
    shown = await stack.client.get(f"/v2.1/servers/{sid}", headers={
        "X-Auth-Token": OWNER, "OpenStack-API-Version": "compute 2.73"})
    assert (await shown.json())["server"]["locked"] is False
    [record] = [r for r in stack.decisions() if r["input"]["action"]["name"] == "unlock"]
    assert len(record["statelock"]["locks_lifted"]) == 3


async def test_unlock_of_a_server_without_locks_is_202(stack: Stack) -> None:
    sid = stack.nova.add_server()
    assert (await stack.action(sid, {"unlock": None})).status == 202


async def test_a_refused_unlock_lifts_nothing(stack: Stack) -> None:
    sid = stack.nova.add_server()
    await _lock(stack, sid, OWNER, "owner lock")
    await _lock(stack, sid, ADMIN, "admin lock")
    refused = await stack.action(sid, {"unlock": None})
    assert refused.status == 403
    message = (await refused.json())["forbidden"]["message"]
    assert "(authority admin)" in message and "admin lock" in message
    listed = await stack.client.get(f"/statelock/v1/locks?target={sid}", headers={"X-Auth-Token": ADMIN})
    assert len((await listed.json())["locks"]) == 2
