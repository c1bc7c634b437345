"""The policy decision and its validation.

``decision_from_result`` turns whatever an engine returned into a ``Decision`` or
raises ``PolicyError``: undefined, not an object, or ``allow`` not a boolean is an
error, never an allow.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.errors import Denied, PolicyError


@dataclass(frozen=True)
class Decision:
    """What the policy said about one input."""

    allow: bool
    reasons: tuple[str, ...] = ()
    lock_ids: tuple[str, ...] = ()
    status: int = 403
    overrides: tuple[str, ...] = ()
    revision: str = ""
    engine_decision_id: str | None = None
    result: Mapping[str, Any] = field(default_factory=dict)

    def denial(self, instance_id: str | None = None) -> Denied:
        """The error a denial is answered with: the reasons, or Nova's own words for a bare 409."""
        message = "; ".join(self.reasons) or "Policy doesn't allow this request."
        if self.status == 409 and instance_id and not self.reasons:
            message = f"Instance {instance_id} is locked"
        return Denied(message, self.status, self.lock_ids)


def _strings(result: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = result.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"policy decision field {key!r} is not a list of strings")
    return tuple(value)


def decision_from_result(
    result: Any, revision: str, engine_decision_id: str | None = None
) -> Decision:
    """Validate an engine's result document; raises PolicyError if it is unusable."""
    if result is None:
        raise PolicyError("policy decision is undefined")
    if not isinstance(result, Mapping):
        raise PolicyError(f"policy decision is not an object: {type(result).__name__}")
    allow = result.get("allow")
    if not isinstance(allow, bool):
        raise PolicyError("policy decision has no boolean 'allow'")
    status = result.get("status", 403)
    if isinstance(status, bool) or not isinstance(status, int):
        raise PolicyError("policy decision 'status' is not an integer")
    if not allow and status not in (403, 409):
        status = 403
    return Decision(
        allow=allow,
        reasons=_strings(result, "reasons"),
        lock_ids=_strings(result, "lock_ids"),
        status=status,
        overrides=_strings(result, "overrides"),
        revision=revision,
        engine_decision_id=engine_decision_id,
        result=dict(result),
    )
