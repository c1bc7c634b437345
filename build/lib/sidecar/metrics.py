"""Prometheus metrics for one Statelock process, in a registry of its own (no globals)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest

_LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                    0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The counters, histograms and gauges Statelock exports at ``/metrics``."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.decisions = Counter("statelock_decisions", "Decisions by outcome and action.",
                                 ["outcome", "action"], registry=r)
        self.refusals = Counter("statelock_refused_requests",
                                "Requests refused before a decision, by error code.", ["code"],
                                registry=r)
        self.reads = Counter("statelock_reads_forwarded", "Reads forwarded without a decision.",
                             registry=r)
        self.decision_seconds = Histogram("statelock_decision_seconds",
                                          "Time from request to decision recorded.",
                                          buckets=_LATENCY_BUCKETS, registry=r)
        self.upstream_seconds = Histogram("statelock_upstream_seconds",
                                          "Backend (upstream or driver) latency.", ["backend"],
                                          buckets=_LATENCY_BUCKETS, registry=r)
        self.audit_failures = Counter("statelock_audit_write_failures",
                                      "Decision records that could not be written.", registry=r)
        self.active_locks = Gauge("statelock_active_locks", "Locks in force, by kind.", ["kind"],
                                  registry=r)
        self.policy_reloads = Counter("statelock_policy_reloads", "Policy bundle reloads.",
                                      ["result"], registry=r)
        self.shipping = Gauge("statelock_decision_log_shipping",
                              "Decision-log shipping counts (shipped, retried, dropped, spooled, backlog).",
                              ["counter"], registry=r)
        self.policy = Info("statelock_policy", "The policy engine and bundle revision.",
                           registry=r)

    def render(self) -> bytes:
        """The text exposition format."""
        return generate_latest(self.registry)
