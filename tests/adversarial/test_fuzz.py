"""Differential fuzzing: Statelock's reading of a request against Nova's own libraries.

Two properties over requests from ``mutations.raw_requests`` (valid Nova requests on
a locked server, then mutated):

* **In process** (most examples): Statelock's ``classify()`` and header limits decide
  refuse / serve / deny / forward as the Enforcer would under an instance ``state``
  lock; what would be forwarded is rebuilt the way the upstream backend sends it
  (``forwarded_header_list`` and its Content-Length, ``Action.forward_path`` byte for byte) and run through
  ``nova_wsgi``'s WSGI stack in process. Whenever Nova would execute a state change,
  Statelock must have classified that very change: same server, a state-changing
  kind, the same action name and microversion; so nothing state-changing on the
  locked server is ever forwarded.
* **End to end** (a few thousand): the same requests as raw bytes over sockets to a
  running Statelock in front of ``nova_wsgi`` served by wsgiref; Nova's execution
  log must never show a state change on a locked server.

Any finding becomes a corpus case (tests/adversarial/corpus/) and a classifier fix.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from multidict import CIMultiDict

from sidecar.backends.base import IncomingRequest
from sidecar.backends.upstream import forwarded_header_list
from sidecar.classify import Action, RouteTable, classify, load_route_table
from sidecar.config import LimitsConfig
from sidecar.errors import SidecarError
from sidecar.handlers.nova import header_limit
from tests.adversarial.harness import LiveStack, live_stack
from tests.adversarial.mutations import ACTION_KEYS, KEY_NOISE, PROJECT, RawRequest, raw_requests, request_batches
from tests.support.nova_wsgi import Execution, NovaWSGI, call, environ_for
from tests.support.paths import ACTIONS, POLICIES

FAST_REQUESTS = int(os.environ.get("STATELOCK_FUZZ_REQUESTS", "100000"))
E2E_EXAMPLES = int(os.environ.get("STATELOCK_FUZZ_E2E_EXAMPLES", "3000"))
LOCKED = str(uuid.UUID(int=0xA1))
FREE = str(uuid.UUID(int=0xF2))
LIMITS = LimitsConfig()
# What Statelock calls each state-changing controller call nova_wsgi records.
ROUTE_NAMES = {
    "servers.delete": "delete", "servers.update": "update", "servers.create": "create",
    "server_metadata.create": "metadata_update", "server_metadata.update_all": "metadata_update",
    "server_metadata.update": "metadata_update", "server_metadata.delete": "metadata_delete",
    "server_tags.update_all": "tags_update", "server_tags.update": "tags_update",
    "server_tags.delete_all": "tags_delete", "server_tags.delete": "tags_delete",
    "server_volume_attachments.create": "volume_attach", "server_volume_attachments.update": "volume_swap",
    "server_volume_attachments.delete": "volume_detach", "server_os_interface.create": "interface_attach",
    "server_os_interface.delete": "interface_detach", "server_migrations.delete": "migration_abort",
    "server_password.clear": "password_clear", "server_shares.create": "share_attach",
    "server_shares.delete": "share_detach",
}
# NOTE: each example is a batch of ~28 requests (request_batches); this many batches
# make at least FAST_REQUESTS requests.
FAST = settings(max_examples=FAST_REQUESTS // 20, deadline=None, database=None, derandomize=False,
                phases=[Phase.generate, Phase.shrink],
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def exempt_actions() -> frozenset[str]:
    data = json.loads((POLICIES / "data.json").read_text())
    return frozenset(data["statelock"]["lock_kinds"]["state"]["exempt_actions"])


EXEMPT = exempt_actions()


def wire_headers(req: RawRequest) -> CIMultiDict[str]:
    """The headers aiohttp hands the handler for ``req.to_bytes()``."""
    out: CIMultiDict[str] = CIMultiDict([("Host", "statelock")])
    for name, value in req.headers:
        out.add(name, value)
    out.add("Connection", "close")
    out.add("Content-Length", str(len(req.body)))
    return out


def statelock_verdict(req: RawRequest, table: RouteTable) -> tuple[str, Action | None]:
    """What Statelock does with ``req`` under a state lock on LOCKED (no admin bypass).

    ``refused`` (a 4xx of its own), ``served`` (Nova's lock/unlock, answered locally),
    ``denied`` (409), or ``forwarded`` (a read, or a change to another target).
    """
    headers = wire_headers(req)
    raw = tuple((k.encode(), v.encode()) for k, v in headers.items())
    if header_limit(LIMITS, req.method, req.target, raw) is not None or len(req.body) > LIMITS.max_body_bytes:
        return "refused", None
    try:
        action = classify(req.method, req.target, headers, req.body, table, LIMITS.max_json_depth)
    except SidecarError:
        return "refused", None
    if action.kind == "unknown":
        return "refused", action
    if action.kind in ("lock", "unlock"):
        return "served", action
    if action.is_state_change and action.instance_id == LOCKED and action.name not in EXEMPT:
        return "denied", action
    return "forwarded", action


def forward(nova: NovaWSGI, req: RawRequest, action: Action) -> list[Execution]:
    """Run what Statelock would forward through nova_wsgi in process; its executions."""
    fwd = IncomingRequest(req.method, action.forward_path, wire_headers(req), req.body, "127.0.0.1",
                          "http", "statelock")
    headers = [*forwarded_header_list(fwd), ("Content-Length", str(len(req.body)))]
    nova.clear()
    call(nova, environ_for(req.method, action.forward_path, headers, req.body))
    return list(nova.executions)


def expected_name(execution: Execution, table: RouteTable) -> str:
    if execution.name in ROUTE_NAMES:
        return ROUTE_NAMES[execution.name]
    if execution.name == "force_complete":
        return table.migration_actions["force_complete"].name
    return table.actions[execution.name].name if execution.name in table.actions else execution.name


def check_agreement(req: RawRequest, action: Action, executions: list[Execution], table: RouteTable) -> None:
    """Every state change Nova ran is the one Statelock classified (server, name, version)."""
    for e in executions:
        if not e.changes_state:
            continue
        where = f"{req.method} {req.target} {req.headers} {req.body[:200]!r}"
        assert e.server_id != LOCKED, f"HOLE: Nova ran {e} on the locked server for {where}"
        assert action.is_state_change, f"HOLE: Statelock read {action.name} as {action.kind}, Nova ran {e}: {where}"
        assert action.instance_id == e.server_id, f"target differs: {action.instance_id} vs {e}: {where}"
        assert action.name == expected_name(e, table), f"name differs: {action.name} vs {e}: {where}"
        assert action.microversion == e.microversion, f"microversion differs: {action} vs {e}: {where}"


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return load_route_table(ACTIONS)


@pytest.fixture(scope="module")
def nova() -> NovaWSGI:
    upstream = NovaWSGI()
    upstream.add_server(PROJECT, server_id=LOCKED)
    upstream.add_server(PROJECT, server_id=FREE)
    return upstream


def test_fast_differential(table: RouteTable, nova: NovaWSGI, fuzz_counts: dict[str, int]) -> None:
    """Classifier decision vs Nova's routing and parsing, in process."""
    verdicts: dict[str, int] = {}
    started = time.monotonic()

    @FAST
    @given(batch=request_batches(LOCKED, FREE))
    def run(batch: list[RawRequest]) -> None:
        for req in batch:
            verdict, action = statelock_verdict(req, table)
            verdicts[verdict] = verdicts.get(verdict, 0) + 1
            if verdict != "forwarded":
                continue
            assert action is not None
            check_agreement(req, action, forward(nova, req, action), table)

    run()
    total = sum(verdicts.values())
    fuzz_counts["in-process"] = fuzz_counts.get("in-process", 0) + total
    fuzz_counts["in-process seconds"] = int(time.monotonic() - started)
    for verdict, n in verdicts.items():
        fuzz_counts[f"in-process {verdict}"] = n
    assert total >= FAST_REQUESTS
    assert verdicts.get("denied", 0) > total * 0.05, verdicts
    assert verdicts.get("forwarded", 0) > total * 0.05, verdicts


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveStack]:
    with live_stack(tmp_path_factory.mktemp("fuzz")) as running:
        yield running


