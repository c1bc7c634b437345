"""Operating ``statelock serve`` as a process: truthful start-up, a clean stop, config checks.

A busy port, a bad certificate or an unwritable directory is one line and exit 1, and
"listening" is logged only once the socket accepts. SIGTERM during a slow upstream
call: readiness answers 503 at once, the call completes, the exit is 0 with one line
saying what was drained, and the decision log (with its final checkpoint) verifies.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from sidecar.cli import main
from tests.support.fake_nova import FakeNova, Received, build_app
from tests.support.paths import POLICIES, ROOT
from tests.support.process import free_port, start_statelock, stop, write_config

pytestmark = pytest.mark.integration


def _raw(tmp_path: Path, upstream: str = "http://127.0.0.1:9", **overrides: Any) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "backend": {"kind": "upstream", "upstream_url": upstream,
                    "service_auth": {"token": "statelock:service:admin"}},
        "lockstore": {"url": f"sqlite:///{tmp_path}/locks.db"},
        "policy": {"bundle": str(POLICIES)},
        "audit": {"path": str(tmp_path / "decisions.jsonl")},
    }
    raw.update(overrides)
    return raw


async def _serve(config: Path, port: int) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "serve", "--config", str(config), cwd=str(ROOT),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={"STATELOCK_LISTEN": f"127.0.0.1:{port}", "PATH": "/usr/bin:/bin"})
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def test_a_busy_port_is_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        code, out = await _serve(write_config(tmp_path / "c.yaml", _raw(tmp_path)), port)
    assert code == 1
    assert f"cannot listen on 127.0.0.1:{port}: Address already in use" in out
    assert "Traceback" not in out and "listening on" not in out and "statelock ready" not in out
    assert len(out.strip().splitlines()) == 1
    assert not (tmp_path / "decisions.jsonl").exists(), "nothing may be opened before the bind"


@pytest.mark.parametrize("case", ["bad certificate", "directory that can't be made"])
async def test_a_machine_that_is_not_ready_is_one_line_and_exit_1(tmp_path: Path, case: str) -> None:
    if case == "bad certificate":
        (tmp_path / "cert.pem").write_text("not a certificate\n")
        raw = _raw(tmp_path, tls={"certfile": str(tmp_path / "cert.pem")})
        said = "tls.certfile:"
    else:
        (tmp_path / "a-file").write_text("")  # NOTE: not even root makes a directory inside a file
        raw = _raw(tmp_path)
        raw["audit"] = {"path": str(tmp_path / "a-file" / "logs" / "decisions.jsonl")}
        said = "audit.path:"
    code, out = await _serve(write_config(tmp_path / "c.yaml", raw), free_port())
    assert code == 1, out
    assert said in out and "Traceback" not in out and len(out.strip().splitlines()) == 1


async def test_sigterm_drains_a_slow_call_with_readiness_503_and_exits_0(
    aiohttp_server: Any, tmp_path: Path
) -> None:
    nova = FakeNova()
    sid = nova.add_server()
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow_stop(req: Received) -> None:
        if req.action == "os-stop":
            arrived.set()
            await release.wait()

    nova.gate = slow_stop
    upstream = await aiohttp_server(build_app(nova))
    raw = _raw(tmp_path, str(upstream.make_url("")).rstrip("/"), shutdown_drain_s=1.0,
               shutdown_timeout_s=20)
    config = write_config(tmp_path / "c.yaml", raw)
    port = free_port()
    log = tmp_path / "serve.log"
    proc = await start_statelock(config, port, log)
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as session:
            call = asyncio.create_task(session.post(
                f"{base}/v2.1/servers/{sid}/action", json={"os-stop": None},
                headers={"X-Auth-Token": "alice:demo"}))
            await asyncio.wait_for(arrived.wait(), 10)
            proc.terminate()
            started = time.monotonic()
            ready = None
            while time.monotonic() - started < 0.9:
                async with aiohttp.ClientSession() as probe, probe.get(f"{base}/statelock/v1/readyz") as resp:
                    ready = resp.status, await resp.json()
                if ready[0] == 503:
                    break
                await asyncio.sleep(0.05)
            assert ready is not None and ready[0] == 503 and ready[1]["draining"] is True
            await asyncio.sleep(1.2)  # past shutdown_drain_s: the listener is closed now
            with pytest.raises(aiohttp.ClientConnectionError):
                async with aiohttp.ClientSession() as late, late.get(f"{base}/statelock/v1/livez"):
                    pass
            release.set()
            resp = await asyncio.wait_for(call, 10)
            assert resp.status == 202
            resp.release()
        assert await asyncio.wait_for(proc.wait(), 20) == 0
    finally:
        release.set()
        await stop(proc)
    text = log.read_text()
    assert "SIGTERM received: draining (readiness 503), 1 requests in flight" in text
    [stopped] = [line for line in text.splitlines() if "statelock stopped:" in line]
    assert "1 requests were in flight at the stop, 0 of them cut off" in stopped
    assert nova.actions_for(sid) == ["os-stop"]
    assert main(["audit", "verify", str(tmp_path / "decisions.jsonl")]) == 0


@pytest.mark.parametrize(("edit", "key"), [
    (lambda raw: raw["policy"].update(bundle="polices/"), "policy.bundle"),
    (lambda raw: raw["backend"]["driver"].update(name="libvrt"), "backend.driver.name"),
    (lambda raw: raw["backend"]["driver"].update(url=raw["backend"]["driver"].pop("uri")), "url"),
    (lambda raw: raw["backend"]["driver"].update(default_owner={"projet_id": "demo", "user_id": "alice"}),
     "projet_id"),
], ids=["bundle typo", "driver typo", "url for uri", "default_owner typo"])
def test_check_config_refuses_what_serve_refuses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], edit: Any, key: str
) -> None:
    raw = yaml.safe_load((ROOT / "config" / "dev.yaml").read_text())
    raw["lockstore"]["url"] = f"sqlite:///{tmp_path}/locks.db"
    raw["audit"]["path"] = str(tmp_path / "decisions.jsonl")
    raw["policy"]["bundle"] = str(POLICIES)
    good = write_config(tmp_path / "good.yaml", raw)
    assert main(["check-config", str(good)]) == 0
    edit(raw)
    bad = write_config(tmp_path / "bad.yaml", raw)
    capsys.readouterr()
    assert main(["check-config", str(bad)]) == 2
    assert key in capsys.readouterr().err
    assert main(["serve", "--config", str(bad)]) == 2
    assert key in capsys.readouterr().err


def test_check_config_connect_says_which_components_answered(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = yaml.safe_load((ROOT / "config" / "dev.yaml").read_text())
    raw["lockstore"]["url"] = f"sqlite:///{tmp_path}/locks.db"
    raw["audit"]["path"] = str(tmp_path / "decisions.jsonl")
    raw["policy"]["bundle"] = str(POLICIES)
    assert main(["check-config", "--connect", str(write_config(tmp_path / "c.yaml", raw))]) == 0
    out = capsys.readouterr().out
    assert "ok   lock store sqlite:///" in out and "ok   driver libvirt: answered: 1 instances" in out
    down = _raw(tmp_path)  # the upstream at 127.0.0.1:9 does not answer
    assert main(["check-config", "--connect", str(write_config(tmp_path / "d.yaml", down))]) == 2
    assert "FAIL upstream http://127.0.0.1:9" in capsys.readouterr().out


def test_a_bundle_needing_a_builtin_the_engine_lacks_is_refused_by_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(POLICIES, bundle, ignore=shutil.ignore_patterns("*_test.rego"))
    rego = bundle / "statelock" / "authz.rego"
    rego.write_text(rego.read_text().replace(
        'guarded_kinds := {"state_change", "delete", "create"}',
        'guarded_kinds := {"state_change", "delete", "create"} if {\n'
        '\thttp.send({"method": "GET", "url": "http://127.0.0.1:9"}).status_code == 200\n}', 1))
    raw = yaml.safe_load((ROOT / "config" / "dev.yaml").read_text())
    raw["lockstore"]["url"] = f"sqlite:///{tmp_path}/locks.db"
    raw["audit"]["path"] = str(tmp_path / "decisions.jsonl")
    raw["policy"]["bundle"] = str(bundle)
    config = write_config(tmp_path / "c.yaml", raw)
    capsys.readouterr()
    for argv in (["check-config", str(config)], ["serve", "--config", str(config)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert "does not implement the builtin http.send" in err and "policy.engine: opa" in err, err
    raw["policy"].update(engine="opa", opa_url="http://127.0.0.1:9")
    assert main(["check-config", str(write_config(tmp_path / "opa.yaml", raw))]) == 0
