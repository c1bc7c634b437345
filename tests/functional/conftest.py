"""Fixtures: the real Statelock app in front of a real in-process Nova-shaped upstream."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.config import config_from_mapping
from tests.support.fake_nova import FakeNova, build_app
from tests.support.paths import POLICIES

OWNER = "alice:demo"
ADMIN = "admin:admin"
BILLING = "billing-svc:service:billing"

AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]


@dataclass
class Stack:
    """A running Statelock with its upstream and files."""

    client: TestClient[Any, Any]
    nova: FakeNova
    audit_path: Path

    async def action(self, server_id: str, body: Any, token: str = OWNER,
                     version: str = "2.73", raw: bytes | None = None) -> Any:
        data = raw if raw is not None else json.dumps(body).encode()
        return await self.client.post(
            f"/v2.1/servers/{server_id}/action", data=data,
            headers={"X-Auth-Token": token, "Content-Type": "application/json",
                     "OpenStack-API-Version": f"compute {version}"})

    def records(self) -> list[dict[str, Any]]:
        lines = self.audit_path.read_text().splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def decisions(self) -> list[dict[str, Any]]:
        return [r for r in self.records() if r.get("type") != "completion"]


def make_config(tmp_path: Path, upstream_url: str, **overrides: Any) -> Any:
    raw: dict[str, Any] = {
        "listen": "127.0.0.1:0",
        "backend": {"kind": "upstream", "upstream_url": upstream_url,
                    "service_auth": {"token": "statelock:service:admin"}},
        "identity": {"mode": "noauth"},
        "lockstore": {"url": f"sqlite:///{tmp_path}/locks.db"},
        "policy": {"engine": "embedded", "bundle": str(POLICIES)},
        "audit": {"path": str(tmp_path / "decisions.jsonl"), "flush_window_ms": 1.0},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(raw.get(key), dict):
            raw[key] = {**raw[key], **value}
        else:
            raw[key] = value
    return config_from_mapping(raw, env={})


_READS = ("GET", "HEAD", "OPTIONS")


def on_record(audit_path: Path, decision_id: str) -> bool:
    """True when the decision log holds a decision (not only a completion) with this id."""
    if not audit_path.exists():
        return False
    return any(r.get("decision_id") == decision_id and r.get("type") != "completion"
               for r in (json.loads(line) for line in audit_path.read_text().splitlines() if line.strip()))


def check_every_decision_id(client: TestClient[Any, Any], audit_path: Path) -> None:
    """Make every response of ``client`` prove that its decision id names a durable record.

    And that a refused state change carries one, unless it was refused before any record
    could exist (a request limit, a decision log that can't be written).
    """
    original = client._request

    async def checked(method: str, path: Any, **kwargs: Any) -> Any:
        resp = await original(method, path, **kwargs)
        decision_id = resp.headers.get("X-Statelock-Decision-Id")
        if decision_id is not None:
            assert on_record(audit_path, decision_id), f"{method} {path}: decision {decision_id} is on no record"
        elif resp.status >= 400 and method.upper() not in _READS and not str(path).endswith("/metrics"):
            body = await resp.read()
            limit = resp.headers.get("Retry-After") or resp.status in (408, 413, 414, 431)
            audit_down = b"decision log" in body
            assert limit or audit_down, f"{method} {path} refused with {resp.status} and no decision id"
        return resp

    client._request = checked  # type: ignore[method-assign]


@pytest.fixture
async def stack_factory(
    aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient, tmp_path: Path
) -> Callable[..., Awaitable[Stack]]:
    async def make(**overrides: Any) -> Stack:
        nova = FakeNova()
        upstream = await aiohttp_server(build_app(nova))
        cfg = make_config(tmp_path, str(upstream.make_url("")).rstrip("/"), **overrides)
        client = await aiohttp_client(create_app(cfg))
        check_every_decision_id(client, Path(cfg.audit.path))
        return Stack(client, nova, Path(cfg.audit.path))

    return make


@pytest.fixture
async def stack(stack_factory: Callable[..., Awaitable[Stack]]) -> Stack:
    return await stack_factory()
