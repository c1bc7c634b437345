"""Hot reload of the embedded engine under load: new revisions in under a second, no failures.

The real app serves a copy of ``policies/`` while 20 clients send state changes
without pause. The test edits the bundle as a policy author would (a new
``.manifest`` revision and a changed lock-kind list in ``data.json``), then
breaks it (a ``.rego`` that does not parse), then fixes it. Throughout, no
request may fail (5xx); the new revision must show in decision records within a
second of the edit; the broken bundle must be rejected, reported in
``/statelock/v1/health`` and the log, while the previous revision keeps serving.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import shutil
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from sidecar.app import create_app
from sidecar.config import config_from_mapping
from tests.functional.conftest import BILLING, OWNER, Stack, stack_factory  # noqa: F401  (a fixture)
from tests.support.paths import POLICIES

pytestmark = pytest.mark.integration

CLIENTS = 20
MAX_RELOAD_S = 1.0


def write_atomically(path: Path, text: str) -> None:
    """Replace a file the way editors and deploy tools do: write aside, then rename."""
    aside = path.with_name(f".{path.name}.tmp")
    aside.write_text(text)
    os.replace(aside, path)


def decisions_so_far(path: Path) -> list[dict[str, Any]]:
    """The decision records written so far; a last line still being written is skipped."""
    out = []
    for line in path.read_text().splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if record.get("type") != "completion":
            out.append(record)
    return out


def epoch(rfc3339: str) -> float:
    return datetime.fromisoformat(rfc3339.replace("Z", "+00:00")).timestamp()


@dataclass
class Load:
    """Clients sending state changes until stopped, counting every answer."""

    stack: Stack
    servers: list[str]
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    running: bool = True

    async def client(self, sid: str) -> None:
        actions = ["suspend", "resume"]
        n = 0
        while self.running:
            resp = await self.stack.action(sid, {actions[n % 2]: None})
            body = await resp.read()
            self.statuses[resp.status] += 1
            if resp.status != 202:
                self.failures.append(f"{resp.status} {body[:300]!r}")
            n += 1

    async def run(self) -> None:
        await asyncio.gather(*(self.client(sid) for sid in self.servers))


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """A copy of ``policies/`` for the test to edit."""
    bundle = tmp_path / "bundle"
    shutil.copytree(POLICIES, bundle)
    return bundle


@pytest.fixture
async def stack(stack_factory: Callable[..., Awaitable[Stack]], bundle: Path) -> Stack:  # noqa: F811
    """The real app serving ``bundle`` with the embedded engine, in front of a fresh fake Nova.

    ``stack_factory`` is the functional suite's fixture (imported above).
    """
    return await stack_factory(policy={"bundle": str(bundle)})


async def wait_until(check: Callable[[], Awaitable[bool]], timeout_s: float) -> float:
    """Seconds until ``check`` holds; fails the test after ``timeout_s``."""
    started = time.monotonic()
    while not await check():
        assert time.monotonic() - started < timeout_s, f"not within {timeout_s}s"
        await asyncio.sleep(0.01)
    return time.monotonic() - started


async def test_policy_edits_reload_under_load_without_failures(
    stack: Stack, bundle: Path, caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="sidecar.policy.embedded")
    manifest = json.loads((bundle / ".manifest").read_text())
    old_revision, new_revision = manifest["revision"], "hot-reload-test-2"
    nova = stack.nova

    async def health() -> dict[str, Any]:
        resp = await stack.client.get("/statelock/v1/health")
        doc: dict[str, Any] = (await resp.json())["policy"]
        return doc

    # A billing boot lock on one instance: under the edited data, it also blocks suspend.
    probe = nova.add_server()
    placed = await stack.client.post("/statelock/v1/locks", headers={"X-Auth-Token": BILLING}, json={
        "lock": {"kind": "boot", "scope": "instance", "target": probe, "reason": "invoice 881"}})
    assert placed.status == 201, await placed.text()
    assert (await stack.action(probe, {"suspend": None})).status == 202
    assert (await health())["revision"] == old_revision

    load = Load(stack, [nova.add_server() for _ in range(CLIENTS)])
    driver = asyncio.create_task(load.run())
    try:
        await asyncio.sleep(1.0)

        # 1. A valid edit: a new revision, and "suspend" added to what a boot lock blocks.
        data = json.loads((bundle / "data.json").read_text())
        data["statelock"]["lock_kinds"]["boot"]["actions"].append("suspend")
        write_atomically(bundle / "data.json", json.dumps(data, indent=2))
        write_atomically(bundle / ".manifest", json.dumps({**manifest, "revision": new_revision}))
        edited = time.time()

        def first_record_with(revision: str) -> dict[str, Any] | None:
            found = [r for r in decisions_so_far(stack.audit_path)
                     if r["bundles"]["statelock"]["revision"] == revision]
            return min(found, key=lambda r: epoch(r["timestamp"])) if found else None

        async def new_revision_recorded() -> bool:
            return first_record_with(new_revision) is not None

        await wait_until(new_revision_recorded, 3.0)
        first = first_record_with(new_revision)
        assert first is not None
        latency = epoch(first["timestamp"]) - edited
        print(f"\nhot reload: first decision with revision {new_revision} recorded {latency * 1000:.0f} ms "
              f"after the edit (poll interval 250 ms)")
        assert latency < MAX_RELOAD_S
        assert (await health())["revision"] == new_revision
        await asyncio.sleep(0.5)

        # 2. A broken bundle: rejected, reported, and the new revision keeps serving.
        served_before_break = sum(load.statuses.values())
        write_atomically(bundle / "statelock" / "broken.rego", "package statelock.authz\n\nthis is not rego {\n")
        broke = time.monotonic()

        async def health_reports_error() -> bool:
            return (await health())["ok"] is False

        await wait_until(health_reports_error, MAX_RELOAD_S)
        print(f"hot reload: broken bundle reported in health after {(time.monotonic() - broke) * 1000:.0f} ms")
        state = await health()
        assert "broken.rego" in state["last_error"]
        assert state["revision"] == new_revision
        # NOTE: the last good revision keeps deciding: a warning, not a degraded service.
        whole = await stack.client.get("/statelock/v1/health")
        assert whole.status == 200
        assert any("broken.rego" in w for w in (await whole.json())["warnings"])
        assert any("policy reload rejected" in r.getMessage() and "broken.rego" in r.getMessage()
                   for r in caplog.records if r.levelno >= logging.ERROR)
        await asyncio.sleep(0.5)
        assert sum(load.statuses.values()) > served_before_break + CLIENTS

        # 3. Fixed: the error clears; decisions never stopped.
        (bundle / "statelock" / "broken.rego").unlink()

        async def health_ok() -> bool:
            return (await health())["ok"] is True

        await wait_until(health_ok, MAX_RELOAD_S)
        await asyncio.sleep(0.5)
    finally:
        load.running = False
        await driver

    assert load.failures == [], Counter(load.failures).most_common(5)
    total = sum(load.statuses.values())
    print(f"hot reload: {total} state changes from {CLIENTS} clients, statuses {dict(load.statuses)}")
    assert total > 20 * CLIENTS

    records = stack.decisions()
    revisions = Counter(r["bundles"]["statelock"]["revision"] for r in records)
    assert set(revisions) == {old_revision, new_revision}, revisions
    # Every record after the first new-revision one (plus the requests already deciding then) is new.
    first_new = epoch(first["timestamp"])
    late_old = [r for r in records if r["bundles"]["statelock"]["revision"] == old_revision
                and epoch(r["timestamp"]) > first_new + 0.1]
    assert late_old == []
    # The data edit took effect: a boot lock now blocks suspend, under the new revision.
    blocked = await stack.action(probe, {"suspend": None})
    assert blocked.status == 409
    assert "boot lock" in (await blocked.json())["conflictingRequest"]["message"]
    assert first_record_with(new_revision) is not None


async def test_reload_of_rego_change_and_of_a_deleted_bundle(stack: Stack, bundle: Path) -> None:
    sid = stack.nova.add_server()
    assert (await stack.action(sid, {"suspend": None})).status == 202

    # A Rego edit that denies every suspend; no revision bump, so the digest tells them apart.
    rego = bundle / "statelock" / "authz.rego"
    original = rego.read_text()
    write_atomically(rego, original.replace(
        'decision := allowed([], []) if {\n\tinput.action.kind == "read"\n}',
        'decision := denied(403, ["no suspend today"], []) if {\n\tinput.action.name == "suspend"\n}'
        ' else := allowed([], []) if {\n\tinput.action.kind == "read"\n}'))

    async def suspend_refused() -> bool:
        resp = await stack.action(sid, {"suspend": None})
        return resp.status == 403 and "no suspend today" in await resp.text()

    await wait_until(suspend_refused, MAX_RELOAD_S)

    # The bundle directory disappears: an error, but the last good policy keeps deciding.
    shutil.rmtree(bundle)

    async def health_reports_error() -> bool:
        resp = await stack.client.get("/statelock/v1/health")
        return bool((await resp.json())["policy"]["ok"] is False)

    await wait_until(health_reports_error, MAX_RELOAD_S)
    assert (await stack.action(sid, {"suspend": None})).status == 403
    assert (await stack.action(sid, {"resume": None})).status == 202
    read = await stack.client.get(f"/v2.1/servers/{sid}", headers={"X-Auth-Token": OWNER})
    assert read.status == 200


async def test_test_files_and_hidden_directories_do_not_trigger_reloads(stack: Stack, bundle: Path) -> None:
    async def policy_health() -> dict[str, Any]:
        doc: dict[str, Any] = (await (await stack.client.get("/statelock/v1/health")).json())["policy"]
        return doc

    before = await policy_health()
    test_file = bundle / "statelock" / "authz_test.rego"
    test_file.write_text(test_file.read_text() + "\n# edited\n")
    (bundle / ".git").mkdir()
    (bundle / ".git" / "broken.rego").write_text("not rego at all")
    (bundle / "statelock" / ".swp.rego").write_text("not rego either")
    await asyncio.sleep(0.8)
    after = await policy_health()
    assert after["ok"] is True and after["last_error"] is None
    assert (after["reloads"], after["reload_failures"]) == (before["reloads"], before["reload_failures"])
    assert after["last_reload"] == before["last_reload"]


async def test_rejected_reload_keeps_the_replica_ready(
    aiohttp_client: Any, tmp_path: Path
) -> None:
    """A bad bundle shows in /health as a warning, /health and /readyz stay 200: the old revision serves."""
    bundle = tmp_path / "bundle"
    shutil.copytree(POLICIES, bundle, ignore=shutil.ignore_patterns("*_test.rego"))
    cfg = config_from_mapping({
        "backend": {"kind": "upstream", "upstream_url": "http://127.0.0.1:9"},
        "lockstore": {"url": f"sqlite:///{tmp_path}/locks.db"},
        "policy": {"bundle": str(bundle)},
        "audit": {"path": str(tmp_path / "d.jsonl")},
    }, env={})
    client = await aiohttp_client(create_app(cfg))
    assert (await client.get("/statelock/v1/readyz")).status == 200
    (bundle / "statelock" / "broken.rego").write_text("package statelock.authz\n\nthis is not rego\n")
    for _ in range(50):
        health = await client.get("/statelock/v1/health")
        if (await health.json())["policy"]["last_error"]:
            break
        await asyncio.sleep(0.1)
    doc = await health.json()
    assert doc["policy"]["last_error"] and doc["policy"]["ok"] is False
    # NOTE: the old revision serves: /health says so with a warning, and stays 200 (issue 14).
    assert health.status == 200 and doc["status"] == "ok"
    assert any("policy reload rejected" in w and "broken.rego" in w for w in doc["warnings"])
    ready = await client.get("/statelock/v1/readyz")
    assert ready.status == 200
    assert (await ready.json())["policy"]["revision"]


# NOTE: not a latency check (test_policy_edits_reload_under_load_without_failures is one):
# a generous bound, since opa build competes with everything else on a busy machine.
REJECT_WAIT_S = 15.0


def reload_metric(text: str, result: str) -> float:
    """The value of statelock_policy_reloads_total{result=...} in a /metrics page (0 when absent)."""
    for line in text.splitlines():
        if line.startswith(f'statelock_policy_reloads_total{{result="{result}"}}'):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


BAD_EDITS = [
    # The package renamed: the configured entry point statelock/authz/decision is gone.
    pytest.param(lambda text: text.replace("package statelock.authz", "package statelock.authz2", 1),
                 'entrypoint "statelock/authz/decision" does not refer to a rule or policy decision',
                 id="entry-point-gone"),
    # A syntax error: OPA's own file:row: message.
    pytest.param(lambda text: text.replace("guarded_kinds := {", "guarded_kinds := {{", 1),
                 "statelock/authz.rego:", id="syntax-error"),
]


@pytest.mark.parametrize(("edit", "opa_says"), BAD_EDITS)
async def test_a_rejected_reload_shows_opas_message_keeps_the_old_revision_and_counts(
    stack: Stack, bundle: Path, edit: Callable[[str], str], opa_says: str,
) -> None:
    sid = stack.nova.add_server()
    before = await (await stack.client.get("/metrics")).text()
    revision = (await (await stack.client.get("/statelock/v1/health")).json())["policy"]["revision"]
    rego = bundle / "statelock" / "authz.rego"
    write_atomically(rego, edit(rego.read_text()))

    async def rejected() -> bool:
        doc = (await (await stack.client.get("/statelock/v1/health")).json())["policy"]
        return bool(doc["last_error"])

    await wait_until(rejected, REJECT_WAIT_S)
    policy = (await (await stack.client.get("/statelock/v1/health")).json())["policy"]
    assert opa_says in policy["last_error"], policy["last_error"]
    if opa_says.endswith(":"):
        assert re.search(r"statelock/authz\.rego:\d+: rego_parse_error: ", policy["last_error"])
    assert policy["revision"] == revision
    # The old revision still decides (an allowed suspend, a 202 from Nova).
    assert (await stack.action(sid, {"suspend": None})).status == 202
    after = await (await stack.client.get("/metrics")).text()
    assert reload_metric(after, "failure") == reload_metric(before, "failure") + 1
    assert reload_metric(after, "success") == reload_metric(before, "success")

    # Fixed again: a successful reload, counted as one.
    write_atomically(rego, (POLICIES / "statelock" / "authz.rego").read_text() + "\n# fixed\n")

    async def recovered() -> bool:
        doc = (await (await stack.client.get("/statelock/v1/health")).json())["policy"]
        return doc["last_error"] is None

    await wait_until(recovered, REJECT_WAIT_S)
    final = await (await stack.client.get("/metrics")).text()
    assert reload_metric(final, "success") == reload_metric(before, "success") + 1
