"""Turning decisions into records and replies, shared by the request path and lock operations.

``Ctx`` is what one decided request carries (its decision id, method, path, caller
address, timings). ``Recorder`` writes its decision record (durably when the
request will change something) and applies ``audit.on_failure``: with ``deny``, a
record that can't be written raises ``AuditError`` and nothing happens.
``Denied`` is the error a policy denial becomes, so callers can answer it like
any other ``SidecarError``.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sidecar import __version__
from sidecar.audit.log import AuditLog
from sidecar.audit.record import make_record, new_decision_id
from sidecar.classify import Action
from sidecar.config import Config
from sidecar.errors import AuditError, SidecarError
from sidecar.faults import version_headers
from sidecar.metrics import Metrics
from sidecar.policy.decision import Decision
from sidecar.policy.engine import PolicyEngine

log = logging.getLogger(__name__)

DECISION_HEADER = "X-Statelock-Decision-Id"


class Denied(SidecarError):
    """The policy said no; ``status`` is 409 (a lock) or 403 (a role problem)."""

    code = "policy_denied"

    def __init__(self, decision: Decision, instance_id: str | None = None) -> None:
        message = "; ".join(decision.reasons) or "Policy doesn't allow this request."
        if decision.status == 409 and instance_id and not decision.reasons:
            message = f"Instance {instance_id} is locked"
        super().__init__(message)
        self.status = decision.status
        self.decision = decision


@dataclass
class Ctx:
    """One request on its way through a decision."""

    method: str
    path: str
    client_ip: str
    action: Action | None = None
    decision_id: str = field(default_factory=new_decision_id)
    started: float = field(default_factory=time.perf_counter)
    timings: dict[str, int] = field(default_factory=dict)

    def lap(self, name: str, since: float) -> float:
        """Record the nanoseconds since ``since`` under ``name``; return now."""
        now = time.perf_counter()
        self.timings[name] = int((now - since) * 1e9)
        return now

    def reply_headers(self) -> list[tuple[str, str]]:
        """Microversion headers (as Nova echoes them) and the decision id."""
        mv = None if self.action is None or self.action.legacy_v2 else self.action.microversion
        return [*version_headers(mv), (DECISION_HEADER, self.decision_id)]


class Recorder:
    """Writes decision records (see module docstring) and counts outcomes."""

    def __init__(self, cfg: Config, audit: AuditLog, engine: PolicyEngine, metrics: Metrics) -> None:
        self.cfg = cfg
        self.audit = audit
        self.engine = engine
        # NOTE: OPA's decision-log labels always carry the instance's id and version.
        self.labels = {"id": str(uuid.uuid4()), "version": __version__, "app": "statelock",
                       "mode": cfg.mode}
        self.metrics = metrics
        self._req_ids = itertools.count(1)

    def _record(self, ctx: Ctx, input_doc: dict[str, Any], decision: Decision | None,
                outcome: str, status: int, error: SidecarError | None = None) -> dict[str, Any]:
        record = make_record(
            decision_id=ctx.decision_id, req_id=next(self._req_ids), input_doc=input_doc,
            result=dict(decision.result) if decision else None,
            revision=decision.revision if decision else self.engine.revision, outcome=outcome,
            enforced=not self.cfg.dry_run, method=ctx.method, path=ctx.path, status=status,
            requested_by=ctx.client_ip, error_code=error.code if error else None,
            error_message=error.message if error else None, metrics=ctx.timings,
            labels=self.labels, redact_paths=self.cfg.audit.redact_paths)
        if decision is not None:
            if decision.engine_decision_id:
                record["statelock"]["engine_decision_id"] = decision.engine_decision_id
            if decision.overrides:
                record["statelock"]["overrides"] = list(decision.overrides)
        return record

    async def decision(self, ctx: Ctx, input_doc: dict[str, Any], decision: Decision,
                       acting: bool, dry_run: bool = False) -> None:
        """Record a decision; durable when ``acting`` (something will change).

        Raises AuditError when the record can't be written, the request would act,
        and ``audit.on_failure`` is ``deny``.
        """
        outcome = "allow" if decision.allow else "deny"
        record = self._record(ctx, input_doc, decision, outcome,
                              status=0 if decision.allow else decision.status)
        if dry_run and not decision.allow:
            record["statelock"]["would_have"] = {"status": decision.status,
                                                 "reasons": list(decision.reasons)}
        name = ctx.action.name if ctx.action else str(input_doc.get("action", {}).get("name"))
        self.metrics.decisions.labels(outcome, name).inc()
        try:
            await self.audit.append(record, durable=acting)
        except AuditError as exc:
            self.metrics.audit_failures.inc()
            if acting and self.cfg.audit.on_failure == "deny":
                raise
            log.warning("decision %s not recorded: %s", ctx.decision_id, exc.message)

    async def error(self, ctx: Ctx, input_doc: dict[str, Any], exc: SidecarError) -> None:
        """Record a request that failed closed (engine, store or target fault)."""
        log.error("decision %s failed closed: %s: %s", ctx.decision_id, exc.code, exc.message)
        name = ctx.action.name if ctx.action else "unknown"
        self.metrics.decisions.labels("error", name).inc()
        try:
            await self.audit.append(self._record(ctx, input_doc, None, "error", exc.status, exc))
        except AuditError:
            self.metrics.audit_failures.inc()
            log.error("decision %s (an error) could not be recorded", ctx.decision_id)

    async def refusal(self, ctx: Ctx, exc: SidecarError) -> None:
        """Record a request refused before any decision (malformed, unidentified)."""
        self.metrics.refusals.labels(exc.code).inc()
        input_doc: dict[str, Any] = {"request": {"method": ctx.method, "path": ctx.path[:2048]}}
        if ctx.action is not None:
            input_doc["action"] = action_input(ctx.action)
        try:
            await self.audit.append(self._record(ctx, input_doc, None, "error", exc.status, exc))
        except AuditError:
            self.metrics.audit_failures.inc()

    async def completion(self, ctx: Ctx, status: int, latency_s: float,
                         error_code: str | None) -> None:
        """Add what the backend answered to the record of an allowed request."""
        record = {
            "type": "completion",
            "decision_id": ctx.decision_id,
            "timestamp": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            "statelock": {"upstream": {"status": status, "latency_ms": round(latency_s * 1e3, 3)},
                          "error_code": error_code},
        }
        # NOTE: the decision itself is already durable; a failure here is only counted.
        try:
            await self.audit.append(record, durable=False)
        except AuditError:
            self.metrics.audit_failures.inc()


def action_input(action: Action) -> dict[str, Any]:
    """The action as the policy input shows it."""
    return {"name": action.name, "kind": action.kind, "method": action.method,
            "path": action.path, "params": dict(action.params)}
