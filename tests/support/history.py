"""The history check of the guard: calls and upstream arrivals on one clock, and what they may not show.

Concurrent Nova ``lock``, ``unlock`` and state-changing actions go to a handful of
instances; every call (start, end, which replica or worker, status) and every action
the upstream receives (with its receive time, on the same clock) is recorded. The
guarantee checked:

    after a lock call on an instance returned 202 at time T, the upstream receives no
    action for that instance until an unlock call on it has started,

where an unlock that may have run after the lock (it ended after the lock call
started) counts as ending the window at its start. Used against PostgreSQL replicas
(``tests/integration/test_replicas.py``) and SQLite workers (``test_workers.py``).
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from tests.support.fake_nova import FakeNova, Received

OWNER = "alice:demo"
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

    def record_arrivals(self, nova: FakeNova, servers: Sequence[str]) -> None:
        """Make ``nova`` note every action it receives for one of ``servers``, with its time."""
        async def record(req: Received) -> None:
            action = req.action
            if req.method == "POST" and action is not None:
                instance = next(s for s in servers if s in req.path)
                self.arrivals.append(Arrival(instance, action, time.monotonic()))

        nova.gate = record

    async def call(self, session: aiohttp.ClientSession, base_url: str, replica: int, instance: str, kind: str,
                   body: dict[str, Any]) -> Call:
        """One recorded call of ``POST {base_url}/v2.1/servers/{instance}/action`` as the owner."""
        url = f"{base_url}/v2.1/servers/{instance}/action"
        start = time.monotonic()
        status: int | None
        try:
            async with session.post(url, json=body, headers={"X-Auth-Token": OWNER}) as resp:
                await resp.read()
                status = resp.status
        except (aiohttp.ClientError, TimeoutError):
            status = None
        done = Call(kind, instance, replica, start, time.monotonic(), status)
        self.calls.append(done)
        return done


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


Send = Callable[[random.Random, aiohttp.ClientSession, str, str, dict[str, Any]], Awaitable[Call]]


async def random_traffic(send: Send, servers: Sequence[str], witness: str | None, seconds: float, seed: int,
                         clients: int, extra: Sequence[Awaitable[None]] = ()) -> None:
    """``clients`` clients calling for ``seconds``: a quarter locks, a fifth unlocks, the rest actions.

    Each call goes through ``send(rng, session, instance, kind, body)`` (which picks the
    replica); the ``witness`` is never unlocked. ``extra`` runs alongside (e.g. a killer).
    """
    deadline = time.monotonic() + seconds

    async def client(rng: random.Random, session: aiohttp.ClientSession) -> None:
        while time.monotonic() < deadline:
            instance = rng.choice(list(servers))
            roll = rng.random()
            kind, body = (("lock", {"lock": None}) if roll < 0.25 else ("unlock", {"unlock": None})
                          if roll < 0.45 and instance != witness
                          else ("action", {rng.choice(ACTIONS): None}))
            await send(rng, session, instance, kind, body)

    timeout = aiohttp.ClientTimeout(total=30)
    async with aiohttp.ClientSession(timeout=timeout, connector=aiohttp.TCPConnector(limit=0)) as session:
        await asyncio.gather(*(client(random.Random(seed + n), session) for n in range(clients)), *extra)
