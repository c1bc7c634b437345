"""The policy input (contract v1, ``docs/policy-contract.md``): one builder for every caller.

The request path and the lock operations both ask the policy through a
``PolicyInput``; its ``as_dict`` is the document the engine evaluates and the
decision record keeps (masked). A request that failed before its locks were read
is recorded with the parts it got to (``target``, ``locks`` and ``now`` left out).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from sidecar.identity import Subject
from sidecar.locks.model import Lock, rfc3339
from sidecar.vocab import ActionKind


@dataclass(frozen=True)
class Target:
    """The instance a request is about, and what the policy needs to know of it.

    ``instance_id`` is "" for a request on no instance (a create, a project or host
    lock); ``project_id`` and ``host`` are None when not needed or not known.
    """

    instance_id: str
    project_id: str | None
    host: str | None

    def as_input(self) -> dict[str, Any]:
        return {"instance_id": self.instance_id or None, "project_id": self.project_id,
                "host": self.host}


@dataclass(frozen=True)
class ActionInput:
    """The action as the policy sees it."""

    name: str
    kind: ActionKind
    method: str
    path: str
    params: Mapping[str, Any] = field(default_factory=dict)

    def as_input(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "method": self.method, "path": self.path,
                "params": dict(self.params)}


@dataclass(frozen=True)
class PolicyInput:
    """One question to the policy: who, what, on which target, under which locks, when."""

    subject: Subject
    action: ActionInput
    target: Target | None = None
    locks: tuple[Lock, ...] | None = None
    now: datetime | None = None

    def with_target(self, target: Target) -> PolicyInput:
        return replace(self, target=target)

    def with_locks(self, locks: Sequence[Lock], now: datetime) -> PolicyInput:
        return replace(self, locks=tuple(locks), now=now)

    @property
    def complete(self) -> bool:
        """True once target, locks and time are in (what a decision needs)."""
        return self.target is not None and self.locks is not None and self.now is not None

    def as_dict(self) -> dict[str, Any]:
        """The input document (the parts not yet known are left out)."""
        doc: dict[str, Any] = {"subject": self.subject.as_input(), "action": self.action.as_input()}
        if self.target is not None:
            doc["target"] = self.target.as_input()
        if self.now is not None:
            doc["now"] = rfc3339(self.now)
        if self.locks is not None:
            doc["locks"] = [lk.as_input() for lk in self.locks]
        return doc
