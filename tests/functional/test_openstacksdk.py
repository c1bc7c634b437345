"""A real client, openstacksdk, drives Statelock unchanged (token auth with an endpoint override)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from keystoneauth1 import session as ks_session
from keystoneauth1 import token_endpoint
from openstack import connection, exceptions

from tests.functional.conftest import ADMIN, BILLING, OWNER, Stack


def _connect(base_url: str, token: str) -> Any:
    sess = ks_session.Session(auth=token_endpoint.Token(base_url + "/v2.1", token))
    return connection.Connection(session=sess, compute_api_version="2.73",
                                 compute_endpoint_override=base_url + "/v2.1")


def _sdk_flow(base_url: str, sid: str) -> dict[str, Any]:
    owner = _connect(base_url, OWNER)
    admin = _connect(base_url, ADMIN)
    out: dict[str, Any] = {}
    owner.compute.lock_server(sid, locked_reason="sdk: maintenance window")
    server = owner.compute.get_server(sid)
    out["locked"], out["reason"] = server.is_locked, server.locked_reason
    with pytest.raises(exceptions.ConflictException) as conflict:
        owner.compute.suspend_server(sid)
    out["conflict"] = str(conflict.value)
    admin.compute.lock_server(sid, locked_reason="admin says no")
    with pytest.raises(exceptions.ForbiddenException):
        owner.compute.unlock_server(sid)
    admin.compute.unlock_server(sid)
    owner.compute.suspend_server(sid)
    out["after"] = owner.compute.get_server(sid).is_locked
    return out


async def test_openstacksdk_lock_show_conflict_unlock(stack: Stack) -> None:
    sid = stack.nova.add_server()
    base_url = str(stack.client.server.make_url("")).rstrip("/")
    out = await asyncio.to_thread(_sdk_flow, base_url, sid)
    assert out["locked"] is True
    assert out["reason"] == "sdk: maintenance window"
    assert "is locked" in out["conflict"]
    assert out["after"] is False
    assert stack.nova.actions_for(sid) == ["suspend"]


def _sdk_unlock(base_url: str, sid: str) -> tuple[str, bool]:
    owner = _connect(base_url, OWNER)
    with pytest.raises(exceptions.ForbiddenException) as refused:
        owner.compute.unlock_server(sid)
    return str(refused.value), bool(owner.compute.get_server(sid).is_locked)


async def test_openstacksdk_unlock_of_a_billing_lock_raises_and_the_lock_stays(stack: Stack) -> None:
    sid = stack.nova.add_server()
    resp = await stack.client.post(f"/statelock/v1/instances/{sid}/suspend-lock",
                                   json={"reason": "billing: invoice 881 overdue"},
                                   headers={"X-Auth-Token": BILLING})
    assert resp.status == 200, await resp.text()
    lock_id = (await resp.json())["lock"]["id"]
    base_url = str(stack.client.server.make_url("")).rstrip("/")
    message, still_locked = await asyncio.to_thread(_sdk_unlock, base_url, sid)
    assert still_locked is True
    assert lock_id in message and "authority billing" in message
    assert "billing: invoice 881 overdue" in message
    listed = await stack.client.get(f"/statelock/v1/locks?target={sid}", headers={"X-Auth-Token": BILLING})
    assert [lk["id"] for lk in (await listed.json())["locks"]] == [lock_id]
