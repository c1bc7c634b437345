"""One request, end to end: classify -> guard -> decide -> record -> forward or deny.

``Enforcer.handle`` takes the parts of an HTTP request and returns a ``Reply``:
either a reply Statelock makes itself (a Nova-shaped error, or the 202 of a lock
call it served) or a backend response to stream back. It knows nothing of aiohttp.

Guarantees, in the order the design gives them: what cannot be classified is
refused and never forwarded; a state change holds its instance's guard shared
from the lock read through the forward, a lock change holds it exclusively;
the policy decides on the lock rows read inside the guard; an allowed state
change is durably recorded before it is forwarded; any fault in the policy
engine, the lock store or (with ``audit.on_failure: deny``) the audit log denies.
"""

from __future__ import annotations

import contextlib
import contextlib
import itertools
import logging
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sidecar.audit.log import AuditLog
from sidecar.audit.record import make_record, new_decision_id
from sidecar.backends.base import Backend, ForwardRequest, ForwardResponse, TargetInfo
from sidecar.classify import Action, RouteTable, classify
from sidecar.config import Config
from sidecar.errors import (
    AuditError,
    BadRequest,
    LockStoreError,
    PolicyError,
    SidecarError,
)
from sidecar.faults import fault_body, version_headers
from sidecar.guard import InstanceGuard
from sidecar.identity import Subject, subject_from_headers
from sidecar.locks.model import Lock, new_lock_id, rfc3339
from sidecar.locks.store import LockStore
from sidecar.policy.decision import Decision
from sidecar.policy.engine import PolicyEngine

log = logging.getLogger(__name__)

DECISION_HEADER = "X-Statelock-Decision-Id"
_HOST_CHANGING = frozenset({"migrate", "os-migrateLive", "evacuate", "unshelve", "resize"})


@dataclass(frozen=True)
class IncomingRequest:
    """The parts of an HTTP request the enforcer needs."""

    method: str
    raw_path: str
    headers: Mapping[str, str]
    body: bytes
    client_ip: str = ""
    scheme: str = "http"
    host: str = ""


