"""Prometheus metrics for one Statelock process, in a registry of its own (no globals).

With ``server.workers > 1`` the supervisor gives every worker the same
``PROMETHEUS_MULTIPROC_DIR`` (a fresh directory per run, removed at the stop):
prometheus_client then keeps each worker's values in files there, and whichever
worker answers ``/metrics`` renders the sum over all of them (counters and
histograms added up over every worker that ran, restarted ones included). The
gauges set when ``/metrics`` is asked for show the answering worker's view: locks in
force (the shared table, so the same from every worker) and the policy revision
(``statelock_policy_info``, from a registry of its own since prometheus_client keeps
no Info in files); shipping counts carry a ``pid`` label per live worker.
"""

from __future__ import annotations

import os

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.exposition import generate_latest
from prometheus_client.multiprocess import MultiProcessCollector

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

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
                                  registry=r, multiprocess_mode="mostrecent")
        self.policy_reloads = Counter("statelock_policy_reloads", "Policy bundle reloads.",
                                      ["result"], registry=r)
        self.shipping = Gauge("statelock_decision_log_shipping",
                              "Decision-log shipping counts (shipped, retried, dropped, spooled, backlog).",
                              ["counter"], registry=r, multiprocess_mode="liveall")
        self._multiproc = os.environ.get(MULTIPROC_ENV)
        self._info = CollectorRegistry(auto_describe=True) if self._multiproc else r
        self.policy = Info("statelock_policy", "The policy engine and bundle revision.",
                           registry=self._info)

    def render(self) -> bytes:
        """The text exposition format: this process's, or every worker's (see the module docstring)."""
        if not self._multiproc:
            return generate_latest(self.registry)
        every = CollectorRegistry()
        MultiProcessCollector(every, self._multiproc)  # type: ignore[no-untyped-call]
        return generate_latest(every) + generate_latest(self._info)
