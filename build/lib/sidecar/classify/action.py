"""The ``Action``: what one classified request asks for (the classifier's only output)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sidecar.vocab import ACTION_KINDS, STATE_CHANGING_KINDS, ActionKind

KINDS = ACTION_KINDS


@dataclass(frozen=True)
class Action:
    """What one request asks for.

    ``name`` is the name the policy sees (a Nova action key or a route name),
    ``kind`` one of ``KINDS``, ``instance_id`` the canonical lowercase UUID or None,
    ``params`` the non-secret action parameters named in the route table.
    ``forward_path`` is the path (and query) to send upstream: the received bytes
    when they needed no decoding, else the canonical form that was classified.
    """

    name: str
    kind: ActionKind
    method: str
    path: str
    forward_path: str
    instance_id: str | None = None
    project_in_path: str | None = None
    microversion: tuple[int, int] = (2, 1)
    legacy_v2: bool = False
    params: Mapping[str, Any] = field(default_factory=dict)
    body: Any = None

    @property
    def is_state_change(self) -> bool:
        return self.kind in STATE_CHANGING_KINDS

    def at_least(self, major: int, minor: int) -> bool:
        """True when the effective microversion is at least major.minor."""
        return self.microversion >= (major, minor)
