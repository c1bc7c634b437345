"""The one protocol all policy I/O goes through, and the choice of engine."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from sidecar.config import PolicyConfig
from sidecar.policy.decision import Decision


class PolicyEngine(Protocol):
    """Answers ``data.statelock.authz.decision`` for an input.

    ``decide`` returns a validated Decision or raises PolicyError (engine down,
    slow, undefined or malformed result): the caller denies with 503.
    """

    name: str

    @property
    def revision(self) -> str:
        """The bundle revision decisions are currently made with."""

    async def start(self) -> None:
        """Load or connect; raises PolicyError when the engine can't serve."""

    async def close(self) -> None:
        """Release resources."""

    async def decide(self, input_doc: Mapping[str, Any]) -> Decision:
        """Decide one input."""

    def health(self) -> dict[str, Any]:
        """State for /statelock/v1/health: ok, revision, last error."""


def create_engine(cfg: PolicyConfig) -> PolicyEngine:
    """The engine the config names (not yet started)."""
    if cfg.engine == "embedded":
        from sidecar.policy.embedded import EmbeddedEngine

        return EmbeddedEngine(cfg)
    from sidecar.policy.opa import OpaEngine

    return OpaEngine(cfg)
