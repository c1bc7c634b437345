"""Three ``statelock serve`` processes on one PostgreSQL in front of one upstream: the history check.

No balancer: clients pick a replica at random for every call. The history and the
guarantee checked are those of ``tests/support/history.py``. With the advisory guard the
history holds for 30 s of traffic, through the SIGKILL of one replica, which loses no
lock (a witness instance locked through that replica stays locked and refused, and
the table agrees with every final state the history decides) and leaves no advisory
lock behind. With ``lockstore.guard: none`` the same check finds violations, so the
test can tell a guarded history from an unguarded one.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import psycopg
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.config import config_from_mapping
from sidecar.locks.pg_guard import advisory_key
from tests.support.fake_nova import FakeNova, build_app
from tests.support.history import OWNER, Arrival, Call, History, check_history, must_be_locked, random_traffic
from tests.support.paths import POLICIES
from tests.support.postgres import PgServer, pg_server_fixture, pg_url_fixture  # noqa: F401
from tests.support.process import free_port, start_statelock, stop, write_config

pytestmark = pytest.mark.integration
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

REPLICAS = 3
INSTANCES = 4
CLIENTS = 12
GUARDED_S = float(os.environ.get("STATELOCK_HISTORY_S", "30"))
UNGUARDED_S = 10.0


@dataclass
class Cluster:
    """The upstream, the replicas and what they were started with."""

    nova: FakeNova
    history: History
    ports: list[int]
    procs: list[asyncio.subprocess.Process]
    servers: list[str]

    @property
    def witness(self) -> str:
        """An instance that is locked and never unlocked: its lock must survive everything."""
        return self.servers[-1]

    async def call(self, session: aiohttp.ClientSession, replica: int, instance: str, kind: str,
                   body: dict[str, Any]) -> Call:
        """One recorded call."""
        return await self.history.call(session, f"http://127.0.0.1:{self.ports[replica]}", replica, instance,
                                       kind, body)


async def start_cluster(aiohttp_server: AiohttpServer, tmp_path: Path, pg_url: str, guard: str) -> Cluster:
    nova = FakeNova()
    servers = [nova.add_server(project_id="demo", user_id="alice") for _ in range(INSTANCES + 1)]
    history = History()
    history.record_arrivals(nova, servers)
    upstream = await aiohttp_server(build_app(nova))
    ports = [free_port() for _ in range(REPLICAS)]
    configs = [write_config(tmp_path / f"replica-{n}.yaml", {
        "backend": {"kind": "upstream", "upstream_url": str(upstream.make_url("")).rstrip("/"),
                    "service_auth": {"token": "statelock:service:admin"}},
        "lockstore": {"url": pg_url, "guard": guard, "guard_timeout_s": 5.0, "pool_size": 16},
        "policy": {"bundle": str(POLICIES)},
        "audit": {"path": str(tmp_path / f"decisions-{n}.jsonl")},
    }) for n in range(REPLICAS)]
    started = await asyncio.gather(*(
        start_statelock(configs[n], ports[n], tmp_path / f"replica-{n}.log", timeout_s=60)
        for n in range(REPLICAS)), return_exceptions=True)
    procs = [p for p in started if isinstance(p, asyncio.subprocess.Process)]
    if len(procs) < REPLICAS:
        for proc in procs:
            await stop(proc)
        raise next(e for e in started if isinstance(e, BaseException))
    return Cluster(nova, history, ports, procs, servers)


async def drive(cluster: Cluster, seconds: float, seed: int, kill_at: float | None = None) -> int | None:
    """Random traffic from CLIENTS clients for ``seconds``; SIGKILL one replica at ``kill_at``."""
    live = list(range(REPLICAS))
    killed: list[int] = []

    async def send(rng: random.Random, session: aiohttp.ClientSession, instance: str, kind: str,
                   body: dict[str, Any]) -> Call:
        return await cluster.call(session, rng.choice(live), instance, kind, body)

    async def killer() -> None:
        assert kill_at is not None
        await asyncio.sleep(kill_at)
        victim = live.pop()
        os.kill(cluster.procs[victim].pid, signal.SIGKILL)
        killed.append(victim)

    await random_traffic(send, cluster.servers, cluster.witness, seconds, seed, CLIENTS,
                         [killer()] if kill_at is not None else [])
    return killed[0] if killed else None


def advisory_locks(pg_server: PgServer, pg_url: str) -> int:
    return pg_server.advisory_locks(pg_url.rsplit("/", 1)[1])


def state_locks(pg_url: str) -> Counter[str]:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute("SELECT target FROM locks WHERE scope = 'instance' AND kind = 'state' "
                            "AND state <> 'lifted'").fetchall()
    return Counter(str(r[0]) for r in rows)


async def test_no_forbidden_action_after_a_lock_returned_across_three_replicas(
    aiohttp_server: AiohttpServer, tmp_path: Path, pg_server: PgServer, pg_url: str
) -> None:
    cluster = await start_cluster(aiohttp_server, tmp_path, pg_url, guard="advisory")
    seed = random.randrange(1 << 30)
    try:
        async with aiohttp.ClientSession() as session:
            # The witness is locked through the replica that will be killed.
            placed = await cluster.call(session, REPLICAS - 1, cluster.witness, "lock", {"lock": None})
            assert placed.status == 202
        victim = await drive(cluster, GUARDED_S, seed, kill_at=GUARDED_S / 2)
        assert victim == REPLICAS - 1
        assert victim is not None and await cluster.procs[victim].wait() == -signal.SIGKILL
        history = cluster.history
        violations = check_history(history)
        print(f"\nguard advisory, seed {seed}, {GUARDED_S:g} s, replica {victim} killed mid-traffic: "
              f"{history.summary()}; {len(violations)} violations")
        assert violations == [], "\n".join(map(str, violations[:10]))
        statuses = Counter((c.kind, c.status) for c in history.calls)
        assert statuses["lock", 202] >= 20 and statuses["unlock", 202] >= 20
        assert statuses["action", 202] >= 20 and statuses["action", 409] >= 20, statuses
        # Every allowed action arrived; nothing else did except, maybe, the ones left unanswered.
        assert statuses["action", 202] <= len(history.arrivals) <= statuses["action", 202] + statuses["action", None]

        # The killed replica's sessions are gone, and the live ones hold nothing while idle.
        deadline = time.monotonic() + 10
        while advisory_locks(pg_server, pg_url) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        assert advisory_locks(pg_server, pg_url) == 0

        # No lock was lost: the table agrees with every state the history decides.
        table = state_locks(pg_url)
        decided = {s: must_be_locked(history, s) for s in cluster.servers}
        for instance, locked in decided.items():
            if locked is not None:
                assert (table[instance] > 0) is locked, (instance, locked, table)
        assert decided[cluster.witness] is True
        assert not [a for a in history.arrivals if a.instance == cluster.witness]
        async with aiohttp.ClientSession() as session:
            for replica in range(REPLICAS - 1):
                refused = await cluster.call(session, replica, cluster.witness, "action", {"os-start": None})
                assert refused.status == 409
        print(f"final lock state decided by the history for {sum(v is not None for v in decided.values())}"
              f" of {INSTANCES + 1} instances (the witness, locked through the killed replica, among them);"
              " all agree with the table")
    finally:
        for proc in cluster.procs:
            await stop(proc)


async def test_the_history_check_catches_races_without_the_guard(
    aiohttp_server: AiohttpServer, tmp_path: Path, pg_url: str
) -> None:
    cluster = await start_cluster(aiohttp_server, tmp_path, pg_url, guard="none")
    seed = random.randrange(1 << 30)
    try:
        await drive(cluster, UNGUARDED_S, seed)
        violations = check_history(cluster.history)
        print(f"\nguard none (UNSAFE), seed {seed}, {UNGUARDED_S:g} s: {cluster.history.summary()}; "
              f"{len(violations)} violations, e.g. {violations[0] if violations else '-'}")
        assert violations, "the history check found no race without the guard"
    finally:
        for proc in cluster.procs:
            await stop(proc)


async def test_a_guard_held_by_another_replica_fails_closed_in_time(
    aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, tmp_path: Path, pg_url: str
) -> None:
    nova = FakeNova()
    sid = nova.add_server(project_id="demo", user_id="alice")
    upstream = await aiohttp_server(build_app(nova))
    cfg = config_from_mapping({
        "backend": {"kind": "upstream", "upstream_url": str(upstream.make_url("")).rstrip("/"),
                    "service_auth": {"token": "statelock:service:admin"}},
        "lockstore": {"url": pg_url, "guard_timeout_s": 0.5},
        "policy": {"bundle": str(POLICIES)},
        "audit": {"path": str(tmp_path / "decisions.jsonl")},
    }, env={})
    client = await aiohttp_client(create_app(cfg))
    headers = {"X-Auth-Token": OWNER}
    with psycopg.connect(pg_url, autocommit=True) as other:
        # Another replica is inside a lock call on this instance and does not come back.
        other.execute("SELECT pg_advisory_lock(%s)", (advisory_key(sid),))
        for body in ({"os-stop": None}, {"lock": None}):
            started = time.monotonic()
            resp = await client.post(f"/v2.1/servers/{sid}/action", json=body, headers=headers)
            assert resp.status == 503, await resp.text()
            assert "was not free within 0.5s" in (await resp.json())["serviceUnavailable"]["message"]
            assert time.monotonic() - started < 3
        assert nova.actions_for(sid) == []
    resp = await client.post(f"/v2.1/servers/{sid}/action", json={"os-stop": None}, headers=headers)
    assert resp.status == 202
    assert nova.actions_for(sid) == ["os-stop"]


def test_check_history_rules() -> None:
    lock = Call("lock", "i", 0, 1.0, 2.0, 202)
    cases: list[tuple[list[Call], float, int]] = [
        ([lock], 3.0, 1),                                                  # after the lock returned
        ([lock], 1.5, 0),                                                  # before it returned
        ([lock, Call("unlock", "i", 1, 2.5, 2.6, 202)], 3.0, 0),           # after an unlock started
        ([lock, Call("unlock", "i", 1, 2.5, 2.6, 202)], 2.4, 1),           # before it started
        ([lock, Call("unlock", "i", 1, 0.5, 1.5, 202)], 3.0, 0),           # overlapping unlock may be later
        ([lock, Call("unlock", "i", 1, 0.2, 0.5, 202)], 3.0, 1),           # an unlock done before the lock
        ([Call("lock", "i", 0, 1.0, 2.0, 409)], 3.0, 0),                   # a refused lock opens no window
        ([Call("lock", "i", 0, 1.0, 2.0, None)], 3.0, 0),                  # nor one with no answer
    ]
    for calls, at, expected in cases:
        assert len(check_history(History(calls, [Arrival("i", "os-stop", at)]))) == expected, (calls, at)


def test_final_lock_state_rules() -> None:
    def history(*calls: tuple[str, float, float, int | None]) -> History:
        return History([Call(k, "i", 0, s, e, st) for k, s, e, st in calls])

    assert must_be_locked(history(("lock", 1, 2, 202)), "i") is True
    assert must_be_locked(history(("lock", 1, 2, 202), ("unlock", 3, 4, 202)), "i") is False
    assert must_be_locked(history(("lock", 1, 2, 202), ("unlock", 1.5, 3, None)), "i") is None
    assert must_be_locked(history(("unlock", 1, 2, 202), ("lock", 1.5, 3, None)), "i") is None
    assert must_be_locked(history(), "i") is None
