"""One writer per chain, as processes: a second ``statelock serve`` on one audit.path refuses to start."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from sidecar.audit.log import log_files
from tests.support.fake_nova import FakeNova, build_app
from tests.support.paths import POLICIES, ROOT
from tests.support.process import free_port, start_statelock, stop, write_config

pytestmark = pytest.mark.integration
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
OWNER = "alice:demo"


async def _serve_until_exit(config: Path, port: int, timeout_s: float = 30.0) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "serve", "--config", str(config), cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={"STATELOCK_LISTEN": f"127.0.0.1:{port}", "PATH": "/usr/bin:/bin"})
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout_s)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError("the second statelock did not stop: it should refuse to start") from None
    return int(proc.returncode or 0), out.decode()


async def _stop_server(port: int, sid: str) -> int:
    async with aiohttp.ClientSession() as session, session.post(
            f"http://127.0.0.1:{port}/v2.1/servers/{sid}/action", json={"os-stop": None},
            headers={"X-Auth-Token": OWNER}) as resp:
        return resp.status


async def test_a_second_process_on_one_audit_path_refuses_and_the_first_chain_verifies(
    aiohttp_server: AiohttpServer, tmp_path: Path,
) -> None:
    nova = FakeNova()
    sid = nova.add_server()
    upstream = await aiohttp_server(build_app(nova))
    audit_path = tmp_path / "decisions.jsonl"
    config = write_config(tmp_path / "statelock.yaml", {
        "backend": {"kind": "upstream", "upstream_url": str(upstream.make_url("")).rstrip("/"),
                    "service_auth": {"token": "statelock:service:admin"}},
        "lockstore": {"url": f"sqlite:///{tmp_path}/locks.db"},
        "policy": {"bundle": str(POLICIES)},
        "audit": {"path": str(audit_path), "checkpoint_interval_s": 0.5},
    })
    port = free_port()
    first = await start_statelock(config, port, tmp_path / "first.log")
    try:
        assert await _stop_server(port, sid) == 202
        code, out = await _serve_until_exit(config, free_port())
        assert code == 1, out
        assert f"decision log {audit_path} is already being written by another Statelock (pid {first.pid};" in out
        assert "give each replica or worker its own audit.path" in out
        assert "Traceback" not in out
        for _ in range(3):
            assert await _stop_server(port, sid) == 202
        async with aiohttp.ClientSession() as session, session.get(
                f"http://127.0.0.1:{port}/statelock/v1/health") as resp:
            assert resp.status == 200
    finally:
        await stop(first)
    assert first.returncode == 0, (tmp_path / "first.log").read_text()
    verify = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "audit", "verify", *map(str, log_files(audit_path)), cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    report = (await verify.communicate())[0].decode()
    assert verify.returncode == 0, report
    assert report.startswith("ok: 8 records in 1 file, chain intact")
    assert "signatures valid" in report and "covering seq 8; 0 records after it" in report
