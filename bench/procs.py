"""Processes the harness starts: each in its own process group, all stopped in ``close``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_ok(url: str, timeout: float = 1.0) -> bool:
    """True when GET url answers 2xx."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return bool(200 <= resp.status < 300)
    except (urllib.error.URLError, OSError, ValueError):
        return False


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid


class Processes:
    """Starts processes and guarantees they are gone after ``close()`` (use in finally)."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[Proc] = []

    def start(self, name: str, argv: Sequence[str], *, cwd: Path | None = None,
              env: Mapping[str, str] | None = None,
              ready: Callable[[], bool] | None = None, timeout_s: float = 30.0) -> Proc:
        log = self.logdir / f"{name}.log"
        out = log.open("ab")
        popen = subprocess.Popen(list(argv), cwd=cwd, env=dict(env) if env is not None else None,
                                 stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
        out.close()
        proc = Proc(name, popen, log)
        self.procs.append(proc)
        if ready is not None:
            deadline = time.monotonic() + timeout_s
            while not ready():
                if popen.poll() is not None:
                    raise RuntimeError(f"{name} exited with {popen.returncode}:\n{tail(log)}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{name} not ready after {timeout_s}s:\n{tail(log)}")
                time.sleep(0.05)
        return proc

    def stop(self, proc: Proc, timeout_s: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL it after ``timeout_s``."""
        if proc in self.procs:
            self.procs.remove(proc)
        _stop_group(proc.popen, timeout_s)

    def close(self) -> None:
        """Stop everything still running, newest first."""
        while self.procs:
            proc = self.procs.pop()
            try:
                _stop_group(proc.popen, 10.0)
            except Exception as exc:  # NOTE: keep stopping the others whatever happens
                print(f"bench: could not stop {proc.name} ({proc.pid}): {exc}")


def _signal_group(popen: subprocess.Popen[bytes], sig: int) -> None:
    try:
        os.killpg(popen.pid, sig)
    except ProcessLookupError:
        pass
    except PermissionError:
        popen.send_signal(sig)


def _stop_group(popen: subprocess.Popen[bytes], timeout_s: float) -> None:
    if popen.poll() is None:
        _signal_group(popen, signal.SIGTERM)
        try:
            popen.wait(timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(popen, signal.SIGKILL)
            popen.wait(5)
    # NOTE: children that outlived their leader (nginx workers) share its process group.
    _signal_group(popen, signal.SIGKILL)


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def rss_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak) of a process in KiB, from /proc."""
    out: dict[str, int] = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except OSError:
        pass
    return out


def cpu_seconds(pid: int) -> float:
    """User+system CPU seconds a process has used (from /proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def machine_busy_s() -> float:
    """CPU seconds the whole machine has been busy (all cores; idle, iowait and steal excluded)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    values = [int(v) for v in fields[:8]]
    user, nice, system, _idle, _iowait, irq, softirq, _steal = values
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def machine_steal_s() -> float:
    """CPU seconds the hypervisor has given to others while this machine's cores wanted to run (steal)."""
    try:
        fields = Path("/proc/stat").read_text().splitlines()[0].split()[1:]
    except OSError:
        return 0.0
    return int(fields[7]) / os.sysconf("SC_CLK_TCK") if len(fields) > 7 else 0.0


def children(pid: int) -> list[int]:
    """Direct children of a process (nginx workers of their master)."""
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]
