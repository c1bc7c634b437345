"""The one protocol all policy I/O goes through, and the choice of engine."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
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

    def loaded_revisions(self) -> tuple[str, ...]:
        """The revisions the engine can still decide with (``decide_at``), the serving one last."""

    async def decide_at(self, input_doc: Mapping[str, Any], revision: str) -> Decision | None:
        """Replay: the decision of revision ``revision``; None when that revision is no longer loaded."""

    async def data_at(self, path: Sequence[str]) -> Any:
        """The serving bundle's data at ``path``, None when absent; PolicyError when it can't be read."""


def create_engine(cfg: PolicyConfig, on_reload: Callable[[bool], None] | None = None) -> PolicyEngine:
    """The engine the config names (not yet started).

    ``on_reload(ok)`` is called after each reload of the bundle the embedded engine
    watches (an OPA server loads its bundles itself and reports them in its own metrics).
    """
    if cfg.engine == "embedded":
        from sidecar.policy.embedded import EmbeddedEngine

        return EmbeddedEngine(cfg, on_reload=on_reload)
    from sidecar.policy.opa import OpaEngine

    return OpaEngine(cfg)
