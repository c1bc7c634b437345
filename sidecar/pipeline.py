"""One request, end to end: classify -> identify -> guard -> decide and record -> dispatch.

``Pipeline.handle`` takes the parts of an HTTP request and returns a ``Reply`` (a
reply Statelock makes itself, or the backend's response to stream back), or raises
a ``SidecarError`` bound to the request's decision id and microversion, which the
error boundary answers. It knows nothing of aiohttp; every stage is injected:

1. classify (``Classifier``): what cannot be classified is refused, never forwarded;
2. the fast path: a read is dispatched without a policy call (identified first only
   when the dispatcher shows each caller its own instances);
3. identify (``Identifier``);
4. guard (``Guard``): a state change holds its instance's guard shared from the lock
   read through the dispatch; a lock change (``LockService``) holds it exclusively;
5. decide and record (``LockStore``, ``InstanceOps``, ``Decider``): the policy decides
   on the lock rows read inside the guard, and an allowed state change is durably
   recorded before it is dispatched; any fault in the engine, the store or (with
   ``audit.on_failure: deny``) the log denies;
6. dispatch (``Dispatcher``): the classified request, exactly as it was decided.

Every refusal of a state change is on record (``Recorder.refusing``).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from sidecar.backends.base import Dispatcher, ForwardResponse, IncomingRequest, InstanceOps, drain
from sidecar.classify import Action, Classifier
from sidecar.decide import Decider
from sidecar.errors import BadRequest, IdentityUnavailable, SidecarError, UpstreamTimeout
from sidecar.guard import ALL_INSTANCES, Guard
from sidecar.identity import Identifier, Subject
from sidecar.lockops import LockService
from sidecar.locks.model import Lock
from sidecar.locks.store import LockStore
from sidecar.lockview import LockView, split_locked_filter
from sidecar.metrics import Metrics
from sidecar.policy.input import PolicyInput, Target
from sidecar.recorder import DECISION_HEADER, Ctx, Recorder, action_input

_HOST_CHANGING = frozenset({"migrate", "os-migrateLive", "evacuate", "unshelve", "resize"})
_LOCK_VIEWS = {"show": True, "list_detail": True, "list": False}
_READ_METHODS = ("GET", "HEAD", "OPTIONS")


@dataclass
class Reply:
    """What to answer: a local reply (``body``) or a backend response (``stream``)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    stream: ForwardResponse | None = None


@dataclass(frozen=True)
class Stages:
    """The injected stages and the services they reach."""

    classifier: Classifier
    identifier: Identifier
    guard: Guard
    store: LockStore
    ops: InstanceOps
    decider: Decider
    dispatcher: Dispatcher
    locks: LockService
    lock_view: LockView
    recorder: Recorder
    metrics: Metrics