def test_end_to_end_over_sockets(stack: LiveStack, fuzz_counts: dict[str, int]) -> None:
    """The same mutations as raw bytes through the running Statelock in front of wsgiref."""
    sent = 0
    started = time.monotonic()
    # NOTE: lock and unlock would change the locks under test; the owner may lift its own.
    keys = tuple(k for k in ACTION_KEYS if k not in ("lock", "unlock"))
    noise = tuple(k for k in KEY_NOISE if k not in ("lock", "unlock"))

    @settings(max_examples=E2E_EXAMPLES, deadline=None, database=None,
              phases=[Phase.generate, Phase.shrink],
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
    @given(req=raw_requests(stack.locked, stack.free, keys, noise))
    def run(req: RawRequest) -> None:
        nonlocal sent
        stack.nova.clear()
        got = stack.send(req.to_bytes(), timeout=10, head=req.method == "HEAD")
        sent += 1
        assert got.responses, f"no answer to {req}"
        assert got.responses[0].status < 500 or got.responses[0].from_upstream, (req, got.responses[0])
        assert stack.forbidden_executions() == [], f"HOLE: {req} reached Nova: {stack.forbidden_executions()}"

    run()
    fuzz_counts["end-to-end"] = fuzz_counts.get("end-to-end", 0) + sent
    fuzz_counts["end-to-end seconds"] = int(time.monotonic() - started)
    assert stack.health().status == 200
    assert stack.lock_count() == 2
    assert sent >= E2E_EXAMPLES * 0.8

