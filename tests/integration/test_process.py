"""``statelock serve`` as a real process: the CLI against it, and a crash mid suspend-lock."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.support.fake_nova import FakeNova, Received, build_app
from tests.support.paths import POLICIES, ROOT
from tests.support.process import free_port, start_statelock, stop, write_config

pytestmark = pytest.mark.integration
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
BILLING = "billing-svc:service:billing"


def upstream_config(tmp_path: Path, upstream: str, **sections: Any) -> Path:
    """A config file for ``statelock serve`` in front of ``upstream``, state under ``tmp_path``; ``sections`` added."""
    return write_config(tmp_path / "statelock.yaml", {
        "backend": {"kind": "upstream", "upstream_url": upstream,
                    "service_auth": {"token": "statelock:service:admin"}},
        "lockstore": {"url": f"sqlite:///{tmp_path}/locks.db"},
        "policy": {"bundle": str(POLICIES)},
        "audit": {"path": str(tmp_path / "decisions.jsonl")},
        **sections,
    })


async def _cli(port: int, token: str, *args: str) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", *args, "--url", f"http://127.0.0.1:{port}",
        "--token", token, cwd=str(ROOT), stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE)
    out, err = await proc.communicate()
    return int(proc.returncode or 0), out.decode(), err.decode()


async def test_cli_manages_locks_through_the_api(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    nova = FakeNova()
    sid = nova.add_server()
    upstream = await aiohttp_server(build_app(nova))
    port = free_port()
    proc = await start_statelock(upstream_config(tmp_path, str(upstream.make_url("")).rstrip("/")), port,
                                 tmp_path / "statelock.log")
    try:
        code, out, err = await _cli(port, "legal-svc:service:legal", "locks", "add", "--kind",
                                    "delete", "--target", sid, "--reason", "legal hold 42",
                                    "--json")
        assert code == 0, err
        lock_id = json.loads(out)["lock"]["id"]
        code, out, _ = await _cli(port, "auditor:service:auditor", "locks", "list")
        assert code == 0
        header, row = out.splitlines()
        assert header.split()[:4] == ["id", "kind", "scope", "target"]
        assert row.split()[:4] == [lock_id, "delete", "instance", sid]
        code, _, err = await _cli(port, "alice:demo", "locks", "remove", lock_id)
        assert code == 1 and "refused with 403" in err and "decision" in err
        code, out, err = await _cli(port, BILLING, "suspend-lock", sid, "--reason", "invoice 9")
        assert code == 0, err
        assert nova.servers[sid]["status"] == "SUSPENDED"
        code, out, err = await _cli(port, BILLING, "unlock-resume", sid)
        assert code == 0, err
        assert nova.servers[sid]["status"] == "ACTIVE"
        code, out, err = await _cli(port, "legal-svc:service:legal", "locks", "remove", lock_id)
        assert code == 0, err
        code, out, _ = await _cli(port, "auditor:service:auditor", "locks", "list")
        assert out.strip() == "no locks"
    finally:
        await stop(proc)


async def _locks(port: int, sid: str) -> list[dict[str, Any]]:
    async with aiohttp.ClientSession() as s, s.get(
            f"http://127.0.0.1:{port}/statelock/v1/locks?target={sid}",
            headers={"X-Auth-Token": BILLING}) as resp:
        return list((await resp.json())["locks"])


async def _wait_for(pred: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if await pred():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def test_crash_between_lock_written_and_suspend_sent(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    nova = FakeNova()
    sid = nova.add_server()
    release = asyncio.Event()
    gets: list[Received] = []

    async def hold_status_check(req: Received) -> None:
        # The first GET of the server resolves the target; the second is the status
        # check that comes after the lock is written and before the suspend is sent.
        if req.method == "GET" and sid in req.path:
            gets.append(req)
            if len(gets) == 2:
                await release.wait()

    nova.gate = hold_status_check
    upstream = await aiohttp_server(build_app(nova))
    config = upstream_config(tmp_path, str(upstream.make_url("")).rstrip("/"))
    port = free_port()
    first = await start_statelock(config, port, tmp_path / "first.log")
    async with aiohttp.ClientSession() as session:
        call = asyncio.create_task(session.post(
            f"http://127.0.0.1:{port}/statelock/v1/instances/{sid}/suspend-lock",
            json={"reason": "billing: crash test"}, headers={"X-Auth-Token": BILLING}))

        async def pending() -> bool:
            return len(gets) == 2 and [lk["state"] for lk in await _locks(port, sid)] == ["pending"]

        await _wait_for(pending)
        assert nova.actions_for(sid) == []
        os.kill(first.pid, signal.SIGKILL)
        await first.wait()
        with pytest.raises(aiohttp.ClientError):
            await call
    release.set()

    second = await start_statelock(config, port, tmp_path / "second.log")
    try:
        async def reconciled() -> bool:
            return [lk["state"] for lk in await _locks(port, sid)] == ["active"]

        await _wait_for(reconciled)
        assert nova.actions_for(sid) == ["suspend"]
        assert nova.servers[sid]["status"] == "SUSPENDED"
        async with aiohttp.ClientSession() as s, s.post(
                f"http://127.0.0.1:{port}/v2.1/servers/{sid}/action", json={"resume": None},
                headers={"X-Auth-Token": "alice:demo"}) as resp:
            assert resp.status == 409
        assert "reconciling pending suspend-lock" in (tmp_path / "second.log").read_text()
        # the crashed call's decision is completed by the second process, marked reconciled
        [lock] = await _locks(port, sid)
        records = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
        [done] = [r for r in records if r.get("type") == "completion"
                  and r["decision_id"] == lock["placed_decision_id"]]
        assert done["statelock"]["lock"] == {"ids": [lock["id"]], "state": "active", "reconciled": True}
        assert done["statelock"]["upstream"]["status"] == 202
    finally:
        await stop(second)
