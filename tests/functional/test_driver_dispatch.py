"""Driver mode executes exactly the action that was classified and decided, on the same instance.

The driver dispatcher never reads the request's path or body again: it acts on the
``Action``. The unit test hands it an action and a request that disagree; the table
sends one action in every URL form the classifier accepts (and two it refuses) and
checks that the instance the decision record names, and only it, changed as that
action changes it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from drivers import PowerState
from drivers.fake import FakeDriver
from sidecar.app import create_app
from sidecar.appkeys import BACKEND
from sidecar.backends.base import IncomingRequest
from sidecar.backends.driver import DriverBackend, DriverDispatcher, DriverHandle
from sidecar.classify import Action
from sidecar.config import BackendConfig, config_from_mapping
from sidecar.errors import NotFound
from sidecar.identity import Subject
from tests.support.paths import POLICIES

AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]
A = "0f8c2d5e-1111-4a5b-9c6d-7e8f90a1b2c3"
B = "0f8c2d5e-2222-4a5b-9c6d-7e8f90a1b2c3"
OWNER = "alice:demo"
INSTANCES = [{"id": A, "name": "a", "project_id": "demo", "user_id": "alice"},
             {"id": B, "name": "b", "project_id": "demo", "user_id": "alice"}]


def _driver_config(tmp_path: Path) -> Any:
    return config_from_mapping({
        "backend": {"kind": "driver", "driver": {"name": "fake", "instances": INSTANCES}},
        "lockstore": {"url": f"sqlite:///{tmp_path}/locks.db"},
        "policy": {"bundle": str(POLICIES)},
        "audit": {"path": str(tmp_path / "decisions.jsonl")},
    }, env={})


async def test_the_dispatcher_executes_the_action_not_the_request() -> None:
    backend = DriverBackend(BackendConfig(kind="driver", driver={"name": "fake", "instances": INSTANCES}))
    await backend.start()
    try:
        action = Action(name="pause", kind="state_change", method="POST",
                        path=f"/v2.1/servers/{A}/action", forward_path=f"/v2.1/servers/{A}/action",
                        instance_id=A, body={"pause": None})
        lying = IncomingRequest("POST", f"/v2.1/servers/{B}/action", {}, b'{"os-stop": null}',
                               "127.0.0.1", "http", "localhost")
        resp = await backend.dispatcher.dispatch(lying, action, Subject("alice", "demo", ("member",)))
        assert resp.status == 202
        states = {i.id: i.power_state for i in await backend.driver.list_instances()}
        assert states == {A: PowerState.PAUSED, B: PowerState.RUNNING}
    finally:
        await backend.close()


async def test_the_dispatcher_refuses_an_unidentified_caller() -> None:
    handle = DriverHandle("fake", {"instances": INSTANCES})
    await handle.start()
    try:
        action = Action(name="os-stop", kind="state_change", method="POST", path="/", forward_path="/",
                        instance_id=A)
        request = IncomingRequest("POST", "/", {}, b"", "", "http", "localhost")
        with pytest.raises(NotFound, match="could not be found"):
            await DriverDispatcher(handle).dispatch(request, action, None)
        assert (await handle.driver.get_instance(A)).power_state is PowerState.RUNNING
    finally:
        await handle.close()


@pytest.fixture
async def client(aiohttp_client: AiohttpClient, tmp_path: Path) -> AsyncIterator[TestClient[Any, Any]]:
    yield await aiohttp_client(create_app(_driver_config(tmp_path)))


def _percent(uuid: str) -> str:
    return "".join(f"%{ord(c):02X}" if c in "0f" else c for c in uuid)


FORMS = [
    ("plain", f"/v2.1/servers/{A}/action"),
    ("upper-case id", f"/v2.1/servers/{A.upper()}/action"),
    ("percent-encoded id", f"/v2.1/servers/{_percent(A)}/action"),
    ("doubled slash", f"/v2.1//servers/{A}/action"),
    ("mount prefix", f"/compute/v2.1/servers/{A}/action"),
    ("project in path", f"/v2.1/0123abcd/servers/{A}/action"),
    ("legacy v2", f"/v2/servers/{A}/action"),
    ("os-volumes_boot alias", f"/v2.1/os-volumes_boot/{A}/action"),
]


@pytest.mark.parametrize(("form", "path"), FORMS, ids=[f for f, _ in FORMS])
async def test_every_url_form_executes_the_decided_action_on_the_decided_instance(
    client: TestClient[Any, Any], tmp_path: Path, form: str, path: str
) -> None:
    resp = await client.post(path, data=b'{"pause": null}',
                             headers={"X-Auth-Token": OWNER, "Content-Type": "application/json"})
    assert resp.status == 202, (form, await resp.text())
    [record] = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()
                if json.loads(line).get("type") != "completion"]
    assert record["input"]["action"]["name"] == "pause"
    assert record["input"]["target"]["instance_id"] == A
    assert record["decision_id"] == resp.headers["X-Statelock-Decision-Id"]
    backend = client.app[BACKEND]
    assert isinstance(backend, DriverBackend) and isinstance(backend.driver, FakeDriver)
    states = {i.id: i.power_state for i in await backend.driver.list_instances()}
    assert states == {A: PowerState.PAUSED, B: PowerState.RUNNING}


@pytest.mark.parametrize("body", [b'{"pause": null, "pause": null}', b'{"pause": null, "os-stop": null}',
                                  b'{"pause": null}{"os-stop": null}', b'["pause"]'])
async def test_a_body_the_classifier_refuses_executes_nothing(
    client: TestClient[Any, Any], body: bytes
) -> None:
    resp = await client.post(f"/v2.1/servers/{A}/action", data=body,
                             headers={"X-Auth-Token": OWNER, "Content-Type": "application/json"})
    assert resp.status == 400
    backend = client.app[BACKEND]
    assert isinstance(backend, DriverBackend)
    assert {i.power_state for i in await backend.driver.list_instances()} == {PowerState.RUNNING}


async def test_dry_run_records_that_the_hypervisor_refused(
    aiohttp_client: AiohttpClient, tmp_path: Path
) -> None:
    """Dry-run forwards a denial, and the hypervisor's own boot block refuses it: on record."""
    cfg = _driver_config(tmp_path)
    client = await aiohttp_client(create_app(replace(cfg, mode="dry-run")))
    locked = await client.post(f"/statelock/v1/instances/{A}/suspend-lock", json={"reason": "invoice 9"},
                               headers={"X-Auth-Token": "billing-svc:service:billing"})
    assert locked.status == 200, await locked.text()
    resp = await client.post(f"/v2.1/servers/{A}/action", json={"resume": None},
                             headers={"X-Auth-Token": OWNER})
    assert resp.status == 409
    decision_id = resp.headers["X-Statelock-Decision-Id"]
    records: list[dict[str, Any]] = []
    for _ in range(100):  # NOTE: a completion is written after the answer (only the decision is awaited)
        records = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()]
        if any(r.get("type") == "completion" and r["decision_id"] == decision_id for r in records):
            break
        await asyncio.sleep(0.02)
    [decision] = [r for r in records if r["decision_id"] == decision_id and r.get("type") != "completion"]
    [completion] = [r for r in records if r["decision_id"] == decision_id and r.get("type") == "completion"]
    assert decision["statelock"]["outcome"] == "deny" and decision["statelock"]["enforced"] is False
    assert decision["statelock"]["would_have"]["status"] == 409
    assert completion["statelock"]["upstream"]["status"] == 409
    assert completion["statelock"]["error_code"] == "operation_blocked"
    assert completion["statelock"]["refused_by"] == "hypervisor"


