"""Processes for tests: ``statelock serve`` started until ready, free ports, and stopping them."""

from __future__ import annotations

import asyncio
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import yaml

from tests.support.paths import POLICIES, ROOT


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_config(path: Path, raw: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(raw))
    return path


def upstream_config(tmp_path: Path, upstream_url: str) -> Path:
    """``tmp_path/statelock.yaml``: Statelock in front of ``upstream_url`` on the default bundle, with its
    lock table and decision log in ``tmp_path``."""
    return write_config(tmp_path / "statelock.yaml", {
        "backend": {"kind": "upstream", "upstream_url": upstream_url.rstrip("/"),
                    "service_auth": {"token": "statelock:service:admin"}},
        "lockstore": {"url": f"sqlite:///{tmp_path}/locks.db"},
        "policy": {"bundle": str(POLICIES)},
        "audit": {"path": str(tmp_path / "decisions.jsonl")},
    })


def indexer_pid(pid: int) -> int:
    """The decision indexer process ``statelock serve`` (pid) started (``python -m sidecar.audit.indexer``)."""
    found = [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
             if b"sidecar.audit.indexer" in Path(f"/proc/{c}/cmdline").read_bytes()]
    assert len(found) == 1, f"statelock serve (pid {pid}) should have one indexer, has {found}"
    return found[0]


async def start_statelock(config: Path, port: int, log: Path, timeout_s: float = 20.0,
                          env: dict[str, str] | None = None) -> asyncio.subprocess.Process:
    """Start ``python -m sidecar serve`` and return once /statelock/v1/livez answers.

    ``env`` adds to the process's otherwise bare environment (``STATELOCK_LISTEN``, ``PATH``).
    """
    out = log.open("ab")
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "sidecar", "serve", "--config", str(config),
        cwd=str(ROOT), stdout=out, stderr=out, env={"STATELOCK_LISTEN": f"127.0.0.1:{port}",
                                                    "PATH": "/usr/bin:/bin", **(env or {})})
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            if proc.returncode is not None:
                raise RuntimeError(f"statelock exited with {proc.returncode}: {log.read_text()}")
            try:
                async with session.get(f"http://127.0.0.1:{port}/statelock/v1/livez") as resp:
                    if resp.status == 200:
                        return proc
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    proc.kill()
    raise RuntimeError(f"statelock did not start in {timeout_s}s: {log.read_text()}")


async def stop(proc: asyncio.subprocess.Process) -> None:
    """Terminate a process and wait for it."""
    if proc.returncode is None:
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 10)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def terminate(proc: subprocess.Popen[bytes], timeout_s: float = 10.0) -> None:
    """SIGTERM a process and wait for it, SIGKILL it after ``timeout_s``; a no-op once it has exited."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_for_log(log: Path, text: str, timeout_s: float = 60.0) -> None:
    """Return once the log file holds ``text`` (``all 2 workers listening``); AssertionError after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while text not in log.read_text():
        if time.monotonic() > deadline:
            raise AssertionError(f"{text!r} not logged within {timeout_s}s: {log.read_text()}")
        await asyncio.sleep(0.1)
