"""Sampling profile of a running sidecar with py-spy, folded into a short ranking.

py-spy samples every thread that is not idle (the event loop, the SQLite worker and the
``asyncio.to_thread`` pool of the decision log). Percentages are of those samples: the
share of the sidecar's busy time, not of wall time.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::\d+)?\)$")
_AREAS = (
    ("sidecar/policy/wasm/", "the Wasm caller and host builtins"),
    ("wasmtime/", "wasmtime (embedded Wasm engine)"),
    ("sidecar/backends/http1", "the forwarder's HTTP/1.1 client (httptools)"),
    ("sidecar/", "sidecar (Statelock's own code)"),
    ("aiohttp/", "aiohttp (the server; Statelock's own Nova calls)"),
    ("asyncio/", "asyncio (event loop, tasks, to_thread)"),
    ("json/", "json (stdlib encode/decode)"),
    ("logging/", "logging (incl. aiohttp access log)"),
    ("sqlite3/", "sqlite3"),
    ("concurrent/", "concurrent.futures (executor hand-off)"),
    ("threading.py", "threading (executor hand-off)"),
    ("multidict/", "multidict/yarl (headers, URLs)"),
    ("yarl/", "multidict/yarl (headers, URLs)"),
    ("uuid.py", "uuid"),
    ("datetime", "datetime"),
    ("hashlib", "hashlib"),
)


# Innermost frames of a thread that waits (py-spy's idle detection misses some of them):
# an executor worker blocked in queue.get, the event loop blocked in epoll, the decision-log
# writer thread blocked in SimpleQueue.get (C code: the innermost Python frame is its loop).
IDLE_LEAVES = frozenset({
    "BatchThread._main (sidecar/audit/batch_thread.py)",
    "_worker (concurrent/futures/thread.py)",
    "EpollSelector.select (selectors.py)",
    "Condition.wait (threading.py)",
    "Event.wait (threading.py)",
})


def _pyspy() -> str:
    candidate = Path(sys.executable).parent / "py-spy"
    return str(candidate) if candidate.exists() else "py-spy"


def profile_pid(pid: int, duration_s: float, outdir: Path, load: Callable[[], Any],
                rate_hz: int = 250) -> dict[str, Any]:
    """Sample ``pid`` for ``duration_s`` while ``load()`` runs; the folded ranking."""
    outdir.mkdir(parents=True, exist_ok=True)
    raw = outdir / "pyspy.raw.txt"
    log = outdir / "pyspy.log"
    with log.open("wb") as out:
        spy = subprocess.Popen(
            [_pyspy(), "record", "--pid", str(pid), "--duration", str(int(duration_s)), "--rate", str(rate_hz),
             "--format", "raw", "--threads", "--output", str(raw)],
            stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        try:
            load_result = load()
            spy.wait(timeout=duration_s + 30)
        finally:
            if spy.poll() is None:
                spy.kill()
                spy.wait()
    if spy.returncode != 0 or not raw.exists():
        return {"error": f"py-spy failed ({spy.returncode}): {log.read_text(errors='replace')[-1500:]}",
                "load": load_result}
    folded = fold(raw.read_text())
    folded.update({"tool": "py-spy record --threads", "rate_hz": rate_hz,
                   "duration_s": duration_s, "load": load_result})
    return folded


def _frame_key(frame: str) -> str:
    m = _FRAME.match(frame.strip())
    if m is None:
        return frame.strip()
    return f"{m.group('func')} ({m.group('file')})"


def _area(key: str) -> str:
    for needle, name in _AREAS:
        if needle in key:
            return name
    if key.startswith("<native>") or key.endswith("(<native>)"):
        return "native"
    return "other (stdlib, site-packages)"


def _thread_group(name: str) -> str:
    name = re.sub(r"_\d+$", "", name.strip())
    return {"asyncio": "asyncio.to_thread pool (decision-log writes)",
            "statelock-sqlite": "statelock-sqlite (lock store)",
            "MainThread": "MainThread (event loop)"}.get(name, name)


def fold(text: str) -> dict[str, Any]:
    """Self and inclusive sample shares per function, per area and per thread."""
    self_c: Counter[str] = Counter()
    incl_c: Counter[str] = Counter()
    area_c: Counter[str] = Counter()
    thread_c: Counter[str] = Counter()
    total = 0
    idle = 0
    for line in text.splitlines():
        stack, _, count_s = line.rpartition(" ")
        if not stack or not count_s.isdigit():
            continue
        count = int(count_s)
        frames = stack.split(";")
        thread = frames[0].split(":", 1)[1] if frames[0].startswith("thread (") and ":" in frames[0] else "?"
        frames = frames[1:] if frames[0].startswith("thread (") else frames
        keys = [_frame_key(f) for f in frames if f.strip()]
        if not keys:
            continue
        if keys[-1] in IDLE_LEAVES:
            idle += count
            continue
        total += count
        thread_c[_thread_group(thread)] += count
        self_c[keys[-1]] += count
        area_c[_area(keys[-1])] += count
        for k in set(keys):
            incl_c[k] += count

    def pct(n: int) -> float:
        return round(100.0 * n / total, 1) if total else 0.0

    by_self = [{"function": k, "self_pct": pct(v), "total_pct": pct(incl_c[k])} for k, v in self_c.most_common(40)]
    sidecar_incl = [{"function": k, "total_pct": pct(v), "self_pct": pct(self_c[k])}
                    for k, v in incl_c.most_common() if "sidecar/" in k][:40]
    return {
        "samples": total,
        "idle_samples_excluded": idle,
        "threads_pct": {k: pct(v) for k, v in thread_c.most_common()},
        "areas_pct": {k: pct(v) for k, v in area_c.most_common()},
        "top_self": by_self,
        "sidecar_inclusive": sidecar_incl,
        "inclusive_all": [{"function": k, "total_pct": pct(v)} for k, v in incl_c.most_common(60)],
    }


def render(profile: dict[str, Any], top: int = 25, title: str | None = None) -> str:
    """profile.txt: the ranking as text."""
    if "error" in profile:
        return f"profile not taken: {profile['error']}\n"
    load = profile.get("load", {})
    lines = [
        title or ("Statelock state-changing path under load: py-spy sampling of `python -m sidecar serve`\n"
                  "(embedded engine, SQLite lock store, decision log with group commit + fsync)"),
        f"load: wrk -t{load.get('threads')} -c{load.get('conns')} {profile.get('request', '')}, "
        f"{load.get('rps')} req/s for {profile['duration_s']:g}s",
        f"sampler: {profile['tool']} at {profile['rate_hz']} Hz; {profile['samples']} busy samples "
        f"({profile.get('idle_samples_excluded', 0)} more were threads waiting in queue.get/epoll: excluded)",
        "percent = share of the sidecar's busy samples (all threads); self = in that function itself,",
        "total = in it or anything it called.",
        "",
        "By thread:",
    ]
    lines += [f"  {v:5.1f}%  {k}" for k, v in profile["threads_pct"].items()]
    lines += ["", "By area (where the CPU is spent: the innermost frame):"]
    lines += [f"  {v:5.1f}%  {k}" for k, v in profile["areas_pct"].items()]
    lines += ["", f"Top {top} functions by self time:", "  self%  total%  function (file)"]
    lines += [f"  {r['self_pct']:5.1f}  {r['total_pct']:6.1f}  {r['function']}" for r in profile["top_self"][:top]]
    lines += ["", f"Top {top} Statelock functions by total (inclusive) time:", "  total%  self%  function (file)"]
    lines += [f"  {r['total_pct']:6.1f}  {r['self_pct']:5.1f}  {r['function']}"
              for r in profile["sidecar_inclusive"][:top]]
    lines += ["", "Top 40 of everything by total (inclusive) time:", "  total%  function (file)"]
    lines += [f"  {r['total_pct']:6.1f}  {r['function']}" for r in profile["inclusive_all"][:40]]
    return "\n".join(lines) + "\n"
