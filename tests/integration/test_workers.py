"""``statelock serve`` with ``server.workers: 2`` on SQLite: the guard across workers, their chains, their stop.

The history check of ``tests/support/history.py`` against two workers on one port
(the kernel spreads the clients' connections over them): with the cross-process guard
no forbidden action reaches the upstream once a lock call returned; with
``lockstore.guard: none`` the same check finds violations. Then the process side: a
SIGTERM drains both workers (readiness 503, calls in flight finished, exit 0), every
worker's chain verifies, a killed worker is reported and started again, a busy port
is one line and exit 1, a worker that can't start stops the start, workers stop on
their own when the supervisor is killed, ``/metrics`` counts what every worker did, and
(SQLite and PostgreSQL) a lock placed through one worker holds in the other, whose
decisions API shows the decisions of both.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import sqlite3
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.cli import main
from tests.support.fake_nova import FakeNova, Received, build_app
from tests.support.history import OWNER, Call, History, check_history, must_be_locked, random_traffic
from tests.support.paths import POLICIES, ROOT
from tests.support.postgres import pg_server_fixture, pg_url_fixture  # noqa: F401
from tests.support.process import free_port, start_statelock, stop, wait_for_log, write_config

pytestmark = pytest.mark.integration
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]

INSTANCES = 4
CLIENTS = 12
GUARDED_S = float(os.environ.get("STATELOCK_HISTORY_S", "25"))
UNGUARDED_S = 10.0
READY = "all 2 workers listening"


async def _start_workers(config: Path, port: int, log: Path) -> asyncio.subprocess.Process:
    """``statelock serve`` with 2 workers, once both listen."""
    proc = await start_statelock(config, port, log, timeout_s=60)
    try:
        await wait_for_log(log, READY)
    except AssertionError:
        await stop(proc)
        raise
    return proc


def _raw(tmp_path: Path, upstream: str, guard: str = "advisory", **top: Any) -> dict[str, Any]:
    return {
        "server": {"workers": 2},
        "backend": {"kind": "upstream", "upstream_url": upstream,
                    "service_auth": {"token": "statelock:service:admin"}},
        "lockstore": {"url": f"sqlite:///{tmp_path}/locks.db", "guard": guard, "guard_timeout_s": 5.0},
        "policy": {"bundle": str(POLICIES)},
        "audit": {"path": str(tmp_path / "decisions.jsonl")},
        **top,
    }


def _url(upstream: TestServer) -> str:
    return str(upstream.make_url("")).rstrip("/")


def _chain_records(tmp_path: Path) -> dict[str, int]:
    return {name: len((tmp_path / name).read_text().splitlines())
            for name in ("decisions.jsonl", "decisions-w2.jsonl")}


def _state_locks(tmp_path: Path) -> Counter[str]:
    with sqlite3.connect(tmp_path / "locks.db") as conn:
        rows = conn.execute("SELECT target FROM locks WHERE scope = 'instance' AND kind = 'state' "
                            "AND state <> 'lifted'").fetchall()
    return Counter(str(r[0]) for r in rows)


async def _run_history(aiohttp_server: AiohttpServer, tmp_path: Path, guard: str,
                       seconds: float) -> tuple[History, list[str], asyncio.subprocess.Process]:
    nova = FakeNova()
    servers = [nova.add_server(project_id="demo", user_id="alice") for _ in range(INSTANCES + 1)]
    history = History()
    history.record_arrivals(nova, servers)
    upstream = await aiohttp_server(build_app(nova))
    port = free_port()
    config = write_config(tmp_path / "statelock.yaml", _raw(tmp_path, _url(upstream), guard))
    proc = await _start_workers(config, port, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    witness = servers[-1]

    async def send(rng: random.Random, session: aiohttp.ClientSession, instance: str, kind: str,
                   body: dict[str, Any]) -> Call:
        return await history.call(session, base, 0, instance, kind, body)

    async with aiohttp.ClientSession() as session:
        assert (await history.call(session, base, 0, witness, "lock", {"lock": None})).status == 202
    await random_traffic(send, servers, witness, seconds, random.randrange(1 << 30), CLIENTS)
    return history, servers, proc


async def test_no_forbidden_action_after_a_lock_returned_across_two_workers(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    history, servers, proc = await _run_history(aiohttp_server, tmp_path, "advisory", GUARDED_S)
    try:
        violations = check_history(history)
        chains = _chain_records(tmp_path)
        print(f"\nguard advisory (file guard), 2 workers on SQLite, {GUARDED_S:g} s: {history.summary()}; "
              f"records per chain {chains}; {len(violations)} violations")
        assert violations == [], "\n".join(map(str, violations[:10]))
        statuses = Counter((c.kind, c.status) for c in history.calls)
        assert statuses["lock", 202] >= 20 and statuses["unlock", 202] >= 20
        assert statuses["action", 202] >= 20 and statuses["action", 409] >= 20, statuses
        assert statuses["action", 202] == len(history.arrivals)
        assert not [c for c in history.calls if c.status not in (202, 409)], statuses
        assert min(chains.values()) >= 50, f"both workers must have decided: {chains}"
        table = _state_locks(tmp_path)
        for instance in servers:
            locked = must_be_locked(history, instance)
            if locked is not None:
                assert (table[instance] > 0) is locked, (instance, locked, table)
        assert not [a for a in history.arrivals if a.instance == servers[-1]]
    finally:
        await stop(proc)
    assert proc.returncode == 0
    assert main(["audit", "verify", "--config", str(tmp_path / "statelock.yaml")]) == 0


async def test_the_history_check_catches_races_between_workers_without_the_guard(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    history, _, proc = await _run_history(aiohttp_server, tmp_path, "none", UNGUARDED_S)
    try:
        violations = check_history(history)
        print(f"\nguard none (UNSAFE), 2 workers on SQLite, {UNGUARDED_S:g} s: {history.summary()}; "
              f"{len(violations)} violations, e.g. {violations[0] if violations else '-'}")
        assert violations, "the history check found no race without the guard"
    finally:
        await stop(proc)


async def _serve_once(config: Path, port: int) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "serve", "--config", str(config), cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={"STATELOCK_LISTEN": f"127.0.0.1:{port}", "PATH": "/usr/bin:/bin"})
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return int(proc.returncode or 0), out.decode()


async def test_a_busy_port_is_one_line_and_exit_1_with_workers(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out = await _serve_once(write_config(tmp_path / "c.yaml", _raw(tmp_path, "http://127.0.0.1:9")),
                                      port)
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in out
    assert "Traceback" not in out and "starting 2 workers" not in out
    assert len(out.strip().splitlines()) == 1, out
    assert not (tmp_path / "decisions.jsonl").exists(), "nothing may be opened before the bind"


async def _worker_sessions(base: str, want: set[int]) -> dict[int, tuple[aiohttp.ClientSession, int]]:
    """One keep-alive connection to each wanted worker: worker index -> (its session, its pid)."""
    found: dict[int, tuple[aiohttp.ClientSession, int]] = {}
    for _ in range(60):
        session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=1))
        async with session.get(f"{base}/statelock/v1/health") as resp:
            worker = (await resp.json())["worker"]
        assert worker["count"] == 2
        if worker["index"] in want and worker["index"] not in found:
            found[worker["index"]] = (session, worker["pid"])
        else:
            await session.close()
        if set(found) == want:
            return found
    raise AssertionError(f"the kernel never sent a connection to workers {want - set(found)}")


async def test_sigterm_drains_both_workers_and_every_chain_verifies(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    nova = FakeNova()
    sids = [nova.add_server() for _ in range(2)]
    arrived: list[str] = []
    release = asyncio.Event()

    async def slow_stop(req: Received) -> None:
        if req.action == "os-stop":
            arrived.append(req.path)
            await release.wait()

    nova.gate = slow_stop
    upstream = await aiohttp_server(build_app(nova))
    config = write_config(tmp_path / "c.yaml", _raw(tmp_path, _url(upstream), shutdown_drain_s=2.0,
                                                    shutdown_timeout_s=20))
    port = free_port()
    log = tmp_path / "serve.log"
    proc = await _start_workers(config, port, log)
    base = f"http://127.0.0.1:{port}"
    sessions = await _worker_sessions(base, {1, 2})
    try:
        calls = [asyncio.create_task(session.post(f"{base}/v2.1/servers/{sid}/action", json={"os-stop": None},
                                                  headers={"X-Auth-Token": OWNER}))
                 for (session, _), sid in zip(sessions.values(), sids, strict=True)]
        deadline = time.monotonic() + 10
        while len(arrived) < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        assert len(arrived) == 2
        proc.terminate()
        stopped_at = time.monotonic()
        await asyncio.sleep(0.3)
        probes = 0
        while time.monotonic() - stopped_at < 1.5:  # new connections land on either worker: both say 503
            async with aiohttp.ClientSession() as probe, probe.get(f"{base}/statelock/v1/readyz") as resp:
                assert resp.status == 503 and (await resp.json())["draining"] is True
            probes += 1
        assert probes >= 3
        await asyncio.sleep(stopped_at + 2.5 - time.monotonic())  # past shutdown_drain_s: both listeners closed
        with pytest.raises(aiohttp.ClientConnectionError):
            async with aiohttp.ClientSession() as late, late.get(f"{base}/statelock/v1/livez"):
                pass
        release.set()
        for call in calls:
            resp = await asyncio.wait_for(call, 10)
            assert resp.status == 202
            resp.release()
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    finally:
        release.set()
        for session, _ in sessions.values():
            await session.close()
        await stop(proc)
    text = log.read_text()
    for worker in (1, 2):
        assert any(f" w{worker} " in line and "SIGTERM received: draining (readiness 503), 1 requests in flight"
                   in line for line in text.splitlines()), text
    assert "statelock supervisor stopped: 2 workers stopped cleanly" in text
    assert sorted(nova.actions_for(sid) for sid in sids) == [["os-stop"], ["os-stop"]]
    assert main(["audit", "verify", "--config", str(config)]) == 0
    assert all(n >= 2 for n in _chain_records(tmp_path).values())  # a decision and its completion each


async def test_a_killed_worker_is_reported_and_started_again(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    nova = FakeNova()
    sid = nova.add_server()
    upstream = await aiohttp_server(build_app(nova))
    config = write_config(tmp_path / "c.yaml", _raw(tmp_path, _url(upstream)))
    port = free_port()
    log = tmp_path / "serve.log"
    proc = await _start_workers(config, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        sessions = await _worker_sessions(base, {2})
        session, pid = sessions[2]
        resp = await session.post(f"{base}/v2.1/servers/{sid}/action", json={"os-stop": None},
                                  headers={"X-Auth-Token": OWNER})
        assert resp.status == 202
        resp.release()
        await session.close()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while "worker 2 listening again" not in log.read_text() and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        text = log.read_text()
        assert f"worker 2 (pid {pid}) ended (killed by SIGKILL); starting it again" in text
        sessions = await _worker_sessions(base, {2})
        session, new_pid = sessions[2]
        assert new_pid != pid
        resp = await session.post(f"{base}/v2.1/servers/{sid}/action", json={"os-start": None},
                                  headers={"X-Auth-Token": OWNER})
        assert resp.status == 202
        resp.release()
        # Every worker's counters, whichever worker answers /metrics: 2 reads forwarded in all.
        for path in ("/v2.1/servers", "/v2.1/servers/detail"):
            async with aiohttp.ClientSession() as reader, reader.get(
                    f"{base}{path}", headers={"X-Auth-Token": OWNER}) as got:
                assert got.status == 200
        await session.close()
        for _ in range(4):
            async with aiohttp.ClientSession() as scraper, scraper.get(f"{base}/metrics") as got:
                text = await got.text()
            assert "statelock_reads_forwarded_total 2.0" in text, text
            assert 'statelock_decisions_total{action="os-stop",outcome="allow"} 1.0' in text
            assert 'statelock_decisions_total{action="os-start",outcome="allow"} 1.0' in text
    finally:
        await stop(proc)
    assert proc.returncode == 0
    assert main(["audit", "verify", "--config", str(config)]) == 0


async def test_a_worker_that_fails_to_start_stops_the_start_with_its_one_line(tmp_path: Path) -> None:
    (tmp_path / "decisions-w2.jsonl").mkdir()  # worker 2's chain can't be a file: it can't open its log
    code, out = await _serve_once(write_config(tmp_path / "c.yaml", _raw(tmp_path, "http://127.0.0.1:9")),
                                  free_port())
    assert code == 1, out
    lines = out.strip().splitlines()
    [failed] = [line for line in lines if "could not start" in line]
    assert " w2 " in failed and "decisions-w2.jsonl" in failed
    assert any(" w1 " in line and "statelock stopped:" in line for line in lines), out
    assert "all 2 workers listening" not in out and "Traceback" not in out


async def test_workers_stop_on_their_own_when_the_supervisor_is_killed(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    upstream = await aiohttp_server(build_app(FakeNova()))
    config = write_config(tmp_path / "c.yaml", _raw(tmp_path, _url(upstream)))
    port = free_port()
    log = tmp_path / "serve.log"
    proc = await _start_workers(config, port, log)
    try:
        sessions = await _worker_sessions(f"http://127.0.0.1:{port}", {1, 2})
        for session, _ in sessions.values():
            await session.close()
        proc.kill()
        await proc.wait()
        deadline = time.monotonic() + 20
        alive = [pid for _, pid in sessions.values()]
        while alive and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
            alive = [pid for pid in alive if _alive(pid)]
        assert alive == [], f"workers {alive} outlived their supervisor"
    finally:
        await stop(proc)
    text = log.read_text()
    assert text.count("supervisor gone received: draining") == 2, text
    assert main(["audit", "verify", "--config", str(config)]) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # NOTE: an exited child of the killed supervisor is a zombie until init reaps it.
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.parametrize("store", ["sqlite", "postgresql"])
async def test_every_worker_guards_and_shows_the_decisions_of_all(
    aiohttp_server: AiohttpServer, tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    nova = FakeNova()
    sid = nova.add_server(project_id="demo", user_id="alice")
    upstream = await aiohttp_server(build_app(nova))
    raw = _raw(tmp_path, _url(upstream))
    if store == "postgresql":
        raw["lockstore"]["url"] = request.getfixturevalue("pg_url")
    config = write_config(tmp_path / "c.yaml", raw)
    port = free_port()
    proc = await _start_workers(config, port, tmp_path / "serve.log")
    base = f"http://127.0.0.1:{port}"
    sessions = await _worker_sessions(base, {1, 2})
    owner = {"X-Auth-Token": OWNER}
    try:
        one, two = sessions[1][0], sessions[2][0]
        ids = []
        async with one.post(f"{base}/v2.1/servers/{sid}/action", json={"os-stop": None}, headers=owner) as resp:
            assert resp.status == 202
            ids.append(resp.headers["X-Statelock-Decision-Id"])
        async with one.post(f"{base}/v2.1/servers/{sid}/action", json={"lock": None}, headers=owner) as resp:
            assert resp.status == 202
        async with two.post(f"{base}/v2.1/servers/{sid}/action", json={"os-start": None}, headers=owner) as resp:
            assert resp.status == 409  # the lock placed through worker 1 holds in worker 2
            ids.append(resp.headers["X-Statelock-Decision-Id"])
        await asyncio.sleep(0.6)  # NOTE: past the other worker's indexer's next look (0.1 s), and then some
        for session, _ in sessions.values():
            async with session.get(f"{base}/statelock/v1/decisions",
                                   headers={"X-Auth-Token": "auditor:service:auditor"}) as resp:
                assert resp.status == 200
                seen = {d["decision_id"] for d in (await resp.json())["decisions"]}
            assert set(ids) <= seen, (ids, seen)
            async with session.get(f"{base}/statelock/v1/health") as resp:
                assert (await resp.json())["decisions"]["backend"] == store
    finally:
        for session, _ in sessions.values():
            await session.close()
        await stop(proc)
    assert proc.returncode == 0
    assert main(["audit", "verify", "--config", str(config)]) == 0


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        out += [int(p) for p in (task / "children").read_text().split()]
    return out


async def test_a_crash_loop_stops_the_supervisor_with_exit_1(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    upstream = await aiohttp_server(build_app(FakeNova()))
    config = write_config(tmp_path / "c.yaml", _raw(tmp_path, _url(upstream)))
    log = tmp_path / "serve.log"
    proc = await _start_workers(config, free_port(), log)
    try:
        for deaths in range(1, 6):
            victim = _children(proc.pid)[0]
            os.kill(victim, signal.SIGKILL)
            deadline = time.monotonic() + 30
            want = "listening again" if deaths < 5 else "stopping every worker"
            while log.read_text().count(want) < (deaths if deaths < 5 else 1) and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            assert f"(pid {victim}) ended (killed by SIGKILL)" in log.read_text()
        assert await asyncio.wait_for(proc.wait(), 30) == 1
    finally:
        await stop(proc)
    text = log.read_text()
    assert "5 workers ended within 60s, stopping every worker" in text, text
    assert text.count("starting it again") == 4
