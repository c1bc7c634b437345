"""Decision records: what one decided request carries (``Ctx``) and the writer of its records.

``Ctx`` is one request on its way through a decision: its decision id, method,
path, caller address, action and timings, and whether a record of it is on disk
(``recorded``). A decision id is only handed out (the ``X-Statelock-Decision-Id``
header, an error's ``decision_id``) once a record holding it was written.

``Recorder`` writes the four kinds of record (decision, error, refusal,
completion) and applies ``audit.on_failure``: with ``deny``, a decision record
that can't be written for a request that would act raises ``AuditError`` and
nothing happens. ``refusing`` is the one place a request that fails before its
decision is put on record.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sidecar import __version__
from sidecar.audit.log import AuditLog
from sidecar.audit.record import make_completion, make_record, new_decision_id
from sidecar.classify import Action
from sidecar.errors import AuditError, SidecarError
from sidecar.faults import version_headers
from sidecar.metrics import Metrics
from sidecar.policy.decision import Decision
from sidecar.policy.input import ActionInput, PolicyInput
from sidecar.vocab import Outcome

log = logging.getLogger(__name__)

DECISION_HEADER = "X-Statelock-Decision-Id"
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def action_input(action: Action) -> ActionInput:
    """A classified action as the policy input shows it."""
    return ActionInput(action.name, action.kind, action.method, action.path, action.params)


@dataclass
class Ctx:
    """One request on its way through a decision (see the module docstring)."""

    method: str
    path: str
    client_ip: str
    action: Action | None = None
    decision_id: str = field(default_factory=new_decision_id)
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, int] = field(default_factory=dict)
    recorded: bool = False
    tried: bool = False

    def lap(self, name: str, since: float) -> float:
        """Record the nanoseconds since ``since`` under ``name``; return now."""
        now = time.perf_counter()
        self.timings[name] = int((now - since) * 1e9)
        return now

    @property
    def is_read(self) -> bool:
        return self.method.upper() in _READ_METHODS

    @property
    def microversion(self) -> tuple[int, int] | None:
        """The microversion to echo (None before classification and for legacy v2)."""
        if self.action is None or self.action.legacy_v2:
            return None
        return self.action.microversion

    @property
    def shown_id(self) -> str | None:
        """The decision id to hand out: only once a record holds it."""
        return self.decision_id if self.recorded else None

    def reply_headers(self) -> list[tuple[str, str]]:
        """Microversion headers (as Nova echoes them) and the decision id, if on record."""
        headers = version_headers(self.microversion)
        if self.recorded:
            headers.append((DECISION_HEADER, self.decision_id))
        return headers


class Recorder:
    """Writes the records of decided requests and counts outcomes (see module docstring)."""

    def __init__(self, audit: AuditLog, revision: Callable[[], str], metrics: Metrics, *,
                 mode: str = "enforce", on_failure: str = "deny",
                 redact_paths: Sequence[str] = ()) -> None:
        self.audit = audit
        self._revision = revision
        self.metrics = metrics
        self.enforced = mode != "dry-run"
        self.on_failure = on_failure
        self.redact_paths = tuple(redact_paths)
        # NOTE: OPA's decision-log labels always carry the instance's id and version.
        self.labels = {"id": str(uuid.uuid4()), "version": __version__, "app": "statelock",
                       "mode": mode}
        self._req_ids = itertools.count(1)

    def _record(self, ctx: Ctx, input_doc: Mapping[str, Any], decision: Decision | None,
                outcome: Outcome, status: int, error: SidecarError | None = None,
                placed: Sequence[str] = (), lifted: Sequence[str] = ()) -> dict[str, Any]:
        record = make_record(
            locks_placed=placed, locks_lifted=lifted,
            decision_id=ctx.decision_id, req_id=next(self._req_ids), input_doc=input_doc,
            result=dict(decision.result) if decision else None,
            revision=decision.revision if decision else self._revision(), outcome=outcome,
            enforced=self.enforced, method=ctx.method, path=ctx.path, status=status,
            requested_by=ctx.client_ip, error_code=error.code if error else None,
            error_message=error.message if error else None, metrics=ctx.timings,
            labels=self.labels, redact_paths=self.redact_paths)
        if decision is not None:
            if decision.engine_decision_id:
                record["statelock"]["engine_decision_id"] = decision.engine_decision_id
            if decision.overrides:
                record["statelock"]["overrides"] = list(decision.overrides)
        return record

    async def _write(self, ctx: Ctx, record: dict[str, Any]) -> None:
        """Append durably; ``ctx.recorded`` once it is on disk. AuditError is counted and raised."""
        ctx.tried = True
        try:
            await self.audit.append(record, durable=True)
        except AuditError:
            self.metrics.audit_failures.inc()
            raise
        ctx.recorded = True

    async def decision(self, ctx: Ctx, policy_input: PolicyInput, decision: Decision, *,
                       acting: bool, dry_run: bool = False, placed: Sequence[str] = (),
                       lifted: Sequence[str] = ()) -> None:
        """Record a decision (naming the locks it would place or lift, for a lock operation).

        Raises AuditError when the record can't be written, the request would act
        (``acting``), and ``audit.on_failure`` is ``deny``.
        """
        outcome: Outcome = "allow" if decision.allow else "deny"
        record = self._record(ctx, policy_input.as_dict(), decision, outcome,
                              status=0 if decision.allow else decision.status, placed=placed,
                              lifted=lifted)
        if dry_run and not decision.allow:
            record["statelock"]["would_have"] = {"status": decision.status,
                                                 "reasons": list(decision.reasons)}
        self.metrics.decisions.labels(outcome, policy_input.action.name).inc()
        try:
            await self._write(ctx, record)
        except AuditError as exc:
            if acting and self.on_failure == "deny":
                raise
            log.warning("decision %s not recorded: %s", ctx.decision_id, exc.message)

    async def error(self, ctx: Ctx, policy_input: PolicyInput, exc: SidecarError) -> None:
        """Record a request that failed closed (engine, store, target or guard fault)."""
        log.error("decision %s failed closed: %s: %s", ctx.decision_id, exc.code, exc.message)
        self.metrics.decisions.labels("error", policy_input.action.name).inc()
        try:
            await self._write(ctx, self._record(ctx, policy_input.as_dict(), None, "error",
                                                exc.status, exc))
        except AuditError:
            log.error("decision %s (an error) could not be recorded", ctx.decision_id)

    async def refusal(self, ctx: Ctx, exc: SidecarError) -> None:
        """Record a request refused before any decision (malformed, unidentified, unknown)."""
        self.metrics.refusals.labels(exc.code).inc()
        input_doc: dict[str, Any] = {"request": {"method": ctx.method, "path": ctx.path[:2048]}}
        if ctx.action is not None:
            input_doc["action"] = action_input(ctx.action).as_input()
        try:
            await self._write(ctx, self._record(ctx, input_doc, None, "error", exc.status, exc))
        except AuditError:
            log.error("refusal %s could not be recorded", ctx.decision_id)

    async def completion(self, decision_id: str, status: int, latency_s: float,
                         error_code: str | None = None, *, durable: bool = False, **lock: Any) -> None:
        """Add what the backend answered to the record of decision ``decision_id``.

        ``lock`` passes ``make_completion``'s lock fields (``lock_ids``, ``lock_state``,
        ``reconciled``, ``backend_result``, ``refused_by``) for a lock operation, whose
        completion is ``durable`` (on disk before the answer: it proves the suspend);
        a forwarded request's is not (the decision is, and the answer must not wait).
        """
        record = make_completion(decision_id=decision_id, status=status, latency_s=latency_s,
                                 error_code=error_code, **lock)
        # NOTE: the decision itself is already durable; a failure here is only counted.
        try:
            await self.audit.append(record, durable=durable)
        except AuditError:
            self.metrics.audit_failures.inc()

    @asynccontextmanager
    async def refusing(self, ctx: Ctx) -> AsyncIterator[Ctx]:
        """Put a SidecarError raised in the block on record, then re-raise it bound to ``ctx``.

        A request with no record yet gets a refusal record (a read is only counted:
        reads carry no decision id); the error then carries the decision id (if a
        record holds it) and the microversion, for the error boundary.
        """
        try:
            yield ctx
        except SidecarError as exc:
            if not ctx.tried:
                if ctx.is_read:
                    self.metrics.refusals.labels(exc.code).inc()
                else:
                    await self.refusal(ctx, exc)
            exc.bind(ctx.shown_id, ctx.microversion)
            raise
