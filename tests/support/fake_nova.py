"""An in-process Nova-shaped upstream: a real ``web.Application`` that records requests.

It answers the server routes Statelock proxies (show, list, detail, actions,
delete, create, metadata) with Nova's shapes, keeps each server's status, and
records every request it receives exactly as it arrived (method, path, headers,
body bytes) so tests can assert what reached the upstream.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

TRANSITIONS = {
    "suspend": "SUSPENDED", "resume": "ACTIVE", "os-start": "ACTIVE", "os-stop": "SHUTOFF",
    "pause": "PAUSED", "unpause": "ACTIVE", "reboot": "ACTIVE", "shelve": "SHELVED_OFFLOADED",
    "unshelve": "ACTIVE", "rescue": "RESCUE", "unrescue": "ACTIVE", "rebuild": "ACTIVE",
}


@dataclass(frozen=True)
class Received:
    """One request as the upstream received it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def action(self) -> str | None:
        """The action key of a POST .../action body, if any."""
        if not self.path.endswith("/action") or not self.body:
            return None
        try:
            doc = json.loads(self.body)
        except ValueError:
            return None
        return next(iter(doc)) if isinstance(doc, dict) and doc else None


@dataclass
class FakeNova:
    """State and request log of the fake upstream."""

    servers: dict[str, dict[str, Any]] = field(default_factory=dict)
    received: list[Received] = field(default_factory=list)
    action_status: int = 202
    # NOTE: compute hosts that have no server yet (os-services lists them too).
    hosts: set[str] = field(default_factory=lambda: {"cmp-1", "cmp-2"})
    # NOTE: a test hook: awaited before each request is answered (to hold or delay one).
    gate: Callable[[Received], Awaitable[None]] | None = None

    def add_server(self, project_id: str = "demo", user_id: str = "alice",
                   host: str = "cmp-1", status: str = "ACTIVE") -> str:
        """Add a server and return its id."""
        sid = str(uuid.uuid4())
        self.servers[sid] = {"id": sid, "name": f"vm-{sid[:8]}", "tenant_id": project_id,
                             "user_id": user_id, "status": status,
                             "OS-EXT-SRV-ATTR:host": host}
        return sid

    def actions_for(self, server_id: str) -> list[str]:
        """The action keys the upstream received for a server, in order."""
        return [r.action for r in self.received
                if server_id in r.path and r.action is not None]

    def forwarded(self, server_id: str) -> list[Received]:
        """Every request received whose path names the server (lookups excluded)."""
        return [r for r in self.received if server_id in r.path
                and not (r.method == "GET" and r.headers.get("X-Auth-Token", "").startswith(
                    "statelock:"))]


def version_doc(origin: str, version: str) -> dict[str, Any]:
    """Nova's version document for /v2.1 (or /v2)."""
    current = version == "v2.1"
    return {"id": version, "status": "CURRENT" if current else "SUPPORTED",
            "version": "2.104" if current else "", "min_version": "2.1" if current else "",
            "updated": "2013-07-23T11:33:21Z",
            "links": [{"rel": "self", "href": f"{origin}/{version}/"}],
            "media-types": [{"base": "application/json",
                             "type": "application/vnd.openstack.compute+json;version=2.1"}]}


def _server_id(parts: list[str]) -> str | None:
    if "servers" in parts:
        i = parts.index("servers")
        if i + 1 < len(parts) and parts[i + 1] not in ("detail", ""):
            return parts[i + 1]
    return None


def build_app(nova: FakeNova) -> web.Application:
    """The upstream application over a FakeNova."""

    async def handler(request: web.Request) -> web.StreamResponse:
        body = await request.read()
        received = Received(request.method, request.raw_path, dict(request.headers), body)
        nova.received.append(received)
        if nova.gate is not None:
            await nova.gate(received)
        parts = [p for p in request.path.split("/") if p]
        sid = _server_id(parts)
        if sid is not None and sid not in nova.servers:
            return web.json_response(
                {"itemNotFound": {"code": 404, "message": f"Instance {sid} could not be found."}},
                status=404)
        if request.method == "GET":
            if parts in (["v2.1"], ["v2"]):
                return web.json_response({"version": version_doc(str(request.url.origin()),
                                                                 parts[0])})
            if not parts:
                origin = str(request.url.origin())
                return web.json_response({"versions": [version_doc(origin, "v2.1")]})
            if sid is not None and parts[-1] == sid:
                return web.json_response({"server": nova.servers[sid]})
            if parts[-1] in ("servers", "detail"):
                project = request.query.get("project_id")
                return web.json_response({"servers": [
                    s for s in nova.servers.values() if project is None or s["tenant_id"] == project]})
            if parts[-1] == "os-services":
                hosts = {s["OS-EXT-SRV-ATTR:host"] for s in nova.servers.values()} | nova.hosts
                host = request.query.get("host")
                return web.json_response({"services": [
                    {"binary": "nova-compute", "host": h, "state": "up", "status": "enabled"}
                    for h in sorted(hosts) if host in (None, h)]})
            return web.json_response({"ok": True})
        if request.method == "POST" and parts[-1] == "action" and sid is not None:
            key = next(iter(json.loads(body)))
            if key in TRANSITIONS:
                nova.servers[sid]["status"] = TRANSITIONS[key]
            return web.Response(status=nova.action_status)
        if request.method == "DELETE" and sid is not None and parts[-1] == sid:
            del nova.servers[sid]
            return web.Response(status=204)
        if request.method == "POST" and parts[-1] == "servers":
            new = nova.add_server()
            return web.json_response({"server": {"id": new}}, status=202)
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    return app
