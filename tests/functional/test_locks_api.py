"""Locks as a product: the lock API, Nova-visible lock state, scopes, expiry, suspend-lock."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.functional.conftest import ADMIN, BILLING, OWNER, Stack, check_every_decision_id

StackFactory = Callable[..., Awaitable[Stack]]
LEGAL = "legal-svc:service:legal"
AUDITOR = "audit-svc:service:auditor"


async def _place(stack: Stack, token: str, **lock: Any) -> Any:
    return await stack.client.post("/statelock/v1/locks", json={"lock": lock},
                                   headers={"X-Auth-Token": token})


async def _show(stack: Stack, sid: str, version: str = "2.73", token: str = OWNER) -> Any:
    resp = await stack.client.get(f"/v2.1/servers/{sid}", headers={
        "X-Auth-Token": token, "OpenStack-API-Version": f"compute {version}"})
    assert resp.status == 200
    return (await resp.json())["server"]


async def test_lock_api_crud_and_nova_view(stack: Stack) -> None:
    sid = stack.nova.add_server()
    resp = await _place(stack, LEGAL, kind="delete", scope="instance", target=sid,
                        reason="legal hold 42")
    assert resp.status == 201, await resp.text()
    lock = (await resp.json())["lock"]
    assert lock["id"].startswith("lk-") and lock["kind"] == "delete"
    assert lock["owner"]["user_id"] == "legal-svc"
    assert resp.headers["X-Statelock-Decision-Id"]

    server = await _show(stack, sid)
    assert server["locked"] is True and server["locked_reason"] == "legal hold 42"
    old = await _show(stack, sid, version="2.9")
    assert old["locked"] is True and "locked_reason" not in old
    older = await _show(stack, sid, version="2.1")
    assert "locked" not in older

    listing = await stack.client.get(f"/statelock/v1/locks?target={sid}",
                                     headers={"X-Auth-Token": AUDITOR})
    assert [lk["id"] for lk in (await listing.json())["locks"]] == [lock["id"]]
    one = await stack.client.get(f"/statelock/v1/locks/{lock['id']}",
                                 headers={"X-Auth-Token": AUDITOR})
    assert (await one.json())["lock"]["reason"] == "legal hold 42"

    # a delete lock blocks delete but not stop
    assert (await stack.action(sid, {"os-stop": None})).status == 202
    gone = await stack.client.delete(f"/v2.1/servers/{sid}", headers={"X-Auth-Token": OWNER})
    assert gone.status == 409
    # the owner, and even an admin, cannot lift a legal lock; legal can
    for token in (OWNER, ADMIN):
        denied = await stack.client.delete(f"/statelock/v1/locks/{lock['id']}",
                                           headers={"X-Auth-Token": token})
        assert denied.status == 403, token
    lifted = await stack.client.delete(f"/statelock/v1/locks/{lock['id']}",
                                       headers={"X-Auth-Token": LEGAL})
    assert lifted.status == 204
    assert (await _show(stack, sid))["locked"] is False
    # the lifted lock is history: still shown, lifted, naming who lifted it and by which decision
    kept = await stack.client.get(f"/statelock/v1/locks/{lock['id']}", headers={"X-Auth-Token": AUDITOR})
    assert kept.status == 200
    doc = (await kept.json())["lock"]
    assert (doc["state"], doc["active"], doc["lifted"]) == ("lifted", False, True)
    assert doc["lifted_by"]["user_id"] == "legal-svc"
    assert doc["lifted_decision_id"] == lifted.headers["X-Statelock-Decision-Id"]
    for query, listed in (("", False), ("?state=lifted", True), ("?state=all", True), ("?state=active", False)):
        resp = await stack.client.get(f"/statelock/v1/locks{query}", headers={"X-Auth-Token": AUDITOR})
        assert (lock["id"] in [lk["id"] for lk in (await resp.json())["locks"]]) is listed, query
    again = await stack.client.delete(f"/statelock/v1/locks/{lock['id']}", headers={"X-Auth-Token": LEGAL})
    assert again.status == 404
    assert "already lifted" in (await again.json())["itemNotFound"]["message"]


async def test_lock_api_refuses_bad_input(stack: Stack) -> None:
    sid = stack.nova.add_server()
    cases: list[dict[str, Any]] = [
        {"kind": "nope", "scope": "instance", "target": sid, "reason": "r"},
        {"kind": "state", "scope": "galaxy", "target": sid, "reason": "r"},
        {"kind": "state", "scope": "instance", "target": "not-a-uuid", "reason": "r"},
        {"kind": "state", "scope": "instance", "target": sid},
        {"kind": "state", "scope": "instance", "target": sid, "reason": "r", "extra": 1},
        {"kind": "state", "scope": "instance", "target": sid, "reason": "r",
         "expires_at": "yesterday"},
        {"kind": "state", "scope": "instance", "target": sid, "reason": "r",
         "expires_at": "2001-01-01T00:00:00Z"},
    ]
    for case in cases:
        resp = await _place(stack, ADMIN, **case)
        assert resp.status == 400, case
        assert "badRequest" in await resp.json()
    assert (await stack.client.get("/statelock/v1/locks")).status == 401


async def test_members_see_only_their_projects_locks(stack: Stack) -> None:
    sid = stack.nova.add_server()
    other = stack.nova.add_server(project_id="other")
    assert (await _place(stack, OWNER, kind="state", scope="instance", target=sid,
                         reason="mine")).status == 201
    assert (await _place(stack, "bob:other", kind="state", scope="instance", target=other,
                         reason="bob's")).status == 201
    resp = await stack.client.get("/statelock/v1/locks", headers={"X-Auth-Token": OWNER})
    assert [lk["reason"] for lk in (await resp.json())["locks"]] == ["mine"]
    resp = await stack.client.get("/statelock/v1/locks", headers={"X-Auth-Token": AUDITOR})
    assert len((await resp.json())["locks"]) == 2
    # and a member can't lock someone else's instance
    assert (await _place(stack, OWNER, kind="state", scope="instance", target=other,
                         reason="x")).status == 403


async def test_locked_list_filter(stack: Stack) -> None:
    locked = stack.nova.add_server()
    free = stack.nova.add_server()
    assert (await stack.action(locked, {"lock": {"locked_reason": "r"}})).status == 202
    for value, expected in (("true", [locked]), ("1", [locked]), ("No", [free])):
        resp = await stack.client.get(f"/v2.1/servers/detail?locked={value}", headers={
            "X-Auth-Token": OWNER, "OpenStack-API-Version": "compute 2.73"})
        assert resp.status == 200
        assert [s["id"] for s in (await resp.json())["servers"]] == expected, value
    upstream_paths = [r.path for r in stack.nova.received if "detail" in r.path]
    assert all("locked" not in p for p in upstream_paths)
    bad = await stack.client.get("/v2.1/servers/detail?locked=maybe", headers={
        "X-Auth-Token": OWNER, "OpenStack-API-Version": "compute 2.73"})
    assert bad.status == 400
    detail = await stack.client.get("/v2.1/servers/detail", headers={
        "X-Auth-Token": OWNER, "OpenStack-API-Version": "compute 2.73"})
    by_id = {s["id"]: s for s in (await detail.json())["servers"]}
    assert by_id[locked]["locked"] is True and by_id[free]["locked"] is False


async def test_project_lock_applies_to_every_instance_and_create(stack: Stack) -> None:
    a = stack.nova.add_server(project_id="demo")
    b = stack.nova.add_server(project_id="demo")
    elsewhere = stack.nova.add_server(project_id="other")
    resp = await _place(stack, BILLING, kind="boot", scope="project", target="demo",
                        reason="billing: account 7 suspended")
    assert resp.status == 201
    for sid in (a, b):
        denied = await stack.action(sid, {"os-start": None})
        assert denied.status == 409
        assert "account 7" in (await denied.json())["conflictingRequest"]["message"]
        assert (await _show(stack, sid))["locked"] is True
    assert (await stack.action(elsewhere, {"os-start": None}, token="bob:other")).status == 202
    create = await stack.client.post("/v2.1/servers", json={"server": {"name": "x"}},
                                     headers={"X-Auth-Token": OWNER})
    assert create.status == 409
    # stop is not a boot, so the boot lock lets it through
    assert (await stack.action(a, {"os-stop": None})).status == 202


async def test_host_lock_applies_to_instances_on_that_host(stack: Stack) -> None:
    on_host = stack.nova.add_server(host="cmp-7")
    off_host = stack.nova.add_server(host="cmp-8")
    resp = await _place(stack, ADMIN, kind="state", scope="host", target="cmp-7",
                        reason="host maintenance")
    assert resp.status == 201
    assert (await stack.action(on_host, {"reboot": {"type": "SOFT"}})).status == 409
    assert (await stack.action(off_host, {"reboot": {"type": "SOFT"}})).status == 202
    # a member can't place a host lock
    assert (await _place(stack, OWNER, kind="state", scope="host", target="cmp-8",
                         reason="x")).status == 403


async def test_expired_lock_stops_applying_without_a_sweeper(stack: Stack) -> None:
    sid = stack.nova.add_server()
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat()
    resp = await _place(stack, ADMIN, kind="state", scope="instance", target=sid,
                        reason="short", expires_at=soon)
    assert resp.status == 201
    lock_id = (await resp.json())["lock"]["id"]
    assert (await stack.action(sid, {"suspend": None})).status == 409
    await asyncio.sleep(1.7)
    assert (await stack.action(sid, {"suspend": None})).status == 202
    listing = await stack.client.get(f"/statelock/v1/locks?target={sid}&state=all",
                                     headers={"X-Auth-Token": ADMIN})
    [shown] = (await listing.json())["locks"]
    assert shown["id"] == lock_id and shown["expired"] is True and shown["active"] is False
    assert shown["state"] == "expired"
    in_force = await stack.client.get(f"/statelock/v1/locks?target={sid}", headers={"X-Auth-Token": ADMIN})
    assert (await in_force.json())["locks"] == []
    inactive = await stack.client.get("/statelock/v1/locks?active=false",
                                      headers={"X-Auth-Token": ADMIN})
    assert [lk["id"] for lk in (await inactive.json())["locks"]] == [lock_id]


async def test_suspend_lock_and_unlock_resume(stack: Stack) -> None:
    sid = stack.nova.add_server()
    stack.nova.received.clear()
    resp = await stack.client.post(f"/statelock/v1/instances/{sid}/suspend-lock",
                                   json={"reason": "billing: invoice 881 overdue"},
                                   headers={"X-Auth-Token": BILLING})
    assert resp.status == 200, await resp.text()
    lock = (await resp.json())["lock"]
    assert lock["kind"] == "boot" and lock["state"] == "active"
    assert stack.nova.servers[sid]["status"] == "SUSPENDED"
    suspend_calls = [r for r in stack.nova.received if r.action == "suspend"]
    assert len(suspend_calls) == 1
    assert suspend_calls[0].headers["X-Auth-Token"] == "statelock:service:admin"

    denied = await stack.action(sid, {"resume": None})
    assert denied.status == 409
    assert "invoice 881" in (await denied.json())["conflictingRequest"]["message"]
    assert (await stack.action(sid, {"reboot": {"type": "HARD"}}, token=ADMIN)).status == 409
    # the owner can't undo it, neither with Nova's unlock (403, as Nova's own lock) nor the API
    refused = await stack.action(sid, {"unlock": None})
    assert refused.status == 403
    assert lock["id"] in (await refused.json())["forbidden"]["message"]
    assert (await stack.action(sid, {"resume": None})).status == 409
    for token in (OWNER, ADMIN):
        undo = await stack.client.post(f"/statelock/v1/instances/{sid}/unlock-resume", json={},
                                       headers={"X-Auth-Token": token})
        assert undo.status == 403, token
    # a member can't suspend-lock
    other = stack.nova.add_server()
    assert (await stack.client.post(f"/statelock/v1/instances/{other}/suspend-lock",
                                    json={"reason": "x"}, headers={"X-Auth-Token": OWNER})
            ).status == 403

    undo = await stack.client.post(f"/statelock/v1/instances/{sid}/unlock-resume", json={},
                                   headers={"X-Auth-Token": BILLING})
    assert undo.status == 200, await undo.text()
    [unlocked] = (await undo.json())["unlocked"]
    assert (unlocked["id"], unlocked["state"], unlocked["active"]) == (lock["id"], "lifted", False)
    assert unlocked["lifted_decision_id"] == undo.headers["X-Statelock-Decision-Id"]
    for decision_id, state, result in ((resp.headers["X-Statelock-Decision-Id"], "active", "suspended"),
                                       (undo.headers["X-Statelock-Decision-Id"], "lifted", "resumed")):
        [done] = [r for r in stack.records() if r.get("type") == "completion" and r["decision_id"] == decision_id]
        assert done["statelock"]["upstream"]["status"] == 202 and done["statelock"]["upstream"]["result"] == result
        assert done["statelock"]["lock"] == {"ids": [lock["id"]], "state": state, "reconciled": False}
    assert stack.nova.servers[sid]["status"] == "ACTIVE"
    assert (await _show(stack, sid))["locked"] is False


async def test_failed_suspend_keeps_the_lock(stack: Stack) -> None:
    sid = stack.nova.add_server()
    stack.nova.action_status = 500
    resp = await stack.client.post(f"/statelock/v1/instances/{sid}/suspend-lock",
                                   json={"reason": "billing"}, headers={"X-Auth-Token": BILLING})
    assert resp.status == 502
    message = json.dumps(await resp.json())
    assert "is in force" in message
    stack.nova.action_status = 202
    listing = await stack.client.get(f"/statelock/v1/locks?target={sid}",
                                     headers={"X-Auth-Token": BILLING})
    [lock] = (await listing.json())["locks"]
    assert lock["state"] == "failed" and "suspend failed" in lock["note"]
    assert (await stack.action(sid, {"resume": None})).status == 409
    # the log proves it: the decision that placed the lock, completed with the backend's failure
    [done] = [r for r in stack.records() if r.get("type") == "completion"
              and r["decision_id"] == resp.headers["X-Statelock-Decision-Id"]]
    assert done["statelock"]["error_code"] == "upstream_error"
    assert done["statelock"]["upstream"]["status"] == 502
    assert done["statelock"]["lock"] == {"ids": [lock["id"]], "state": "failed", "reconciled": False}
    assert lock["placed_decision_id"] == resp.headers["X-Statelock-Decision-Id"]


@pytest.mark.parametrize("rounds", [30])
async def test_guard_no_forbidden_action_after_lock_returns(stack: Stack, rounds: int) -> None:
    """Many rounds: actions in flight while a lock is placed; none may land after it returns."""
    stack.nova.action_status = 202
    for _ in range(rounds):
        sid = stack.nova.add_server()

        async def act(sid: str = sid) -> int:
            return int((await stack.action(sid, {"os-stop": None})).status)

        tasks = [asyncio.create_task(act()) for _ in range(20)]
        await asyncio.sleep(0)
        resp = await stack.action(sid, {"lock": None})
        assert resp.status == 202
        # Everything the upstream will ever get for this server has arrived by now.
        count_at_return = len(stack.nova.actions_for(sid))
        tasks += [asyncio.create_task(act()) for _ in range(10)]
        statuses = await asyncio.gather(*tasks)
        assert len(stack.nova.actions_for(sid)) == count_at_return
        assert statuses.count(202) == count_at_return
        assert statuses[-10:] == [409] * 10
        await stack.action(sid, {"unlock": None})


async def test_every_refusal_of_the_lock_api_is_on_record_and_counted(stack: Stack, tmp_path: Path) -> None:
    """The ids of refused lock-API calls name records (the suite checks every response so)."""
    sid = stack.nova.add_server()
    past = {"lock": {"kind": "state", "scope": "instance", "target": sid, "reason": "r",
                     "expires_at": "2001-01-01T00:00:00Z"}}
    unknown = {"lock": {"kind": "state", "scope": "instance", "target": str(uuid.uuid4()), "reason": "r"}}
    refusals = [
        ("POST", "/statelock/v1/locks", past, 400),
        ("POST", "/statelock/v1/locks", unknown, 404),
        ("POST", f"/statelock/v1/instances/{sid}/unlock-resume", {}, 404),
        ("POST", f"/statelock/v1/instances/{sid}/suspend-lock", {"bogus": 1}, 400),
        ("DELETE", "/statelock/v1/locks/lk-nope", None, 404),
    ]
    for method, path, body, status in refusals:
        resp = await stack.client.request(method, path, json=body, headers={"X-Auth-Token": BILLING})
        assert resp.status == status, (path, await resp.text())
        decision_id = resp.headers["X-Statelock-Decision-Id"]
        [record] = [r for r in stack.decisions() if r["decision_id"] == decision_id]
        assert record["statelock"]["outcome"] == "error" and record["error"]["code"]
        found = await stack.client.get(f"/statelock/v1/decisions/{decision_id}", headers={"X-Auth-Token": AUDITOR})
        assert (await found.json())["decision"]["error"]["code"] == record["error"]["code"]
    metrics = await (await stack.client.get("/metrics")).text()
    assert 'statelock_refused_requests_total{code="bad_request"} 2.0' in metrics
    assert 'statelock_refused_requests_total{code="not_found"} 3.0' in metrics
    # the check itself: an id the log does not hold fails the suite
    check_every_decision_id(stack.client, tmp_path / "empty.jsonl")
    with pytest.raises(AssertionError, match="is on no record"):
        await stack.client.post("/statelock/v1/locks", json=past, headers={"X-Auth-Token": BILLING})


async def test_decisions_are_looked_up_by_id(stack: Stack) -> None:
    sid = stack.nova.add_server()
    placed = await stack.client.post("/statelock/v1/locks", headers={"X-Auth-Token": BILLING}, json={
        "lock": {"kind": "boot", "scope": "instance", "target": sid, "reason": "invoice 7"}})
    lock_id = (await placed.json())["lock"]["id"]
    denied = await stack.action(sid, {"os-start": None})
    assert denied.status == 409
    for decision_id, name in ((placed.headers["X-Statelock-Decision-Id"], "lock"),
                              (denied.headers["X-Statelock-Decision-Id"], "os-start")):
        found = await stack.client.get(f"/statelock/v1/decisions/{decision_id}",
                                       headers={"X-Auth-Token": AUDITOR})
        assert found.status == 200
        doc = await found.json()
        assert doc["decision"]["decision_id"] == decision_id
        assert doc["decision"]["input"]["action"]["name"] == name
        short = await stack.client.get(f"/statelock/v1/decisions/{decision_id[:8]}",
                                       headers={"X-Auth-Token": AUDITOR})
        assert (await short.json())["decision"]["decision_id"] == decision_id
    by_lock = await stack.client.get(f"/statelock/v1/decisions?lock={lock_id}", headers={"X-Auth-Token": AUDITOR})
    names = [d["input"]["action"]["name"] for d in (await by_lock.json())["decisions"]]
    assert names == ["lock", "os-start"]  # the record that created the lock comes first
    listed = await stack.client.get(f"/statelock/v1/decisions?decision_id={placed.headers['X-Statelock-Decision-Id']}",
                                    headers={"X-Auth-Token": AUDITOR})
    assert len((await listed.json())["decisions"]) == 1
    missing = await stack.client.get(f"/statelock/v1/decisions/{uuid.uuid4()}", headers={"X-Auth-Token": AUDITOR})
    assert missing.status == 404
    forbidden = await stack.client.get(f"/statelock/v1/decisions/{decision_id}", headers={"X-Auth-Token": OWNER})
    assert forbidden.status == 403


async def test_an_instance_timeline_shows_created_lifted_and_expired_in_order(stack: Stack) -> None:
    sid = stack.nova.add_server()
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    for kind, expires in (("delete", soon), ("state", None)):
        resp = await stack.client.post("/statelock/v1/locks", headers={"X-Auth-Token": LEGAL}, json={
            "lock": {"kind": kind, "scope": "instance", "target": sid, "reason": f"{kind} hold",
                     "expires_at": expires}})
        assert resp.status == 201, await resp.text()
    await asyncio.sleep(1.2)
    [state_lock] = [lk for lk in (await (await stack.client.get(
        f"/statelock/v1/locks?target={sid}", headers={"X-Auth-Token": LEGAL})).json())["locks"]]
    lifted = await stack.client.delete(f"/statelock/v1/locks/{state_lock['id']}", headers={"X-Auth-Token": LEGAL})
    assert lifted.status == 204
    history = await (await stack.client.get(f"/statelock/v1/instances/{sid}/locks",
                                            headers={"X-Auth-Token": LEGAL})).json()
    events = [(e["event"], e["kind"]) for e in history["events"]]
    assert events == [("created", "delete"), ("created", "state"), ("expired", "delete"), ("lifted", "state")]
    assert history["events"][-1]["by"] == "legal-svc"
    assert history["events"][-1]["decision_id"] == lifted.headers["X-Statelock-Decision-Id"]
    assert {lk["state"] for lk in history["locks"]} == {"expired", "lifted"}


@pytest.mark.parametrize(("scope", "target", "said"), [
    ("host", "no-such-host", "no compute service on host 'no-such-host'"),
    ("project", "no-such-project", "no server in project 'no-such-project'"),
    ("instance", "0f8c2d5e-9999-4a5b-9c6d-7e8f90a1b2c3", "could not be found"),
])
async def test_a_lock_on_a_target_that_does_not_exist_is_refused_unless_forced(
    stack: Stack, scope: str, target: str, said: str
) -> None:
    spec = {"kind": "state", "scope": scope, "target": target, "reason": "typo?"}
    refused = await stack.client.post("/statelock/v1/locks", json={"lock": spec}, headers={"X-Auth-Token": LEGAL})
    assert refused.status == 404
    message = (await refused.json())["itemNotFound"]["message"]
    assert said in message and "--force" in message
    assert (await (await stack.client.get("/statelock/v1/locks?state=all", headers={"X-Auth-Token": LEGAL})
                   ).json())["locks"] == []
    forced = await stack.client.post("/statelock/v1/locks", json={"lock": {**spec, "force": True}},
                                     headers={"X-Auth-Token": LEGAL})
    assert forced.status == 201, await forced.text()
    [record] = [r for r in stack.decisions() if r["decision_id"] == forced.headers["X-Statelock-Decision-Id"]]
    assert record["input"]["action"]["params"]["force"] is True


async def test_a_lock_on_a_known_host_or_project_needs_no_force(stack: Stack) -> None:
    stack.nova.add_server(project_id="acme", host="cmp-9")
    for scope, target in (("project", "acme"), ("host", "cmp-9"), ("host", "cmp-2")):
        placed = await stack.client.post("/statelock/v1/locks", headers={"X-Auth-Token": LEGAL}, json={
            "lock": {"kind": "delete", "scope": scope, "target": target, "reason": "hold"}})
        assert placed.status == 201, (target, await placed.text())
