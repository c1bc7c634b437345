"""Typed application state keys (``web.AppKey``)."""

from __future__ import annotations

from aiohttp import web

from sidecar.audit.shipping import DecisionShipper
from sidecar.config import Config
from sidecar.enforce import Enforcer

CONFIG = web.AppKey("config", Config)
ENFORCER = web.AppKey("enforcer", Enforcer)
SHIPPER = web.AppKey("shipper", DecisionShipper)
