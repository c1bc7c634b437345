"""Two replicas on one PostgreSQL, each with its own decision log: each shows the decisions of both.

Two Statelock apps share the lock store's database (and so the decision index) in
front of one in-process upstream; each writes its own chain. ``GET
/statelock/v1/decisions`` and the console's decisions page on either replica list
the decisions of both, each marked with its replica and chain, and a decision made
on one opens on the other.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from tests.functional.conftest import make_config
from tests.support.fake_nova import FakeNova, build_app
from tests.support.postgres import PgServer, pg_server_fixture, pg_url_fixture  # noqa: F401

pytestmark = pytest.mark.integration

AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
AUDITOR = "audit-svc:service:auditor"


async def _login(client: TestClient[Any, Any]) -> None:
    page = await (await client.get("/statelock/ui/login")).text()
    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf is not None
    resp = await client.post("/statelock/ui/login", data={"csrf": csrf.group(1), "token": AUDITOR},
                             allow_redirects=False)
    assert resp.status == 303, await resp.text()


async def _listed(client: TestClient[Any, Any], count: int) -> dict[str, Any]:
    """The os-stop decisions the replica lists, once all ``count`` are there with their completions.

    A completion is written after its request was answered, and another replica's rows
    reach the index when that replica has written them: both are waited for (5 s at most).
    """
    deadline = asyncio.get_running_loop().time() + 5
    while True:
        resp = await client.get("/statelock/v1/decisions?action=os-stop", headers={"X-Auth-Token": AUDITOR})
        by_id = {d["decision_id"]: d["statelock"] for d in (await resp.json())["decisions"]}
        if (len(by_id) == count and all("upstream" in st for st in by_id.values())) \
                or asyncio.get_running_loop().time() > deadline:
            return by_id
        await asyncio.sleep(0.05)


async def test_each_replica_shows_the_decisions_of_both(aiohttp_server: AiohttpServer,
                                                        aiohttp_client: AiohttpClient, pg_url: str,
                                                        tmp_path: Path) -> None:
    nova = FakeNova()
    upstream = await aiohttp_server(build_app(nova))
    url = str(upstream.make_url("")).rstrip("/")
    clients = []
    for name in ("r1", "r2"):
        home = tmp_path / name
        home.mkdir()
        cfg = make_config(home, url, lockstore={"url": pg_url},
                          audit={"path": str(home / "decisions.jsonl"), "flush_window_ms": 1.0, "replica": name})
        clients.append(await aiohttp_client(create_app(cfg)))
    made: dict[str, list[str]] = {"r1": [], "r2": []}
    for n in range(6):
        name = ("r1", "r2")[n % 2]
        sid = nova.add_server()
        resp = await clients[n % 2].post(f"/v2.1/servers/{sid}/action", json={"os-stop": None},
                                         headers={"X-Auth-Token": "alice:demo"})
        assert resp.status == 202
        made[name].append(resp.headers["X-Statelock-Decision-Id"])
    for client, other in ((clients[0], "r2"), (clients[1], "r1")):
        by_id = await _listed(client, 6)
        for name, ids in made.items():
            for decision_id in ids:
                assert by_id[decision_id]["replica"] == name
                assert by_id[decision_id]["chain"] == str((tmp_path / name / "decisions.jsonl").resolve())
                assert by_id[decision_id]["upstream"]["status"] == 202  # NOTE: its completion came along
        theirs = made[other][0]
        one = await client.get(f"/statelock/v1/decisions/{theirs}", headers={"X-Auth-Token": AUDITOR})
        assert one.status == 200 and (await one.json())["decision"]["decision_id"] == theirs
    await _login(clients[1])
    page = await (await clients[1].get("/statelock/ui/decisions?action=os-stop")).text()
    for decision_id in made["r1"] + made["r2"]:
        assert f'title="{decision_id}"' in page
    assert page.count(">r1 · #") == 3 and page.count(">r2 · #") == 3
    detail = await (await clients[1].get(f"/statelock/ui/decisions/{made['r1'][0]}")).text()
    assert "r1 · " in detail and made["r1"][0] in detail