@dataclass
class Reply:
    """What to answer: a local reply (``body``) or a backend response (``stream``)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: ForwardResponse | None = None
    decision_id: str | None = None
    content_type: str | None = None


@dataclass
class _Ctx:
    """What one state-changing request accumulates on its way through."""

    req: IncomingRequest
    action: Action
    decision_id: str = field(default_factory=new_decision_id)
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, int] = field(default_factory=dict)

    def lap(self, name: str, since: float) -> float:
        now = time.perf_counter()
        self.timings[name] = int((now - since) * 1e9)
        return now


class Enforcer:
    """The request path over its protocols (Backend, PolicyEngine, LockStore, AuditLog)."""

    def __init__(
        self,
        cfg: Config,
        table: RouteTable,
        backend: Backend,
        engine: PolicyEngine,
        store: LockStore,
        audit: AuditLog,
        guard: InstanceGuard | None = None,
    ) -> None:
        self.cfg = cfg
        self.table = table
        self.backend = backend
        self.engine = engine
        self.store = store
        self.audit = audit
        self.guard = guard or InstanceGuard()
        self._req_ids = itertools.count(1)
        self.counts: Counter[tuple[str, str]] = Counter()
        self.labels = {"app": "statelock", "mode": cfg.mode}

    # -- entry point -----------------------------------------------------------------------

    async def handle(self, req: IncomingRequest) -> Reply:
        """Answer one request (see the module docstring for the guarantees)."""
        try:
            action = classify(req.method, req.raw_path, req.headers, req.body, self.table,
                              self.cfg.limits.max_json_depth)
        except SidecarError as exc:
            return await self._refuse(req, exc)
        if action.kind == "unknown":
            return await self._refuse(req, BadRequest("The resource could not be found.", 404),
                                      action)
        if action.kind == "read" and self.cfg.classifier.reads_skip_policy:
            self.counts[("read", "forwarded")] += 1
            return await self._forward(req, action, None)
        try:
            subject = subject_from_headers(self.cfg.identity.mode, req.headers,
                                           self.cfg.identity.admin_role)
        except SidecarError as exc:
            return await self._refuse(req, exc, action)
        ctx = _Ctx(req, action)
        if action.kind in ("lock", "unlock"):
            return await self._serve_lock(ctx, subject)
        return await self._state_change(ctx, subject)

    # -- state changes ---------------------------------------------------------------------

    async def _state_change(self, ctx: _Ctx, subject: Subject) -> Reply:
        action = ctx.action
        if action.instance_id is None:
            return await self._decide_and_forward(ctx, subject, None)
        async with self.guard.shared(action.instance_id):
            reply = await self._decide_and_forward(ctx, subject, action.instance_id)
        if action.name in _HOST_CHANGING:
            self.backend.forget_host(action.instance_id)
        return reply

    async def _target(self, action: Action, subject: Subject, need_project: bool) -> TargetInfo:
        if action.instance_id is None:
            project = action.project_in_path or subject.project_id
            return TargetInfo("", project if action.kind == "create" else None, None)
        if need_project:
            return await self.backend.resolve(action.instance_id)
        return TargetInfo(action.instance_id, None, None)

    async def _decide_and_forward(
        self, ctx: _Ctx, subject: Subject, instance_id: str | None
    ) -> Reply:
        action = ctx.action
        now = datetime.now(UTC)
        t = ctx.started
        input_doc: dict[str, Any] = {"subject": subject.as_input(),
                                     "action": _action_input(action)}
        try:
            scoped = await self.store.has_scoped_locks(now)
            target = await self._target(action, subject, scoped)
            input_doc["target"] = _target_input(target)
            locks = await self.store.effective_locks(
                target.instance_id or None, target.project_id, target.host, now)
            t = ctx.lap("timer_lock_read_ns", t)
            input_doc.update(now=rfc3339(now), locks=[lk.as_input() for lk in locks])
            decision = await self.engine.decide(input_doc)
            t = ctx.lap("timer_policy_eval_ns", t)
        except SidecarError as exc:
            return await self._error(ctx, exc, input_doc)
        forward = decision.allow or self.cfg.dry_run
        status = 0 if decision.allow else decision.status
        record = self._record(ctx, input_doc, decision, "allow" if decision.allow else "deny",
                              status=status, subject_ok=True)
        try:
            await self.audit.append(record, durable=forward)
        except AuditError as exc:
            if forward and self.cfg.audit.on_failure == "deny":
                return self._local_error(ctx, exc)
            log.warning("decision %s not recorded: %s", ctx.decision_id, exc.message)
        ctx.lap("timer_audit_ns", t)
        self.counts[(action.name, "allow" if decision.allow else "deny")] += 1
        if not forward:
            return self._deny(ctx, decision)
        return await self._forward(ctx.req, action, ctx)

    # -- Nova's lock and unlock, served from the table ----------------------------------------

    async def _serve_lock(self, ctx: _Ctx, subject: Subject) -> Reply:
        action = ctx.action
        assert action.instance_id is not None
        reason = ""
        if action.kind == "lock":
            try:
                reason = _lock_reason(action)
            except BadRequest as exc:
                return await self._refuse(ctx.req, exc, action)
        input_doc: dict[str, Any] = {"subject": subject.as_input(),
                                     "action": _action_input(action)}
        async with self.guard.exclusive(action.instance_id):
            now = datetime.now(UTC)
            try:
                target = await self.backend.resolve(action.instance_id)
                input_doc["target"] = _target_input(target)
                existing = await self.store.effective_locks(
                    target.instance_id, target.project_id, target.host, now)
                if action.kind == "unlock":
                    existing = [lk for lk in existing
                                if lk.scope == "instance" and lk.kind == "state"]
                input_doc.update(now=rfc3339(now), locks=[lk.as_input() for lk in existing])
                decision = await self.engine.decide(input_doc)
            except SidecarError as exc:
                return await self._error(ctx, exc, input_doc)
            status = 202 if decision.allow else decision.status
            record = self._record(ctx, input_doc, decision,
                                  "allow" if decision.allow else "deny", status=status,
                                  subject_ok=True)
            try:
                await self.audit.append(record, durable=True)
            except AuditError as exc:
                if self.cfg.audit.on_failure == "deny":
                    return self._local_error(ctx, exc)
            self.counts[(action.name, "allow" if decision.allow else "deny")] += 1
            if not decision.allow:
                return self._deny(ctx, decision)
            try:
                if action.kind == "lock":
                    await self._place_nova_lock(action.instance_id, subject, reason, existing, now)
                else:
                    await self.store.remove([lk.id for lk in existing])
            except LockStoreError as exc:
                return self._local_error(ctx, exc)
        return Reply(202, self._reply_headers(ctx), decision_id=ctx.decision_id)

    async def _place_nova_lock(
        self, instance_id: str, subject: Subject, reason: str, existing: list[Lock],
        now: datetime,
    ) -> None:
        for lk in existing:
            if (lk.scope == "instance" and lk.kind == "state" and lk.source == "nova"
                    and lk.owner.user_id == subject.user_id
                    and lk.owner.project_id == subject.project_id):
                return  # NOTE: Nova treats a re-lock by the same caller as a no-op.
        await self.store.add(Lock(
            id=new_lock_id(), kind="state", scope="instance", target=instance_id,
            reason=reason, owner=subject, created_at=now, source="nova"))

    # -- replies ---------------------------------------------------------------------------

    async def _forward(self, req: IncomingRequest, action: Action, ctx: _Ctx | None) -> Reply:
        fwd = ForwardRequest(req.method, action.forward_path, req.headers, req.body,
                             req.client_ip, req.scheme, req.host)
        t = time.perf_counter()
        try:
            resp = await self.backend.forward(fwd)
        except SidecarError as exc:
            if ctx is not None:
                await self._completion(ctx, exc.status, time.perf_counter() - t, exc.code)
                return self._local_error(ctx, exc)
            return Reply(exc.status, version_headers(_mv(action)),
                         fault_body(exc.status, exc.message), content_type="application/json")
        headers = list(resp.headers)
        if ctx is not None:
            headers.append((DECISION_HEADER, ctx.decision_id))
            await self._completion(ctx, resp.status, time.perf_counter() - t, None)
        return Reply(resp.status, headers, stream=resp,
                     decision_id=ctx.decision_id if ctx else None)

    async def _completion(
        self, ctx: _Ctx, status: int, latency_s: float, error_code: str | None
    ) -> None:
        record = {
            "type": "completion",
            "decision_id": ctx.decision_id,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "statelock": {"upstream": {"status": status, "latency_ms": round(latency_s * 1e3, 3)},
                          "error_code": error_code},
        }
        try:
            await self.audit.append(record, durable=False)
        except AuditError:
            pass  # NOTE: the decision itself is already durable; the write failure is counted.

    def _reply_headers(self, ctx: _Ctx) -> list[tuple[str, str]]:
        return [*version_headers(_mv(ctx.action)), (DECISION_HEADER, ctx.decision_id)]

    def _deny(self, ctx: _Ctx, decision: Decision) -> Reply:
        message = "; ".join(decision.reasons) or "Policy doesn't allow this request."
        if decision.status == 409 and ctx.action.instance_id and not decision.reasons:
            message = f"Instance {ctx.action.instance_id} is locked"
        return Reply(decision.status, self._reply_headers(ctx),
                     fault_body(decision.status, message), decision_id=ctx.decision_id,
                     content_type="application/json")

    def _local_error(self, ctx: _Ctx, exc: SidecarError) -> Reply:
        return Reply(exc.status, self._reply_headers(ctx), fault_body(exc.status, exc.message),
                     decision_id=ctx.decision_id, content_type="application/json")

    async def _error(self, ctx: _Ctx, exc: SidecarError, input_doc: dict[str, Any]) -> Reply:
        """A fault while deciding: deny with the error's status, and record it."""
        if isinstance(exc, PolicyError | LockStoreError):
            log.error("decision %s failed closed: %s", ctx.decision_id, exc.message)
        record = self._record(ctx, input_doc, None, "error", status=exc.status,
                              error=exc, subject_ok=True)
        try:
            await self.audit.append(record, durable=True)
        except AuditError:
            log.error("decision %s (an error) could not be recorded", ctx.decision_id)
        self.counts[(ctx.action.name, "error")] += 1
        return self._local_error(ctx, exc)

    async def _refuse(
        self, req: IncomingRequest, exc: SidecarError, action: Action | None = None
    ) -> Reply:
        """Refuse a request that can't be classified or identified; record non-reads."""
        decision_id = new_decision_id()
        headers = version_headers(_mv(action)) if action else []
        if req.method.upper() not in ("GET", "HEAD", "OPTIONS"):
            record = make_record(
                decision_id=decision_id, req_id=next(self._req_ids),
                input_doc={"request": {"method": req.method, "path": req.raw_path[:2048]},
                           "action": _action_input(action) if action else None},
                result=None, revision=self.engine.revision, outcome="error",
                enforced=not self.cfg.dry_run, method=req.method, path=req.raw_path[:2048],
                status=exc.status, requested_by=req.client_ip, error_code=exc.code,
                error_message=exc.message, labels=self.labels)
            with contextlib.suppress(AuditError):
                await self.audit.append(record, durable=True)
            headers.append((DECISION_HEADER, decision_id))
        self.counts[("refused", exc.code)] += 1
        return Reply(exc.status, headers, fault_body(exc.status, exc.message),
                     decision_id=decision_id, content_type="application/json")

    def _record(
        self, ctx: _Ctx, input_doc: dict[str, Any], decision: Decision | None, outcome: str,
        status: int, subject_ok: bool, error: SidecarError | None = None,
    ) -> dict[str, Any]:
        record = make_record(
            decision_id=ctx.decision_id, req_id=next(self._req_ids), input_doc=input_doc,
            result=dict(decision.result) if decision else None,
            revision=decision.revision if decision else self.engine.revision, outcome=outcome,
            enforced=not self.cfg.dry_run, method=ctx.req.method, path=ctx.action.path,
            status=status, requested_by=ctx.req.client_ip,
            error_code=error.code if error else None,
            error_message=error.message if error else None,
            metrics=ctx.timings, labels=self.labels)
        if decision is not None and decision.overrides:
            record["statelock"]["overrides"] = list(decision.overrides)
        if self.cfg.dry_run and decision is not None and not decision.allow:
            record["statelock"]["would_have"] = {"status": decision.status,
                                                 "reasons": list(decision.reasons)}
        return record


def _mv(action: Action | None) -> tuple[int, int] | None:
    if action is None or action.legacy_v2:
        return None
    return action.microversion


def _action_input(action: Action) -> dict[str, Any]:
    return {"name": action.name, "kind": action.kind, "method": action.method,
            "path": action.path, "params": dict(action.params)}


def _target_input(target: TargetInfo) -> dict[str, Any]:
    return {"instance_id": target.instance_id or None, "project_id": target.project_id,
            "host": target.host}


def _lock_reason(action: Action) -> str:
    """The locked_reason of a Nova lock body, validated as Nova does at 2.73+."""
    if not action.at_least(2, 73):
        return ""
    arg = action.body.get("lock") if isinstance(action.body, dict) else None
    if arg is None:
        return ""
    if not isinstance(arg, dict) or set(arg) - {"locked_reason"}:
        raise BadRequest(f"Invalid input for field/attribute lock. Value: {arg!r}.")
    reason = arg.get("locked_reason", "")
    if not isinstance(reason, str) or not 1 <= len(reason) <= 255:
        raise BadRequest("Invalid input for field/attribute locked_reason. "
                         "It must be a string of 1 to 255 characters.")
    return reason
