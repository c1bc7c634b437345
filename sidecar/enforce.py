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

import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sidecar import lockview
from sidecar.audit.log import AuditLog
from sidecar.backends.base import Backend, ForwardRequest, ForwardResponse, TargetInfo, drain
from sidecar.classify import Action, RouteTable, classify
from sidecar.config import Config
from sidecar.errors import BadRequest, IdentityUnavailable, SidecarError
from sidecar.faults import fault_body, version_headers
from sidecar.guard import ALL_INSTANCES, Guard, InstanceGuard
from sidecar.identity import Identifier, Subject
from sidecar.lockops import LockService
from sidecar.locks.model import Lock, rfc3339
from sidecar.locks.store import LockStore
from sidecar.metrics import Metrics
from sidecar.policy.engine import PolicyEngine
from sidecar.recorder import DECISION_HEADER, Ctx, Denied, Recorder, action_input

log = logging.getLogger(__name__)

_HOST_CHANGING = frozenset({"migrate", "os-migrateLive", "evacuate", "unshelve", "resize"})
_LOCK_VIEWS = {"show": True, "list_detail": True, "list": False}


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


def error_reply(exc: SidecarError, headers: list[tuple[str, str]],
                decision_id: str | None = None) -> Reply:
    """A Nova-shaped error reply for a SidecarError (plus the error's own headers, if any)."""
    # NOTE: a Keystone 401 carries its WWW-Authenticate challenge as ``headers``.
    extra = exc.headers
    return Reply(exc.status, [*headers, *extra], fault_body(exc.status, exc.message),
                 decision_id=decision_id, content_type="application/json")


