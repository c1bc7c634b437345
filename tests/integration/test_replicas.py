"""Three ``statelock serve`` processes on one PostgreSQL in front of one upstream: the history check.

No balancer: clients pick a replica at random for every call. Concurrent Nova
``lock``, ``unlock`` and state-changing actions go to a handful of instances; every
call (start, end, replica, status) and every action the in-process upstream receives
(with its receive time, on the same clock) is recorded. The guarantee checked:

    after a lock call on an instance returned 202 at time T, the upstream receives no
    action for that instance until an unlock call on it has started,

where an unlock that may have run after the lock (it ended after the lock call
started) counts as ending the window at its start. With the advisory guard the
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
from dataclasses import dataclass, field
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
from tests.support.fake_nova import FakeNova, Received, build_app
from tests.support.paths import POLICIES
from tests.support.postgres import PgServer, pg_server_fixture, pg_url_fixture  # noqa: F401
from tests.support.process import free_port, start_statelock, stop, write_config

pytestmark = pytest.mark.integration
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

OWNER = "alice:demo"
REPLICAS = 3
INSTANCES = 4
WORKERS = 12
GUARDED_S = float(os.environ.get("STATELOCK_HISTORY_S", "30"))
UNGUARDED_S = 10.0
ACTIONS = ("os-stop", "os-start", "pause", "unpause", "suspend", "resume", "reboot")


@dataclass
class Call:
    """One client call as the client saw it (status None: no answer, e.g. the replica died)."""

    kind: str
    instance: str
    replica: int
    start: float
    end: float
    status: int | None


@dataclass
class Arrival:
    """One action as the upstream received it."""

    instance: str
    action: str
    at: float


@dataclass
class Violation:
    lock: Call
    arrival: Arrival

    def __str__(self) -> str:
        return (f"{self.arrival.action} on {self.arrival.instance[:8]} received "
                f"{(self.arrival.at - self.lock.end) * 1000:.1f} ms after a lock call (replica "
                f"{self.lock.replica}) returned 202")


@dataclass
class History:
    calls: list[Call] = field(default_factory=list)
    arrivals: list[Arrival] = field(default_factory=list)

    def summary(self) -> str:
        by = Counter(f"{c.kind}:{c.status}" for c in self.calls)
        return (f"{len(self.calls)} calls ({', '.join(f'{k} {n}' for k, n in sorted(by.items()))}); "
                f"{len(self.arrivals)} actions received upstream")


def check_history(history: History) -> list[Violation]:
    """Every forbidden action received inside a lock window (see the module docstring)."""
    violations: list[Violation] = []
    for instance in {c.instance for c in history.calls}:
        unlocks = [c for c in history.calls if c.kind == "unlock" and c.instance == instance]
        arrivals = [a for a in history.arrivals if a.instance == instance]
        for lock in history.calls:
            if lock.kind != "lock" or lock.instance != instance or lock.status != 202:
                continue
            window_end = min((u.start for u in unlocks if u.end > lock.start), default=float("inf"))
            violations += [Violation(lock, a) for a in arrivals if lock.end < a.at < window_end]
    return violations


def must_be_locked(history: History, instance: str) -> bool | None:
    """True/False when the history decides the instance's final lock state, None when it doesn't."""
    mine = [c for c in history.calls if c.instance == instance]
    locked = any(c.kind == "lock" and c.status == 202
                 and not any(u.kind == "unlock" and u.end > c.start for u in mine) for c in mine)
    unlocked = any(c.kind == "unlock" and c.status == 202
                   and not any(lk.kind == "lock" and lk.end > c.start for lk in mine) for c in mine)
    return True if locked else False if unlocked else None


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
        url = f"http://127.0.0.1:{self.ports[replica]}/v2.1/servers/{instance}/action"
        start = time.monotonic()
        status: int | None
        try:
            async with session.post(url, json=body, headers={"X-Auth-Token": OWNER}) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            status = None
        done = Call(kind, instance, replica, start, time.monotonic(), status)
        self.history.calls.append(done)
        return done


async def start_cluster(aiohttp_server: AiohttpServer, tmp_path: Path, pg_url: str, guard: str) -> Cluster:
    nova = FakeNova()
    servers = [nova.add_server(project_id="demo", user_id="alice") for _ in range(INSTANCES + 1)]
    history = History()

    async def record(req: Received) -> None:
        action = req.action
        if req.method == "POST" and action is not None:
            instance = next(s for s in servers if s in req.path)
            history.arrivals.append(Arrival(instance, action, time.monotonic()))

    nova.gate = record
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
    """Random traffic from WORKERS clients for ``seconds``; SIGKILL one replica at ``kill_at``."""
    live = list(range(REPLICAS))
    deadline = time.monotonic() + seconds
    killed: list[int] = []

    async def worker(rng: random.Random, session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            instance = rng.choice(cluster.servers)
            roll = rng.random()
            kind, body = (("lock", {"lock": None}) if roll < 0.25 else ("unlock", {"unlock": None})
                          if roll < 0.45 and instance != cluster.witness
                          else ("action", {rng.choice(ACTIONS): None}))
            await cluster.call(session, rng.choice(live), instance, kind, body)

    async def killer() -> None:
        assert kill_at is not None
        await asyncio.sleep(kill_at)
        victim = live.pop()
        os.kill(cluster.procs[victim].pid, signal.SIGKILL)
        killed.append(victim)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        tasks = [worker(random.Random(seed + n), session) for n in range(WORKERS)]
        if kill_at is not None:
            tasks.append(killer())
        await asyncio.gather(*tasks)
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
