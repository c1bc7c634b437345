"""Lock operations: Nova's lock/unlock, the lock API, suspend-lock and unlock-resume.

Every operation takes the guard exclusively (its instance, or every instance for a
project or host lock), reads the locks inside it, asks the policy (actions
``lock``, ``unlock``, ``suspend_lock``, ``unlock_resume``; for an unlock the locks
to remove are ``input.locks``), records the decision durably (naming the locks it
places or lifts), and only then changes the table. A denial raises ``Denied``;
engine, store and backend faults raise their ``SidecarError``. Kinds and scopes
arrive typed (checked where they entered, see ``sidecar.vocab``).

Suspend-lock is the seed's *locking suspend*: the lock is written (``pending``)
before the suspend is sent, so a crash in between leaves the lock in force;
``reconcile`` finishes pending work at start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, NoReturn

from sidecar.backends.base import InstanceOps
from sidecar.decide import Decider
from sidecar.errors import BadRequest, Conflict, NotFound, SidecarError, UpstreamError, UpstreamTimeout
from sidecar.guard import ALL_INSTANCES, Guard
from sidecar.identity import Subject
from sidecar.locks.model import Lock, new_lock_id, rfc3339
from sidecar.locks.store import LockStore
from sidecar.policy.input import ActionInput, PolicyInput, Target
from sidecar.recorder import Ctx, Recorder
from sidecar.vocab import ActionKind, LockKind, LockScope, LockSource, LockState

log = logging.getLogger(__name__)

SUSPEND_SOURCE: LockSource = "suspend-lock"
_STOPPED = frozenset({"SUSPENDED", "SHUTOFF", "SHELVED", "SHELVED_OFFLOADED"})


def _target_of(scope: LockScope, target: str) -> Target:
    """The policy target of a project or host lock (instance locks resolve theirs)."""
    if scope == "project":
        return Target("", target, None)
    if scope == "host":
        return Target("", None, target)
    return Target(target, None, None)


class LockService:
    """The lock operations (see module docstring)."""

    def __init__(self, ops: InstanceOps, store: LockStore, decider: Decider, recorder: Recorder,
                 guard: Guard) -> None:
        self.ops = ops
        self.store = store
        self.decider = decider
        self.recorder = recorder
        self.guard = guard
        self.suspend_timeout_s = 60.0
        self.poll_interval_s = 0.5

    async def _decide(self, ctx: Ctx, subject: Subject, name: str, params: dict[str, Any],
                      target: Target, locks: Sequence[Lock], now: datetime, *,
                      placed: Sequence[str] = (), lifted: Sequence[str] = ()) -> None:
        kind: ActionKind = "lock" if name in ("lock", "suspend_lock") else "unlock"
        policy_input = PolicyInput(subject, ActionInput(name, kind, ctx.method, ctx.path, params),
                                   target).with_locks(locks, now)
        await self.decider.decide(ctx, policy_input, placed=placed, lifted=lifted)

    # -- Nova's lock and unlock actions --------------------------------------------------------

    async def nova_lock(self, ctx: Ctx, subject: Subject, instance_id: str, reason: str) -> None:
        """Nova's ``lock`` action: a ``state`` lock owned by the caller (no-op if theirs exists)."""
        async with self.guard.exclusive(instance_id):
            now = datetime.now(UTC)
            target = await self.ops.resolve(instance_id)
            existing = await self.store.effective_locks(instance_id, target.project_id,
                                                        target.host, now)
            mine = [lk for lk in existing if lk.scope == "instance" and lk.kind == "state"
                    and lk.source == "nova" and lk.owner.user_id == subject.user_id
                    and lk.owner.project_id == subject.project_id]
            lock_id = new_lock_id()
            await self._decide(ctx, subject, "lock", {"kind": "state", "scope": "instance"}, target,
                               existing, now, placed=() if mine else (lock_id,))
            if mine:
                return  # NOTE: Nova treats a re-lock by the same caller as a no-op.
            await self.store.add(Lock(id=lock_id, kind="state", scope="instance", target=instance_id,
                                      reason=reason, owner=subject, created_at=now, source="nova",
                                      placed_decision_id=ctx.decision_id))

    async def nova_unlock(self, ctx: Ctx, subject: Subject, instance_id: str) -> None:
        """Nova's ``unlock`` action: lift every lock that makes the server show ``locked``, or none.

        The policy decides on all of them at once (``input.locks``); when it may not lift
        one, the answer is its 403 naming the lock that stays, and nothing is lifted, so
        a client never hears "unlocked" of a server that is still locked. A server with
        no lock answers 202, as in Nova.
        """
        now = datetime.now(UTC)
        # NOTE: a project or host lock is lifted under the every-instance guard, taken first.
        scoped = await self.store.has_scoped_locks(now)
        async with contextlib.AsyncExitStack() as stack:
            if scoped:
                await stack.enter_async_context(self.guard.exclusive(ALL_INSTANCES))
            await stack.enter_async_context(self.guard.exclusive(instance_id))
            now = datetime.now(UTC)
            target = await self.ops.resolve(instance_id)
            lifting = await self.store.effective_locks(instance_id, target.project_id, target.host, now)
            if not scoped and any(lk.scope != "instance" for lk in lifting):
                raise Conflict(f"A project or host lock on instance {instance_id} was placed "
                               "meanwhile; retry the unlock.")
            await self._decide(ctx, subject, "unlock", {}, target, lifting, now,
                               lifted=[lk.id for lk in lifting])
            await self.store.lift([lk.id for lk in lifting], subject, ctx.decision_id, now)

    # -- the lock API ------------------------------------------------------------------------

    async def place(self, ctx: Ctx, subject: Subject, kind: LockKind, scope: LockScope, target: str,
                    reason: str, expires_at: datetime | None, force: bool = False) -> Lock:
        """Place a lock of any kind and scope; returns it.

        Its target must exist (an instance the backend knows, a project or host it can
        vouch for): a lock on a typo does nothing. ``force`` places it on a target that
        does not exist yet, and the decision record says so (``params.force``).
        """
        now = datetime.now(UTC)
        if expires_at is not None and expires_at <= now:
            raise BadRequest("lock.expires_at is in the past")
        key = target if scope == "instance" else ALL_INSTANCES
        async with self.guard.exclusive(key):
            info = await self._checked_target(scope, target, force)
            existing = await self.store.effective_locks(info.instance_id or None, info.project_id,
                                                        info.host, now)
            lock = Lock(id=new_lock_id(), kind=kind, scope=scope, target=target, reason=reason,
                        owner=subject, created_at=now, expires_at=expires_at, source="api",
                        placed_decision_id=ctx.decision_id)
            params: dict[str, Any] = {"kind": kind, "scope": scope, "reason": reason}
            if force:
                params["force"] = True
            await self._decide(ctx, subject, "lock", params, info, existing, now, placed=[lock.id])
            await self.store.add(lock)
            return lock

    async def _checked_target(self, scope: LockScope, target: str, force: bool) -> Target:
        if scope == "instance":
            try:
                return await self.ops.resolve(target)
            except NotFound as exc:
                if not force:
                    exc.message += " Give force (--force) to lock it before it exists."
                    raise
                return Target(target, None, None)
        if not force:
            missing = await self.ops.knows(scope, target)
            if missing is not None:
                raise NotFound(f"There is no {scope} {target!r} to lock ({missing}); check the "
                               f"name, or give force (--force) to lock it before it exists.")
        return _target_of(scope, target)

    async def lift(self, ctx: Ctx, subject: Subject, lock_id: str) -> Lock:
        """Lift one lock by id (policy action ``unlock``); returns it, lifted (its row stays as history)."""
        lock = await self._liftable(lock_id)
        key = lock.target if lock.scope == "instance" else ALL_INSTANCES
        async with self.guard.exclusive(key):
            lock = await self._liftable(lock_id)
            now = datetime.now(UTC)
            await self._decide(ctx, subject, "unlock", {}, _target_of(lock.scope, lock.target),
                               [lock], now, lifted=[lock.id])
            await self.store.lift([lock.id], subject, ctx.decision_id, now)
            return await self._as_lifted(lock)

    async def _liftable(self, lock_id: str) -> Lock:
        lock = await self.store.get(lock_id)
        if lock is None:
            raise NotFound(f"Lock {lock_id} could not be found.")
        if lock.lifted_at is not None:
            by = lock.lifted_by.user_id if lock.lifted_by else "?"
            raise NotFound(f"Lock {lock_id} was already lifted, at {rfc3339(lock.lifted_at)} by {by}.")
        return lock

    # -- suspend-lock and unlock-resume --------------------------------------------------------

    async def suspend_lock(self, ctx: Ctx, subject: Subject, instance_id: str, reason: str,
                           kind: LockKind = "boot") -> Lock:
        """Lock the instance (durably, ``pending``), suspend it, then mark the lock ``active``.

        A failed or timed-out suspend leaves the lock in force, marked ``failed``, and
        raises the backend's error. Returns the lock.
        """
        if not reason:
            raise BadRequest("reason is required for a suspend-lock")
        async with self.guard.exclusive(instance_id):
            now = datetime.now(UTC)
            target = await self.ops.resolve(instance_id)
            existing = await self.store.effective_locks(instance_id, target.project_id,
                                                        target.host, now)
            lock = Lock(id=new_lock_id(), kind=kind, scope="instance", target=instance_id,
                        reason=reason, owner=subject, created_at=now, state="pending",
                        source=SUSPEND_SOURCE, placed_decision_id=ctx.decision_id)
            await self._decide(ctx, subject, "suspend_lock",
                               {"kind": kind, "scope": "instance", "reason": reason}, target,
                               existing, now, placed=[lock.id])
            await self.store.add(lock)
            return await self._complete_suspend(lock)

    async def _complete_suspend(self, lock: Lock, reconciled: bool = False) -> Lock:
        """Suspend and boot-block the locked instance; the lock ends ``active`` or ``failed``.

        Either way the completion of the decision that placed the lock says what the
        backend answered (and whether this ran at start-up, ``reconciled``).
        """
        t = time.perf_counter()
        report = None
        try:
            status, result = await self._suspend_and_wait(lock.target)
            report = await self.ops.set_boot_block(lock.target, True, lock.reason, lock.id)
        except SidecarError as exc:
            note = f"suspend failed: {exc.message}"
            await self.store.set_state(lock.id, "failed", note)
            log.error("suspend-lock %s on %s: %s (the lock stays in force)", lock.id,
                      lock.target, note)
            await self._complete(lock, exc.status, t, exc.code, "failed", reconciled)
            exc.message = f"The lock {lock.id} is in force, but {note}"
            raise
        await self.store.set_state(lock.id, "active", "suspended")
        if report is not None and report.get("error"):
            log.warning("suspend-lock %s: the boot block could not be written on host %s: %s (the "
                        "Statelock lock holds)", lock.id, report.get("host"), report["error"])
        await self._complete(lock, status, t, None, "active", reconciled, result, report)
        return replace(lock, state="active", note="suspended")

    async def _complete(self, lock: Lock, status: int, since: float, error_code: str | None,
                        state: LockState, reconciled: bool, result: str | None = None,
                        hypervisor: dict[str, Any] | None = None) -> None:
        if lock.placed_decision_id is None:
            log.warning("suspend-lock %s has no decision on record to complete", lock.id)
            return
        await self.recorder.completion(lock.placed_decision_id, status, time.perf_counter() - since,
                                       error_code, durable=True, lock_ids=[lock.id], lock_state=state,
                                       reconciled=reconciled, backend_result=result, hypervisor=hypervisor)

    async def _suspend_and_wait(self, instance_id: str) -> tuple[int, str]:
        """Suspend and wait for SUSPENDED: (the backend's status, what it did)."""
        status = await self.ops.status(instance_id)
        if status in _STOPPED:
            return 200, f"already {status}"
        answered = await self.ops.power(instance_id, "suspend")
        deadline = time.monotonic() + self.suspend_timeout_s
        while True:
            status = await self.ops.status(instance_id)
            if status == "SUSPENDED":
                return answered, "suspended"
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
            target = await self.ops.resolve(instance_id)
            existing = await self.store.effective_locks(instance_id, None, None, now)
            lifting = [lk for lk in existing if lk.source == SUSPEND_SOURCE]
            if not lifting:
                raise NotFound(f"Instance {instance_id} has no suspend-lock.")
            await self._decide(ctx, subject, "unlock_resume", {}, target, lifting, now,
                               lifted=[lk.id for lk in lifting])
            ids = [lk.id for lk in lifting]
            remaining = [lk for lk in existing if lk not in lifting]
            t = time.perf_counter()
            report = None
            if not any(lk.kind in ("boot", "state") for lk in remaining):
                # NOTE: cleared before the lift and the resume: a hypervisor that still holds the
                # block would refuse the resume (and Nova, refused, would lose the saved RAM).
                try:
                    report = await self.ops.set_boot_block(instance_id, False, None)
                except SidecarError as exc:
                    await self._unresumed(ctx, ids, t, exc, None)
                if report is not None and report.get("error"):
                    await self._unresumed(ctx, ids, t, UpstreamError(
                        f"the boot block on host {report.get('host')} could not be cleared "
                        f"({report['error']})"), report)
            await self.store.lift(ids, subject, ctx.decision_id, now)
            try:
                status = await self.ops.status(instance_id)
                answered, result = 200, f"not resumed: {status}"
                if status == "SUSPENDED":
                    answered, result = await self.ops.power(instance_id, "resume"), "resumed"
            except SidecarError as exc:
                await self.recorder.completion(ctx.decision_id, exc.status, time.perf_counter() - t,
                                               exc.code, durable=True, lock_ids=ids, lock_state="lifted",
                                               hypervisor=report)
                exc.message = f"The suspend-locks {', '.join(ids)} are lifted, but {exc.message}"
                raise
            await self.recorder.completion(ctx.decision_id, answered, time.perf_counter() - t,
                                           durable=True, lock_ids=ids, lock_state="lifted",
                                           backend_result=result, hypervisor=report)
            return [await self._as_lifted(lk) for lk in lifting]

    async def _unresumed(self, ctx: Ctx, ids: list[str], since: float, exc: SidecarError,
                         report: dict[str, Any] | None) -> NoReturn:
        """Record and raise an unlock-resume that stopped before the lift: the locks stay."""
        await self.recorder.completion(ctx.decision_id, exc.status, time.perf_counter() - since, exc.code,
                                       durable=True, lock_ids=ids, lock_state="active", hypervisor=report)
        exc.message = (f"The suspend-locks {', '.join(ids)} stay in force (nothing was lifted): "
                       f"{exc.message}; retry when it answers.")
        raise exc

    async def _as_lifted(self, lock: Lock) -> Lock:
        """The lock's row as it is now (lifted: who, when, by which decision)."""
        return await self.store.get(lock.id) or lock

    async def reconcile(self) -> int:
        """Finish suspend-locks left ``pending`` by a crash; returns how many were found."""
        pending = list(await self.store.pending_locks())
        for lock in pending:
            log.warning("reconciling pending suspend-lock %s on %s", lock.id, lock.target)
            try:
                async with self.guard.exclusive(lock.target):
                    await self._complete_suspend(lock, reconciled=True)
            except SidecarError as exc:
                log.error("pending suspend-lock %s not completed: %s", lock.id, exc.message)
        return len(pending)