class Enforcer:
    """The request path over its protocols (Backend, PolicyEngine, LockStore, AuditLog)."""

    def __init__(self, cfg: Config, table: RouteTable, backend: Backend, engine: PolicyEngine,
                 store: LockStore, audit: AuditLog, identifier: Identifier,
                 guard: Guard | None = None) -> None:
        self.cfg = cfg
        self.table = table
        self.backend = backend
        self.engine = engine
        self.store = store
        self.audit = audit
        self.identifier = identifier
        self.guard: Guard = guard or InstanceGuard()
        self.metrics = Metrics()
        self.recorder = Recorder(cfg, audit, engine, self.metrics)
        self.locks = LockService(cfg, backend, engine, store, self.recorder, self.guard)

    # -- entry point -----------------------------------------------------------------------

    async def handle(self, req: IncomingRequest) -> Reply:
        """Answer one request (see the module docstring for the guarantees)."""
        try:
            action = classify(req.method, req.raw_path, req.headers, req.body, self.table,
                              self.cfg.limits.max_json_depth, self.cfg.classifier.unknown_reads)
        except SidecarError as exc:
            return await self._refuse(req, Ctx(req.method, req.raw_path, req.client_ip), exc)
        if action.kind == "read" and self.cfg.classifier.reads_skip_policy:
            return await self._read(req, action)
        # NOTE: made after the fast path, so reads pay for no decision id.
        ctx = Ctx(req.method, action.path, req.client_ip, action)
        if action.kind == "unknown":
            return await self._refuse(req, ctx, BadRequest("The resource could not be found.", 404))
        try:
            subject = await self.identifier.identify(req.headers)
        except SidecarError as exc:
            # NOTE: identity.keystone.reads_when_keystone_down: forward lets Nova decide on a read.
            if action.kind == "read" and isinstance(exc, IdentityUnavailable) and exc.forward_reads:
                return await self._read(req, action)
            return await self._refuse(req, ctx, exc)
        if action.kind in ("lock", "unlock"):
            return await self._nova_lock(ctx, subject)
        return await self._state_change(req, ctx, subject)

    # -- reads -----------------------------------------------------------------------------

    async def _read(self, req: IncomingRequest, action: Action) -> Reply:
        self.metrics.reads.inc()
        detail = _LOCK_VIEWS.get(action.name)
        if detail is None or not action.at_least(2, 9):
            return await self._forward(req, action, None)
        wanted: bool | None = None
        if action.at_least(2, 73) and action.name != "show":
            path, _, query = action.forward_path.partition("?")
            try:
                wanted, query = lockview.split_locked_filter(query)
            except BadRequest as exc:
                return error_reply(exc, version_headers(action.microversion))
            action = replace(action, forward_path=path + ("?" + query if query else ""))
        reply = await self._forward(req, action, None)
        if reply.stream is None or reply.status != 200 or (wanted is None and not detail):
            return reply
        return await self._with_lock_view(reply, action, detail, wanted)

    async def _with_lock_view(self, reply: Reply, action: Action, detail: bool,
                              wanted: bool | None) -> Reply:
        assert reply.stream is not None
        body = await drain(reply.stream)
        try:
            doc = json.loads(body)
            by_server = await self._locks_by_server(lockview.servers_of(doc))
        except ValueError:
            return Reply(reply.status, reply.headers, body)
        except SidecarError as exc:
            return error_reply(exc, version_headers(action.microversion))
        lockview.decorate(doc, by_server, action.microversion, detail)
        if wanted is not None:
            lockview.filter_locked(doc, by_server, wanted)
        headers = [(k, v) for k, v in reply.headers if k.lower() != "content-encoding"]
        return Reply(reply.status, headers, json.dumps(doc).encode())

    async def _locks_by_server(self, servers: Sequence[Mapping[str, Any]]) -> dict[str, list[Lock]]:
        now = datetime.now(UTC)
        ids = [str(server.get("id", "")) for server in servers]
        if not await self.store.has_scoped_locks(now):
            return await self.store.locks_on_instances(ids, now)
        out: dict[str, list[Lock]] = {}
        for sid, server in zip(ids, servers, strict=True):
            project = server.get("tenant_id")
            host = server.get("OS-EXT-SRV-ATTR:host")
            if not isinstance(project, str):
                info = await self.backend.resolve(sid)
                project, host = info.project_id, info.host
            out[sid] = await self.store.effective_locks(
                sid, project, host if isinstance(host, str) else None, now)
        return out

    # -- state changes ---------------------------------------------------------------------

    async def _state_change(self, req: IncomingRequest, ctx: Ctx, subject: Subject) -> Reply:
        action = ctx.action
        assert action is not None
        try:
            async with self.guard.shared(ALL_INSTANCES):
                if action.instance_id is None:
                    return await self._decide_and_forward(req, ctx, subject)
                async with self.guard.shared(action.instance_id):
                    reply = await self._decide_and_forward(req, ctx, subject)
        except SidecarError as exc:
            # NOTE: only entering a guard raises here (PostgreSQL: not free in time, store down).
            await self.recorder.error(ctx, {"subject": subject.as_input(), "action": action_input(action)}, exc)
            return error_reply(exc, ctx.reply_headers(), ctx.decision_id)
        if action.name in _HOST_CHANGING:
            self.backend.forget_host(action.instance_id)
        return reply

    async def _target(self, action: Action, subject: Subject, scoped: bool) -> TargetInfo:
        if action.instance_id is None:
            project = action.project_in_path or subject.project_id
            return TargetInfo("", project if action.kind == "create" else None, None)
        if scoped:
            return await self.backend.resolve(action.instance_id)
        return TargetInfo(action.instance_id, None, None)

    async def _decide_and_forward(self, req: IncomingRequest, ctx: Ctx, subject: Subject) -> Reply:
        action = ctx.action
        assert action is not None
        now = datetime.now(UTC)
        t = ctx.started
        input_doc: dict[str, Any] = {"subject": subject.as_input(), "action": action_input(action)}
        try:
            if action.instance_id is not None:
                locks, scoped = await self.store.instance_locks(action.instance_id, now)
            else:
                locks, scoped = [], True
            target = await self._target(action, subject, scoped)
            input_doc["target"] = {"instance_id": target.instance_id or None,
                                   "project_id": target.project_id, "host": target.host}
            if scoped and (target.project_id or target.host):
                locks = await self.store.effective_locks(
                    target.instance_id or None, target.project_id, target.host, now)
            t = ctx.lap("timer_lock_read_ns", t)
            input_doc.update(now=rfc3339(now), locks=[lk.as_input() for lk in locks])
            decision = await self.engine.decide(input_doc)
            t = ctx.lap("timer_policy_eval_ns", t)
        except SidecarError as exc:
            await self.recorder.error(ctx, input_doc, exc)
            return error_reply(exc, ctx.reply_headers(), ctx.decision_id)
        forward = decision.allow or self.cfg.dry_run
        try:
            await self.recorder.decision(ctx, input_doc, decision, acting=forward,
                                         dry_run=self.cfg.dry_run)
        except SidecarError as exc:
            return error_reply(exc, ctx.reply_headers(), ctx.decision_id)
        ctx.lap("timer_audit_ns", t)
        self.metrics.decision_seconds.observe(time.perf_counter() - ctx.started)
        if not forward:
            return error_reply(Denied(decision, action.instance_id), ctx.reply_headers(),
                               ctx.decision_id)
        return await self._forward(req, action, ctx)

    async def _nova_lock(self, ctx: Ctx, subject: Subject) -> Reply:
        action = ctx.action
        assert action is not None and action.instance_id is not None
        try:
            if action.kind == "lock":
                await self.locks.nova_lock(ctx, subject, action.instance_id, _lock_reason(action))
            else:
                await self.locks.nova_unlock(ctx, subject, action.instance_id)
        except BadRequest as exc:
            return await self._refuse_ctx(ctx, exc)
        except SidecarError as exc:
            return error_reply(exc, ctx.reply_headers(), ctx.decision_id)
        return Reply(202, ctx.reply_headers(), decision_id=ctx.decision_id)

    # -- replies ---------------------------------------------------------------------------

    async def _forward(self, req: IncomingRequest, action: Action, ctx: Ctx | None) -> Reply:
        fwd = ForwardRequest(req.method, action.forward_path, req.headers, req.body,
                             req.client_ip, req.scheme, req.host)
        t = time.perf_counter()
        try:
            resp = await self.backend.forward(fwd)
        except SidecarError as exc:
            self.metrics.upstream_seconds.labels(self.cfg.backend.kind).observe(time.perf_counter() - t)
            if ctx is None:
                return error_reply(exc, version_headers(None if action.legacy_v2
                                                        else action.microversion))
            await self.recorder.completion(ctx, exc.status, time.perf_counter() - t, exc.code)
            return error_reply(exc, ctx.reply_headers(), ctx.decision_id)
        self.metrics.upstream_seconds.labels(self.cfg.backend.kind).observe(time.perf_counter() - t)
        headers = list(resp.headers)
        if ctx is not None:
            headers.append((DECISION_HEADER, ctx.decision_id))
            await self.recorder.completion(ctx, resp.status, time.perf_counter() - t, None)
        return Reply(resp.status, headers, stream=resp,
                     decision_id=ctx.decision_id if ctx else None)

    async def _refuse(self, req: IncomingRequest, ctx: Ctx, exc: SidecarError) -> Reply:
        """Refuse a request that can't be classified or identified; record non-reads."""
        if req.method.upper() in ("GET", "HEAD", "OPTIONS"):
            self.metrics.refusals.labels(exc.code).inc()
            headers = ctx.reply_headers()[:-1] if ctx.action else []
            return error_reply(exc, headers)
        return await self._refuse_ctx(ctx, exc)

    async def _refuse_ctx(self, ctx: Ctx, exc: SidecarError) -> Reply:
        await self.recorder.refusal(ctx, exc)
        headers = ctx.reply_headers() if ctx.action else [(DECISION_HEADER, ctx.decision_id)]
        return error_reply(exc, headers, ctx.decision_id)


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
