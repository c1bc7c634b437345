"""``statelock serve``'s ``server`` settings as a real process: the access log off and on, the event loop."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from tests.integration.test_process import upstream_config
from tests.support.fake_nova import FakeNova, build_app
from tests.support.process import free_port, start_statelock, stop

pytestmark = pytest.mark.integration
AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
TOKEN = "alice:demo"


async def _serve_one_read(aiohttp_server: AiohttpServer, tmp_path: Path, server: dict[str, Any]) -> str:
    """Serve with ``server`` settings, make one read and one state change; the process's log."""
    nova = FakeNova()
    sid = nova.add_server()
    upstream = await aiohttp_server(build_app(nova))
    port = free_port()
    log = tmp_path / "statelock.log"
    config = upstream_config(tmp_path, str(upstream.make_url("")).rstrip("/"), server=server)
    proc = await start_statelock(config, port, log)
    base = f"http://127.0.0.1:{port}/v2.1/servers/{sid}"
    try:
        async with aiohttp.ClientSession(headers={"X-Auth-Token": TOKEN}) as s:
            async with s.get(base) as resp:
                assert resp.status == 200
            async with s.post(f"{base}/action", json={"reboot": {"type": "SOFT"}}) as resp:
                assert resp.status == 202
    finally:
        await stop(proc)
    return log.read_text()


async def test_no_access_log_by_default(aiohttp_server: AiohttpServer, tmp_path: Path) -> None:
    text = await _serve_one_read(aiohttp_server, tmp_path, {})
    assert "listening on" in text
    assert "GET /v2.1/servers/" not in text and "POST /v2.1/servers/" not in text


async def test_access_log_on_names_each_request_and_never_a_token(
    aiohttp_server: AiohttpServer, tmp_path: Path
) -> None:
    text = await _serve_one_read(aiohttp_server, tmp_path, {"access_log": True})
    lines = [line for line in text.splitlines() if "/v2.1/servers/" in line]
    assert len(lines) == 2
    assert '"GET /v2.1/servers/' in lines[0] and " 200 " in lines[0]
    assert '"POST /v2.1/servers/' in lines[1] and " 202 " in lines[1]
    assert TOKEN not in text and "alice" not in text


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
async def test_serves_on_the_event_loop_named(aiohttp_server: AiohttpServer, tmp_path: Path, loop: str) -> None:
    text = await _serve_one_read(aiohttp_server, tmp_path, {"event_loop": loop})
    assert f"(event loop {loop})" in text
    assert "statelock stopped" in text
