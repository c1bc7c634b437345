"""Typed application state keys (``web.AppKey``): what handlers may reach, one key each."""

from __future__ import annotations

from aiohttp import web

from sidecar.audit.log import JsonlAuditLog
from sidecar.audit.shipping import DecisionShipper
from sidecar.audit.source import DecisionSource
from sidecar.backends.base import Backend
from sidecar.config import Config
from sidecar.identity import Identifier
from sidecar.lockops import LockService
from sidecar.locks.store import LockStore
from sidecar.metrics import Metrics
from sidecar.pipeline import Pipeline
from sidecar.policy.engine import PolicyEngine
from sidecar.recorder import Recorder
from sidecar.workers import WorkerInfo

CONFIG = web.AppKey("config", Config)
PIPELINE = web.AppKey("pipeline", Pipeline)
LOCKS = web.AppKey("locks", LockService)
STORE: web.AppKey[LockStore] = web.AppKey("store")
IDENTIFIER: web.AppKey[Identifier] = web.AppKey("identifier")
RECORDER = web.AppKey("recorder", Recorder)
ENGINE: web.AppKey[PolicyEngine] = web.AppKey("engine")
AUDIT = web.AppKey("audit", JsonlAuditLog)
METRICS = web.AppKey("metrics", Metrics)
SHIPPER = web.AppKey("shipper", DecisionShipper)
BACKEND: web.AppKey[Backend] = web.AppKey("backend")
DECISIONS: web.AppKey[DecisionSource] = web.AppKey("decisions")
WORKER = web.AppKey("worker", WorkerInfo)
