"""Lock operations: Nova's lock/unlock, the lock API, suspend-lock and unlock-resume.

Every operation takes the guard exclusively (its instance, or every instance for a
project or host lock), reads the locks inside it, asks the policy (actions ``lock``
and ``unlock``, with the locks to remove as ``input.locks`` for ``unlock``),
records the decision durably, and only then changes the table. A denial raises
``Denied``; engine, store and backend faults raise their ``SidecarError``.

Suspend-lock is the seed's *locking suspend*: the lock is written (``pending``)
before the suspend is sent, so a crash in between leaves the lock in force;
``reconcile`` finishes pending work at start-up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from sidecar.backends.base import Backend, TargetInfo
from sidecar.config import Config
from sidecar.errors import BadRequest, NotFound, SidecarError, UpstreamError, UpstreamTimeout
from sidecar.guard import ALL_INSTANCES, Guard
from sidecar.identity import Subject
from sidecar.locks.model import LOCK_KINDS, LOCK_SCOPES, Lock, new_lock_id, rfc3339
from sidecar.locks.store import LockStore
from sidecar.policy.decision import Decision
from sidecar.policy.engine import PolicyEngine
from sidecar.recorder import Ctx, Denied, Recorder

log = logging.getLogger(__name__)

SUSPEND_SOURCE = "suspend-lock"
_STOPPED = frozenset({"SUSPENDED", "SHUTOFF", "SHELVED", "SHELVED_OFFLOADED"})


def _input(subject: Subject, name: str, kind: str, ctx: Ctx, params: dict[str, Any],
           target: TargetInfo | None, locks: Sequence[Lock], now: datetime) -> dict[str, Any]:
    return {
        "now": rfc3339(now),
        "subject": subject.as_input(),
        "action": {"name": name, "kind": kind, "method": ctx.method, "path": ctx.path,
                   "params": params},
        "target": {"instance_id": target.instance_id if target else None,
                   "project_id": target.project_id if target else None,
                   "host": target.host if target else None},
        "locks": [lk.as_input() for lk in locks],
    }


class LockService:
    """The lock operations (see module docstring)."""

    def __init__(self, cfg: Config, backend: Backend, engine: PolicyEngine, store: LockStore,
                 recorder: Recorder, guard: Guard) -> None:
        self.cfg = cfg
        self.backend = backend
        self.engine = engine
        self.store = store
        self.recorder = recorder
        self.guard = guard
        self.suspend_timeout_s = 60.0
        self.poll_interval_s = 0.5

    async def _decide(self, ctx: Ctx, input_doc: dict[str, Any], instance_id: str | None) -> Decision:
        try:
            decision = await self.engine.decide(input_doc)
        except SidecarError as exc:
            await self.recorder.error(ctx, input_doc, exc)
            raise
        await self.recorder.decision(ctx, input_doc, decision, acting=decision.allow)
        if not decision.allow:
            raise Denied(decision, instance_id)
        return decision

    async def _target(self, scope: str, target: str) -> TargetInfo | None:
        if scope == "instance":
            return await self.backend.resolve(target)
        if scope == "project":
            return TargetInfo("", target, None)
        return TargetInfo("", None, target)

    # -- Nova's lock and unlock actions --------------------------------------------------------

    async def nova_lock(self, ctx: Ctx, subject: Subject, instance_id: str, reason: str) -> None:
        """Nova's ``lock`` action: a ``state`` lock owned by the caller (no-op if theirs exists)."""
        async with self.guard.exclusive(instance_id):
            now = datetime.now(UTC)
            target = await self.backend.resolve(instance_id)
            existing = await self.store.effective_locks(instance_id, target.project_id,
                                                        target.host, now)
            params = {"kind": "state", "scope": "instance"}
            await self._decide(ctx, _input(subject, "lock", "lock", ctx, params, target, existing,
                                           now), instance_id)
            for lk in existing:
                if (lk.scope == "instance" and lk.kind == "state" and lk.source == "nova"
                        and lk.owner.user_id == subject.user_id
                        and lk.owner.project_id == subject.project_id):
                    return  # NOTE: Nova treats a re-lock by the same caller as a no-op.
            await self.store.add(Lock(id=new_lock_id(), kind="state", scope="instance",
                                      target=instance_id, reason=reason, owner=subject,
                                      created_at=now, source="nova"))

    async def nova_unlock(self, ctx: Ctx, subject: Subject, instance_id: str) -> None:
        """Nova's ``unlock`` action: lift every instance ``state`` lock, or none (403)."""
        async with self.guard.exclusive(instance_id):
            now = datetime.now(UTC)
            target = await self.backend.resolve(instance_id)
            existing = await self.store.effective_locks(instance_id, None, None, now)
            lifting = [lk for lk in existing if lk.scope == "instance" and lk.kind == "state"]
            await self._decide(ctx, _input(subject, "unlock", "unlock", ctx, {}, target, lifting,
                                           now), instance_id)
            await self.store.lift([lk.id for lk in lifting], subject, ctx.decision_id, now)

    # -- the lock API ------------------------------------------------------------------------

    async def place(self, ctx: Ctx, subject: Subject, kind: str, scope: str, target: str,
                    reason: str, expires_at: datetime | None) -> Lock:
        """Place a lock of any kind and scope; returns it."""
        if kind not in LOCK_KINDS:
            raise BadRequest(f"lock.kind must be one of {', '.join(LOCK_KINDS)}")
        if scope not in LOCK_SCOPES:
            raise BadRequest(f"lock.scope must be one of {', '.join(LOCK_SCOPES)}")
        now = datetime.now(UTC)
        if expires_at is not None and expires_at <= now:
            raise BadRequest("lock.expires_at is in the past")
        key = target if scope == "instance" else ALL_INSTANCES
        async with self.guard.exclusive(key):
            info = await self._target(scope, target)
            existing = await self.store.effective_locks(
                info.instance_id or None if info else None, info.project_id if info else None,
                info.host if info else None, now)
            params = {"kind": kind, "scope": scope, "reason": reason}
            await self._decide(ctx, _input(subject, "lock", "lock", ctx, params, info, existing,
                                           now), info.instance_id if info else None)
            lock = Lock(id=new_lock_id(), kind=kind, scope=scope, target=target, reason=reason,
                        owner=subject, created_at=now, expires_at=expires_at, source="api")
            await self.store.add(lock)
            return lock

    async def lift(self, ctx: Ctx, subject: Subject, lock_id: str) -> Lock:
        """Remove one lock by id (policy action ``unlock``); returns what was removed."""
        lock = await self.store.get(lock_id)
        if lock is None:
            raise NotFound(f"Lock {lock_id} could not be found.")
        key = lock.target if lock.scope == "instance" else ALL_INSTANCES
        async with self.guard.exclusive(key):
            lock = await self.store.get(lock_id)
            if lock is None:
                raise NotFound(f"Lock {lock_id} could not be found.")
            now = datetime.now(UTC)
            info = TargetInfo(lock.target if lock.scope == "instance" else "",
                              lock.target if lock.scope == "project" else None,
                              lock.target if lock.scope == "host" else None)
            await self._decide(ctx, _input(subject, "unlock", "unlock", ctx, {}, info, [lock], now),
                               info.instance_id or None)
            await self.store.lift([lock.id], subject, ctx.decision_id, now)
            return lock

    # -- suspend-lock and unlock-resume --------------------------------------------------------

    async def suspend_lock(self, ctx: Ctx, subject: Subject, instance_id: str, reason: str,
                           kind: str = "boot") -> Lock:
        """Lock the instance (durably, ``pending``), suspend it, then mark the lock ``active``.

        A failed or timed-out suspend leaves the lock in force, marked ``failed``, and
        raises the backend's error. Returns the lock.
        """
        if kind not in LOCK_KINDS:
            raise BadRequest(f"kind must be one of {', '.join(LOCK_KINDS)}")
        if not reason:
            raise BadRequest("reason is required for a suspend-lock")
        async with self.guard.exclusive(instance_id):
            now = datetime.now(UTC)
            target = await self.backend.resolve(instance_id)
            existing = await self.store.effective_locks(instance_id, target.project_id,
                                                        target.host, now)
            params = {"kind": kind, "scope": "instance", "reason": reason}
            await self._decide(ctx, _input(subject, "suspend_lock", "lock", ctx, params, target,
                                           existing, now), instance_id)
            lock = Lock(id=new_lock_id(), kind=kind, scope="instance", target=instance_id,
                        reason=reason, owner=subject, created_at=now, state="pending",
                        source=SUSPEND_SOURCE)
            await self.store.add(lock)
            return await self._complete_suspend(lock)

    async def _complete_suspend(self, lock: Lock) -> Lock:
        try:
            await self._suspend_and_wait(lock.target)
            await self.backend.set_boot_block(lock.target, True, lock.reason)
        except SidecarError as exc:
            note = f"suspend failed: {exc.message}"
            await self.store.set_state(lock.id, "failed", note)
            log.error("suspend-lock %s on %s: %s (the lock stays in force)", lock.id,
                      lock.target, note)
            exc.message = f"The lock {lock.id} is in force, but {note}"
            raise
        await self.store.set_state(lock.id, "active", "suspended")
        return replace(lock, state="active", note="suspended")

    async def _suspend_and_wait(self, instance_id: str) -> None:
        status = await self.backend.status(instance_id)
        if status in _STOPPED:
            return
        await self.backend.power(instance_id, "suspend")
        deadline = time.monotonic() + self.suspend_timeout_s
        while True:
            status = await self.backend.status(instance_id)
            if status == "SUSPENDED":
                return
            if status == "ERROR":
                raise UpstreamError(f"instance {instance_id} went to ERROR while suspending")
            if time.monotonic() > deadline:
                raise UpstreamTimeout(f"instance {instance_id} was not SUSPENDED after "
                                      f"{self.suspend_timeout_s:.0f}s (status {status})")
            await asyncio.sleep(self.poll_interval_s)

    async def unlock_resume(self, ctx: Ctx, subject: Subject, instance_id: str) -> list[Lock]:
        """Lift the instance's suspend-locks (all or none) and resume it; returns the lifted locks."""
        async with self.guard.exclusive(instance_id):
            now = datetime.now(UTC)
            target = await self.backend.resolve(instance_id)
            existing = await self.store.effective_locks(instance_id, None, None, now)
            lifting = [lk for lk in existing if lk.source == SUSPEND_SOURCE]
            if not lifting:
                raise NotFound(f"Instance {instance_id} has no suspend-lock.")
            await self._decide(ctx, _input(subject, "unlock_resume", "unlock", ctx, {}, target,
                                           lifting, now), instance_id)
            await self.store.lift([lk.id for lk in lifting], subject, ctx.decision_id, now)
            remaining = [lk for lk in existing if lk not in lifting]
            if not any(lk.kind in ("boot", "state") for lk in remaining):
                await self.backend.set_boot_block(instance_id, False, None)
            if await self.backend.status(instance_id) == "SUSPENDED":
                await self.backend.power(instance_id, "resume")
            return lifting

    async def reconcile(self) -> int:
        """Finish suspend-locks left ``pending`` by a crash; returns how many were found."""
        pending = [lk for lk in await self.store.pending_locks()]
        for lock in pending:
            log.warning("reconciling pending suspend-lock %s on %s", lock.id, lock.target)
            try:
                async with self.guard.exclusive(lock.target):
                    await self._complete_suspend(lock)
            except SidecarError as exc:
                log.error("pending suspend-lock %s not completed: %s", lock.id, exc.message)
        return len(pending)