async def test_driver_mode_records_carry_the_instance_s_real_project(client: TestClient[Any, Any],
                                                                     tmp_path: Path) -> None:
    resp = await client.post(f"/v2.1/servers/{A}/action", json={"os-stop": None},
                             headers={"X-Auth-Token": "mallory:other"})
    assert resp.status == 404
    decision_id = resp.headers["X-Statelock-Decision-Id"]
    [record] = [json.loads(line) for line in (tmp_path / "decisions.jsonl").read_text().splitlines()
                if json.loads(line)["decision_id"] == decision_id and json.loads(line).get("type") != "completion"]
    assert record["input"]["target"]["project_id"] == "demo"
    assert record["input"]["subject"]["project_id"] == "other"
    backend = client.app[BACKEND]
    assert isinstance(backend, DriverBackend)
    assert (await backend.driver.get_instance(A)).power_state is PowerState.RUNNING


@pytest.mark.parametrize(("scope", "target", "status"), [
    ("project", "demo", 201), ("project", "nope", 404), ("host", "fake-host", 201), ("host", "nope", 404)])
async def test_driver_mode_checks_project_and_host_targets_against_the_hypervisor(
    client: TestClient[Any, Any], scope: str, target: str, status: int
) -> None:
    resp = await client.post("/statelock/v1/locks", headers={"X-Auth-Token": "legal-svc:service:legal"},
                             json={"lock": {"kind": "delete", "scope": scope, "target": target, "reason": "r"}})
    assert resp.status == status, await resp.text()
