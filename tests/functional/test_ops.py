"""The operator's endpoints tell the truth: /health and /metrics agree, times are RFC 3339."""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime, timedelta

from tests.functional.conftest import BILLING, Stack


async def test_health_and_metrics_count_the_same_locks_in_force(stack: Stack) -> None:
    sid = stack.nova.add_server()
    soon = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
    for kind, expires in (("boot", None), ("delete", soon), ("state", None)):
        resp = await stack.client.post("/statelock/v1/locks", headers={"X-Auth-Token": BILLING}, json={
            "lock": {"kind": kind, "scope": "instance", "target": sid, "reason": kind, "expires_at": expires}})
        assert resp.status == 201, await resp.text()
    [state_lock] = [lk for lk in (await (await stack.client.get(
        f"/statelock/v1/locks?target={sid}&kind=state", headers={"X-Auth-Token": BILLING})).json())["locks"]]
    assert (await stack.client.delete(f"/statelock/v1/locks/{state_lock['id']}",
                                      headers={"X-Auth-Token": BILLING})).status == 204
    await asyncio.sleep(1.2)  # the delete lock has expired; the state lock is lifted: one in force
    health = await (await stack.client.get("/statelock/v1/health")).json()
    assert health["lockstore"]["locks"] == 1  # in force, as the metric counts them
    assert health["lockstore"]["locks_by_kind"] == {"state": 0, "boot": 1, "delete": 0}
    metrics = await (await stack.client.get("/metrics")).text()
    gauges = dict(re.findall(r'^statelock_active_locks\{kind="(\w+)"\} (\d+)\.0$', metrics, re.M))
    assert gauges == {"state": "0", "boot": "1", "delete": "0"}


async def test_health_times_are_rfc_3339(stack: Stack) -> None:
    health = await (await stack.client.get("/statelock/v1/health")).json()
    reload = health["policy"]["last_reload"]
    assert isinstance(reload, str) and reload.endswith("Z")
    assert abs(datetime.fromisoformat(reload.replace("Z", "+00:00")) - datetime.now(UTC)) < timedelta(minutes=5)
    assert health["audit"]["ok"] is True and health["audit"]["chain"]["broken_at"] is None
    assert health["status"] == "ok" and health["warnings"] == []
