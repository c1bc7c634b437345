"""The decide-and-record stage: ask the policy, put the answer on record, enforce it.

Shared by the request path and the lock operations. ``Decider.decide`` evaluates a
complete ``PolicyInput``, records the decision (an engine fault is recorded as an
error and re-raised: fail closed), and raises the decision's ``Denied`` when it
denies and is enforced. In dry-run the request path passes ``enforce=False``: a
denial is recorded with what would have happened and the caller acts anyway.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sidecar.errors import SidecarError
from sidecar.policy.decision import Decision
from sidecar.policy.engine import PolicyEngine
from sidecar.policy.input import PolicyInput
from sidecar.recorder import Ctx, Recorder


class Decider:
    """Policy engine plus recorder (see module docstring)."""

    def __init__(self, engine: PolicyEngine, recorder: Recorder) -> None:
        self.engine = engine
        self.recorder = recorder

    async def decide(self, ctx: Ctx, policy_input: PolicyInput, *, enforce: bool = True,
                     placed: Sequence[str] = (), lifted: Sequence[str] = ()) -> Decision:
        """The recorded decision for ``policy_input``; Denied (enforced), PolicyError or AuditError."""
        t = time.perf_counter()
        try:
            decision = await self.engine.decide(policy_input.as_dict())
        except SidecarError as exc:
            await self.recorder.error(ctx, policy_input, exc)
            raise
        t = ctx.lap("timer_policy_eval_ns", t)
        acting = decision.allow or not enforce
        await self.recorder.decision(ctx, policy_input, decision, acting=acting,
                                     dry_run=not enforce, placed=placed, lifted=lifted)
        ctx.lap("timer_audit_ns", t)
        if not acting:
            raise decision.denial(policy_input.target.instance_id or None
                                  if policy_input.target else None)
        return decision