class Pipeline:
    """The request path over its stages (see the module docstring)."""

    def __init__(self, stages: Stages, *, reads_skip_policy: bool = True, dry_run: bool = False,
                 backend_kind: str = "upstream") -> None:
        self.s = stages
        self.reads_skip_policy = reads_skip_policy
        self.dry_run = dry_run
        self.backend_kind = backend_kind

    async def handle(self, req: IncomingRequest) -> Reply:
        """Answer one request, or raise its bound SidecarError."""
        action = await self._classify(req)
        if action.kind == "read" and self.reads_skip_policy:
            return await self._read(req, action, None)
        # NOTE: made after the fast path, so reads pay for no decision id.
        ctx = Ctx(req.method, action.path, req.client_ip, action)
        async with self.s.recorder.refusing(ctx):
            if action.kind == "unknown":
                raise BadRequest("The resource could not be found.", 404)
            subject = await self._identify(req, action)
            if subject is None:
                return await self._read(req, action, None)
            if action.kind in ("lock", "unlock"):
                await self._nova_lock(ctx, subject)
                return Reply(202, ctx.reply_headers())
            return await self._state_change(req, ctx, subject)

    async def _classify(self, req: IncomingRequest) -> Action:
        try:
            return self.s.classifier.classify(req.method, req.raw_path, req.headers, req.body)
        except SidecarError as exc:
            # NOTE: a refused read is only counted; anything else is put on record.
            ctx = Ctx(req.method, req.raw_path, req.client_ip)
            if req.method.upper() in _READ_METHODS:
                self.s.metrics.refusals.labels(exc.code).inc()
            else:
                await self.s.recorder.refusal(ctx, exc)
            exc.bind(ctx.shown_id, None)
            raise

    async def _identify(self, req: IncomingRequest, action: Action) -> Subject | None:
        """The caller; None for a read that may go on unidentified (Keystone down, ``forward``)."""
        try:
            return await self.s.identifier.identify(req.headers)
        except IdentityUnavailable as exc:
            if action.kind == "read" and exc.forward_reads and not self.s.dispatcher.needs_subject:
                return None
            raise

    # -- reads -----------------------------------------------------------------------------

    @contextlib.contextmanager
    def _read_errors(self, action: Action) -> Iterator[None]:
        try:
            yield
        except SidecarError as exc:
            exc.bind(None, None if action.legacy_v2 else action.microversion)
            raise

    async def _read(self, req: IncomingRequest, action: Action, subject: Subject | None) -> Reply:
        self.s.metrics.reads.inc()
        with self._read_errors(action):
            if subject is None and self.s.dispatcher.needs_subject:
                try:
                    subject = await self.s.identifier.identify(req.headers)
                except SidecarError as exc:
                    self.s.metrics.refusals.labels(exc.code).inc()
                    raise
            detail = _LOCK_VIEWS.get(action.name)
            if detail is None or not action.at_least(2, 9):
                return await self._dispatch(req, action, subject, None)
            wanted: bool | None = None
            if action.at_least(2, 73) and action.name != "show":
                path, _, query = action.forward_path.partition("?")
                wanted, query = split_locked_filter(query)
                action = replace(action, forward_path=path + ("?" + query if query else ""))
            reply = await self._dispatch(req, action, subject, None)
            if reply.stream is None or reply.status != 200 or (wanted is None and not detail):
                return reply
            body = await drain(reply.stream)
            rewritten = await self.s.lock_view.rewrite(body, action, detail, wanted)
            if rewritten is None:
                return Reply(reply.status, reply.headers, body)
            headers = [(k, v) for k, v in reply.headers if k.lower() != "content-encoding"]
            return Reply(reply.status, headers, rewritten)

    # -- state changes ---------------------------------------------------------------------

    async def _state_change(self, req: IncomingRequest, ctx: Ctx, subject: Subject) -> Reply:
        action = ctx.action
        assert action is not None
        policy_input = PolicyInput(subject, action_input(action))
        try:
            async with self.s.guard.shared(ALL_INSTANCES):
                if action.instance_id is None:
                    reply = await self._decide_and_dispatch(req, ctx, policy_input)
                else:
                    async with self.s.guard.shared(action.instance_id):
                        reply = await self._decide_and_dispatch(req, ctx, policy_input)
        except SidecarError as exc:
            if not ctx.tried:
                # NOTE: only entering a guard raises before a record (PostgreSQL: not free in time).
                await self.s.recorder.error(ctx, policy_input, exc)
            raise
        if action.name in _HOST_CHANGING and action.instance_id is not None:
            self.s.ops.forget_host(action.instance_id)
        return reply

    async def _target(self, action: Action, subject: Subject, scoped: bool) -> Target:
        if action.instance_id is None:
            project = action.project_in_path or subject.project_id
            return Target("", project if action.kind == "create" else None, None)
        if scoped or self.s.ops.resolves_cheaply:
            return await self.s.ops.resolve(action.instance_id)
        return Target(action.instance_id, None, None)

    async def _decide_and_dispatch(self, req: IncomingRequest, ctx: Ctx,
                                   policy_input: PolicyInput) -> Reply:
        action = ctx.action
        assert action is not None
        now = datetime.now(UTC)
        try:
            locks: list[Lock] = []
            scoped = True
            if action.instance_id is not None:
                locks, scoped = await self.s.store.instance_locks(action.instance_id, now)
            target = await self._target(action, policy_input.subject, scoped)
            policy_input = policy_input.with_target(target)
            if scoped and (target.project_id or target.host):
                locks = await self.s.store.effective_locks(
                    target.instance_id or None, target.project_id, target.host, now)
            ctx.lap("timer_lock_read_ns", ctx.started)
        except SidecarError as exc:
            await self.s.recorder.error(ctx, policy_input, exc)
            raise
        await self.s.decider.decide(ctx, policy_input.with_locks(locks, now),
                                    enforce=not self.dry_run)
        self.s.metrics.decision_seconds.observe(time.perf_counter() - ctx.started)
        return await self._dispatch(req, action, policy_input.subject, ctx)

    async def _nova_lock(self, ctx: Ctx, subject: Subject) -> None:
        action = ctx.action
        assert action is not None and action.instance_id is not None
        if action.kind == "lock":
            await self.s.locks.nova_lock(ctx, subject, action.instance_id, _lock_reason(action))
        else:
            await self.s.locks.nova_unlock(ctx, subject, action.instance_id)

    # -- dispatch --------------------------------------------------------------------------

    async def _dispatch(self, req: IncomingRequest, action: Action, subject: Subject | None,
                        ctx: Ctx | None) -> Reply:
        seconds = self.s.metrics.upstream_seconds.labels(self.backend_kind)
        t = time.perf_counter()
        try:
            resp = await self.s.dispatcher.dispatch(req, action, subject)
        except SidecarError as exc:
            seconds.observe(time.perf_counter() - t)
            if isinstance(exc, UpstreamTimeout):
                self.s.metrics.refusals.labels("limit_upstream_timeout").inc()
            if ctx is not None:
                # NOTE: in dry-run a denied request is dispatched, and a hypervisor's own boot block
                # (XAPI blocked_operations, the libvirt hook) still refuses it: the record says so.
                refused_by = "hypervisor" if exc.code == "operation_blocked" else None
                await self.s.recorder.completion(ctx.decision_id, exc.status, time.perf_counter() - t,
                                                 exc.code, refused_by=refused_by)
            raise
        seconds.observe(time.perf_counter() - t)
        headers = list(resp.headers)
        if ctx is not None:
            if ctx.recorded:
                headers.append((DECISION_HEADER, ctx.decision_id))
            await self.s.recorder.completion(ctx.decision_id, resp.status, time.perf_counter() - t)
        return Reply(resp.status, headers, stream=resp)


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
