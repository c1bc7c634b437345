"""The console in process (aiohttp's client, no browser): CSRF on every POST, access from the bundle,
trusted-headers sessions, expiry, failing closed when the log can't record a login, the files source.

The browser tests (``tests/browser``) drive the pages themselves; these check what a
browser would not let a test do (forged POSTs, other identity modes, a broken log).
"""

from __future__ import annotations

import asyncio
import json
import re
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from tests.functional.conftest import Stack
from tests.support.paths import POLICIES

StackFactory = Callable[..., Awaitable[Stack]]
AUDITOR = "audit-svc:service:auditor"


def _csrf(page: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', page)
    assert found is not None, page
    return found.group(1)


async def login(client: TestClient[Any, Any], token: str = AUDITOR, **fields: str) -> Any:
    form = await (await client.get("/statelock/ui/login")).text()
    return await client.post("/statelock/ui/login", data={"csrf": _csrf(form), "token": token, **fields},
                             allow_redirects=False)


def _console_records(stack: Stack, name: str) -> list[dict[str, Any]]:
    return [r for r in stack.decisions() if r.get("input", {}).get("action", {}).get("name") == f"console_{name}"]


async def test_every_post_needs_its_csrf_token(stack_factory: StackFactory, tmp_path: Path) -> None:
    candidates = tmp_path / "candidates"
    shutil.copytree(POLICIES, candidates / "same")
    stack = await stack_factory(console={"backtest_dir": str(candidates)})
    client = stack.client
    await (await client.get("/statelock/ui/login")).text()
    for forged in ({}, {"csrf": "not-the-token"}):
        resp = await client.post("/statelock/ui/login", data={"token": "admin:admin", **forged},
                                 allow_redirects=False)
        assert resp.status == 403 and "CSRF" in await resp.text()
        assert "statelock_session" not in resp.cookies
    assert _console_records(stack, "login") == []
    assert (await login(client, "admin:admin")).status == 303
    decision_id = _console_records(stack, "login")[0]["decision_id"]
    for path, data in ((f"/statelock/ui/decisions/{decision_id}/replay", {}),
                       ("/statelock/ui/backtest", {"candidate": "same"}), ("/statelock/ui/logout", {})):
        for forged in ({}, {"csrf": "x" * 43}):
            resp = await client.post(path, data={**data, **forged}, allow_redirects=False)
            assert resp.status == 403, path
            assert "CSRF" in await resp.text()
    assert not _console_records(stack, "replay") and not _console_records(stack, "backtest")
    assert not _console_records(stack, "logout")
    assert (await client.get("/statelock/ui/decisions")).status == 200  # NOTE: the forged logout ended nothing
    page = await (await client.get("/statelock/ui/decisions")).text()
    resp = await client.post("/statelock/ui/logout", data={"csrf": _csrf(page)}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/statelock/ui/login"
    assert len(_console_records(stack, "logout")) == 1
    assert (await client.get("/statelock/ui/decisions", allow_redirects=False)).status == 303


async def test_a_failed_login_is_refused_on_record_without_its_token(stack: Stack) -> None:
    resp = await login(stack.client, "not a token")
    assert resp.status == 401
    page = await resp.text()
    assert "not accepted" in page and "not a token" not in page
    [refusal] = [r for r in stack.decisions() if r["statelock"]["http"]["path"] == "/statelock/ui/login"]
    assert refusal["statelock"]["outcome"] == "error" and refusal["error"]["code"] == "unauthorized"
    assert "not a token" not in stack.audit_path.read_text()


async def test_the_bundle_names_more_roles_that_read_decisions(stack_factory: StackFactory, tmp_path: Path) -> None:
    bundle = tmp_path / "bundle"
    shutil.copytree(POLICIES, bundle)
    data = json.loads((bundle / "data.json").read_text())
    data["statelock"]["audit_roles"] = ["security"]
    (bundle / "data.json").write_text(json.dumps(data))
    stack = await stack_factory(policy={"engine": "embedded", "bundle": str(bundle)})
    assert (await login(stack.client, "sec:service:security")).status == 303
    assert (await stack.client.get("/statelock/ui/decisions")).status == 200
    api = await stack.client.get("/statelock/v1/decisions", headers={"X-Auth-Token": "sec:service:security"})
    assert api.status == 200
    stack.client.session.cookie_jar.clear()
    refused = await login(stack.client, "bill:service:billing")
    page = re.sub(r"<[^>]+>", "", await refused.text())
    assert refused.status == 403 and "admin, auditor, security" in page
    api = await stack.client.get("/statelock/v1/decisions", headers={"X-Auth-Token": "bill:service:billing"})
    assert api.status == 403 and "admin, auditor, security" in (await api.json())["forbidden"]["message"]


async def test_trusted_headers_sessions_follow_the_proxy_identity(stack_factory: StackFactory) -> None:
    stack = await stack_factory(identity={"mode": "trusted-headers"})
    who = {"X-User-Id": "aud", "X-Project-Id": "service", "X-Roles": "auditor"}
    form = await (await stack.client.get("/statelock/ui/login", headers=who)).text()
    resp = await stack.client.post("/statelock/ui/login", data={"csrf": _csrf(form)}, headers=who,
                                   allow_redirects=False)
    assert resp.status == 303
    assert (await stack.client.get("/statelock/ui/decisions", headers=who)).status == 200
    other = {**who, "X-User-Id": "mallory"}
    resp = await stack.client.get("/statelock/ui/decisions", headers=other, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"] == "/statelock/ui/login"
    resp = await stack.client.get("/statelock/ui/decisions", headers=who, allow_redirects=False)
    assert resp.status == 303  # NOTE: the session ended when another user came with its cookie


async def test_a_session_expires(stack_factory: StackFactory) -> None:
    stack = await stack_factory(console={"session_ttl_s": 0.3})
    resp = await login(stack.client)
    assert resp.status == 303 and resp.cookies["statelock_session"]["max-age"] == "1"
    assert (await stack.client.get("/statelock/ui/decisions", allow_redirects=False)).status == 200
    await asyncio.sleep(0.4)
    assert (await stack.client.get("/statelock/ui/decisions", allow_redirects=False)).status == 303


async def test_a_login_that_cannot_be_recorded_is_refused(stack_factory: StackFactory) -> None:
    stack = await stack_factory(audit={"path": "/dev/full"})
    resp = await login(stack.client)
    assert resp.status == 503 and "statelock_session" not in resp.cookies
    assert "decision log" in await resp.text()


async def test_with_the_index_off_the_api_and_the_pages_read_the_files(stack_factory: StackFactory) -> None:
    stack = await stack_factory(audit={"index": "off"})
    sid = stack.nova.add_server()
    stop = await stack.action(sid, {"os-stop": None})
    assert stop.status == 202
    await login(stack.client)
    page = await (await stack.client.get(f"/statelock/ui/decisions?instance={sid}")).text()
    assert stop.headers["X-Statelock-Decision-Id"] in page and "read from the files log" in page
    api = await stack.client.get(f"/statelock/v1/decisions?instance={sid}", headers={"X-Auth-Token": AUDITOR})
    assert [d["decision_id"] for d in (await api.json())["decisions"]] == [stop.headers["X-Statelock-Decision-Id"]]
    assert not (stack.audit_path.parent / "decisions.jsonl-index.db").exists()
