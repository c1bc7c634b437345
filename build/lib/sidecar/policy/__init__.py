"""Policy: the engine protocol, the decision, the bundle, and the engines."""

from sidecar.policy.decision import Decision, decision_from_result
from sidecar.policy.engine import PolicyEngine, create_engine

__all__ = ["Decision", "PolicyEngine", "create_engine", "decision_from_result"]
