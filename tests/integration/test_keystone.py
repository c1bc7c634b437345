"""identity.mode keystone against a real Keystone (PyPI ``keystone``, SQLite, Fernet, gunicorn).

One Keystone site serves two processes for the session: ``main`` (tokens live an
hour) and ``short`` (tokens live a few seconds; same database and keys, so
``main`` validates its tokens too). Statelock runs in front of the in-process
Nova-shaped upstream with identity.mode keystone, and every caller here holds a
real Keystone token for a user made through Keystone's REST API. Keystone's
validations are counted inside its WSGI process, per token.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from sidecar.app import create_app
from sidecar.appkeys import CONFIG, IDENTIFIER
from sidecar.config import config_from_mapping, load_config
from sidecar.errors import ConfigError, IdentityUnavailable
from sidecar.keystone import KeystoneIdentifier
from tests.functional.conftest import Stack, make_config
from tests.support.fake_nova import FakeNova, build_app
from tests.support.keystone import ADMIN_PASSWORD, KeystoneAdmin, KeystoneServer, KeystoneSite, wait
from tests.support.paths import ROOT
from tests.support.process import free_port

pytestmark = pytest.mark.integration

AiohttpServer = Callable[[web.Application], Awaitable[TestServer]]
AiohttpClient = Callable[[web.Application], Awaitable[TestClient[Any, Any]]]

SERVICE_PASSWORD = "statelock-service-pw-7f3a"
PASSWORDS = {"statelock": SERVICE_PASSWORD, "alice": "alice-pw-81c2", "billing-svc": "billing-pw-3d9e",
             "bob": "bob-pw-5a61"}
SHORT_TOKEN_S = 6
UNAUTHORIZED = {"error": {"code": 401, "title": "Unauthorized",
                          "message": "The request you have made requires authentication."}}
REASON = "billing: invoice 881 overdue"


@dataclass
class Cloud:
    """The session's Keystone: two servers over one site, and what was made in it."""

    main: KeystoneServer
    short: KeystoneServer
    admin: KeystoneAdmin
    projects: dict[str, str]
    users: dict[str, str]

    def token(self, user: str, project: str | None = None, system: bool = False,
              server: KeystoneServer | None = None) -> str:
        password = PASSWORDS.get(user, ADMIN_PASSWORD)
        return KeystoneAdmin((server or self.main).url).token(user, password, project, system)

    def keystone_cfg(self, **overrides: Any) -> dict[str, Any]:
        return {"auth_url": self.main.auth_url, "username": "statelock", "password": SERVICE_PASSWORD,
                "project_name": "service", "user_domain_name": "Default", "project_domain_name": "Default",
                **overrides}


@pytest.fixture(scope="session")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    site = KeystoneSite.create(tmp_path_factory.mktemp("keystone"))
    try:
        main = site.start(port=site.port)
        short = site.start(expiration_s=SHORT_TOKEN_S)
        wait(main)
        wait(short)
        admin = KeystoneAdmin(main.url)
        projects = {name: admin.project(name) for name in ("service", "demo", "other")}
        projects["admin"] = admin.project("admin")
        users = {name: admin.user(name, password) for name, password in PASSWORDS.items()}
        users["admin"] = admin.user_id("admin")
        admin.grant(users["statelock"], projects["service"], "service")
        admin.grant(users["alice"], projects["demo"], "member")
        admin.grant(users["bob"], projects["other"], "member")
        admin.grant(users["billing-svc"], projects["service"], "billing")
        yield Cloud(main, short, admin, projects, users)
    finally:
        site.stop()


StackFactory = Callable[..., Awaitable[Stack]]


@pytest.fixture
def stack_factory(cloud: Cloud, aiohttp_server: AiohttpServer, aiohttp_client: AiohttpClient,
                  tmp_path: Path) -> StackFactory:
    """Statelock (identity.mode keystone) in front of a fresh fake Nova."""

    async def make(keystone: dict[str, Any] | None = None, **overrides: Any) -> Stack:
        nova = FakeNova()
        upstream = await aiohttp_server(build_app(nova))
        ks = keystone if keystone is not None else cloud.keystone_cfg()
        cfg = make_config(tmp_path, str(upstream.make_url("")).rstrip("/"),
                          identity={"mode": "keystone", "keystone": ks}, **overrides)
        client = await aiohttp_client(create_app(cfg))
        return Stack(client, nova, tmp_path / "decisions.jsonl")

    return make


@pytest.fixture
async def stack(stack_factory: StackFactory) -> Stack:
    return await stack_factory()


def _identifier(stack: Stack) -> KeystoneIdentifier:
    identifier = stack.client.app[IDENTIFIER]
    assert isinstance(identifier, KeystoneIdentifier)
    return identifier


async def _place(stack: Stack, token: str, **lock: Any) -> Any:
    return await stack.client.post("/statelock/v1/locks", json={"lock": lock}, headers={"X-Auth-Token": token})


def _last_subject(stack: Stack) -> dict[str, Any]:
    subject: dict[str, Any] = stack.decisions()[-1]["input"]["subject"]
    return subject


async def _subject_recorded(stack: Stack, user_id: str) -> dict[str, Any]:
    """The subject of the last record of a user (a deny is written without waiting for it)."""
    for _ in range(100):
        found = [r["input"]["subject"] for r in stack.decisions()
                 if r["input"].get("subject", {}).get("user_id") == user_id]
        if found:
            subject: dict[str, Any] = found[-1]
            return subject
        await asyncio.sleep(0.02)
    raise AssertionError(f"no record of {user_id}")


# --- subjects ------------------------------------------------------------------------

@pytest.mark.parametrize(("user", "project", "system", "is_admin", "roles"), [
    ("alice", "demo", False, False, {"member", "reader"}),
    ("billing-svc", "service", False, False, {"billing"}),
    ("admin", "admin", False, True, {"admin", "member", "reader"}),
    ("admin", None, True, True, {"admin", "member", "reader"}),
])
async def test_subject_from_a_keystone_token(stack: Stack, cloud: Cloud, user: str, project: str | None,
                                             system: bool, is_admin: bool, roles: set[str]) -> None:
    token = cloud.token(user, project, system)
    subject = await _identifier(stack).identify({"X-Auth-Token": token})
    assert subject.user_id == cloud.users[user]
    assert subject.project_id == (cloud.projects[project] if project else "")
    assert roles <= set(subject.roles)
    assert subject.is_admin is is_admin
    assert subject.domain_id == (None if system else "default")
    assert subject.system_scope == ("all" if system else None)


# --- what the policy says, for real tokens ----------------------------------------------

async def test_member_denied_on_locked_instance_with_the_locks_reason(stack: Stack, cloud: Cloud) -> None:
    sid = stack.nova.add_server(project_id=cloud.projects["demo"], user_id=cloud.users["alice"])
    billing = cloud.token("billing-svc", "service")
    placed = await _place(stack, billing, kind="boot", scope="instance", target=sid, reason=REASON)
    assert placed.status == 201, await placed.text()
    assert (await placed.json())["lock"]["owner"]["user_id"] == cloud.users["billing-svc"]

    alice = cloud.token("alice", "demo")
    denied = await stack.action(sid, {"resume": None}, token=alice)
    assert denied.status == 409
    message = (await denied.json())["conflictingRequest"]["message"]
    assert REASON in message and sid in message
    assert stack.nova.actions_for(sid) == []
    assert await _subject_recorded(stack, cloud.users["alice"]) == {
        "user_id": cloud.users["alice"], "project_id": cloud.projects["demo"], "roles": ["member", "reader"],
        "domain_id": "default", "is_admin": False, "system_scope": None}
    # what the boot lock does not block goes through, as the same member
    assert (await stack.action(sid, {"os-stop": None}, token=alice)).status == 202
    assert stack.nova.actions_for(sid) == ["os-stop"]


async def test_admin_and_billing_tokens_get_what_the_policy_says(stack: Stack, cloud: Cloud) -> None:
    sid = stack.nova.add_server(project_id=cloud.projects["demo"], user_id=cloud.users["alice"])
    alice = cloud.token("alice", "demo")
    admin = cloud.token("admin", "admin")
    system_admin = cloud.token("admin", system=True)
    billing = cloud.token("billing-svc", "service")
    bob = cloud.token("bob", "other")

    # Nova's own lock by the owner: another project's member is held, an admin goes past it
    locked = await stack.action(sid, {"lock": {"locked_reason": "mine"}}, token=alice)
    assert locked.status == 202, await locked.text()
    assert (await stack.action(sid, {"os-stop": None}, token=bob)).status == 409
    stopped = await stack.action(sid, {"os-stop": None}, token=admin)
    assert stopped.status == 202
    record = stack.decisions()[-1]
    assert record["statelock"]["overrides"] and record["input"]["subject"]["is_admin"] is True
    started = await stack.action(sid, {"os-start": None}, token=system_admin)
    assert started.status == 202
    assert _last_subject(stack)["system_scope"] == "all"
    assert _last_subject(stack)["project_id"] == ""
    assert stack.nova.actions_for(sid)[-2:] == ["os-stop", "os-start"]

    # billing's suspend-lock: Statelock suspends with its own identity, never the caller's token
    stack.nova.received.clear()
    resp = await stack.client.post(f"/statelock/v1/instances/{sid}/suspend-lock", json={"reason": REASON},
                                   headers={"X-Auth-Token": billing})
    assert resp.status == 200, await resp.text()
    lock_id = (await resp.json())["lock"]["id"]
    [suspend] = [r for r in stack.nova.received if r.action == "suspend"]
    assert suspend.headers["X-Auth-Token"] == "statelock:service:admin"
    # an admin can't go past a billing lock, nor lift it; billing can
    assert (await stack.action(sid, {"resume": None}, token=admin)).status == 409
    assert (await stack.action(sid, {"resume": None}, token=system_admin)).status == 409
    for token in (admin, alice):
        refused = await stack.client.delete(f"/statelock/v1/locks/{lock_id}", headers={"X-Auth-Token": token})
        assert refused.status == 403
    lifted = await stack.client.delete(f"/statelock/v1/locks/{lock_id}", headers={"X-Auth-Token": billing})
    assert lifted.status == 204
    # the owner's own lock still holds the owner's project... until the owner lifts it
    assert (await stack.action(sid, {"unlock": None}, token=alice)).status == 202
    assert (await stack.action(sid, {"resume": None}, token=alice)).status == 202
    assert stack.nova.actions_for(sid) == ["suspend", "resume"]


# --- 401s ---------------------------------------------------------------------------------

@pytest.mark.parametrize("token", ["gAAAAABgarbage-not-a-token", "alice:demo", "tök€n", "", None])
async def test_bad_or_missing_token_gets_401_and_nothing_is_forwarded(stack: Stack, cloud: Cloud,
                                                                       token: str | None) -> None:
    sid = stack.nova.add_server(project_id=cloud.projects["demo"])
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["X-Auth-Token"] = token
    resp = await stack.client.post(f"/v2.1/servers/{sid}/action", data=b'{"os-stop": null}', headers=headers)
    assert resp.status == 401
    assert await resp.json() == UNAUTHORIZED
    assert resp.headers["WWW-Authenticate"] == f'Keystone uri="{cloud.main.auth_url}"'
    assert stack.nova.received == []
    assert stack.decisions()[-1]["statelock"]["error_code"] == "unauthorized"


async def test_expired_token_gets_401_although_it_was_cached(stack: Stack, cloud: Cloud) -> None:
    sid = stack.nova.add_server(project_id=cloud.projects["demo"])
    token = cloud.token("alice", "demo", server=cloud.short)
    status, _, doc = cloud.admin.call("GET", "/v3/auth/tokens", headers={"X-Subject-Token": token})
    assert status == 200
    expires = datetime.fromisoformat(doc["token"]["expires_at"].replace("Z", "+00:00"))
    assert (await stack.action(sid, {"os-stop": None}, token=token)).status == 202
    assert (await stack.action(sid, {"os-start": None}, token=token)).status == 202
    assert cloud.main.validations(token) == 1 + 1  # ours, and the check above
    await asyncio.sleep(max(0.0, expires.timestamp() - time.time()) + 0.2)
    resp = await stack.action(sid, {"os-stop": None}, token=token)
    assert resp.status == 401
    assert await resp.json() == UNAUTHORIZED
    assert stack.nova.actions_for(sid) == ["os-stop", "os-start"]
    # the cache entry ended with the token, not after token_cache_time (300 s)
    assert cloud.main.validations(token) == 3


# --- the cache ------------------------------------------------------------------------------

async def test_keystone_sees_one_validation_for_many_calls(stack: Stack, cloud: Cloud) -> None:
    sid = stack.nova.add_server(project_id=cloud.projects["demo"])
    token = cloud.token("alice", "demo")
    together = await asyncio.gather(*(stack.action(sid, {"os-stop": None}, token=token) for _ in range(10)))
    assert [r.status for r in together] == [202] * 10
    for _ in range(10):
        assert (await stack.action(sid, {"os-start": None}, token=token)).status == 202
    locks = await stack.client.get("/statelock/v1/locks", headers={"X-Auth-Token": token})
    assert locks.status == 200
    assert cloud.main.validations(token) == 1
    assert len(stack.nova.actions_for(sid)) == 20


async def test_the_cache_is_bounded(stack_factory: StackFactory, cloud: Cloud) -> None:
    stack = await stack_factory(cloud.keystone_cfg(token_cache_size=2))
    sid = stack.nova.add_server(project_id=cloud.projects["demo"])
    tokens = [cloud.token("alice", "demo") for _ in range(3)]
    for token in [*tokens, tokens[2], tokens[0]]:
        assert (await stack.action(sid, {"os-stop": None}, token=token)).status == 202
    # the first token was the least recently used when the third came in
    assert [cloud.main.validations(t) for t in tokens] == [2, 1, 1]


async def test_revoked_token_stops_working_within_token_cache_time(stack_factory: StackFactory,
                                                                   cloud: Cloud) -> None:
    ttl = 2
    stack = await stack_factory(cloud.keystone_cfg(token_cache_time=ttl))
    sid = stack.nova.add_server(project_id=cloud.projects["demo"])
    token = cloud.token("alice", "demo")
    assert (await stack.action(sid, {"os-stop": None}, token=token)).status == 202
    cloud.admin.revoke(token)
    revoked_at = time.monotonic()
    # as keystonemiddleware: the cached validation is trusted until token_cache_time ends
    assert (await stack.action(sid, {"os-start": None}, token=token)).status == 202
    while (resp := await stack.action(sid, {"os-stop": None}, token=token)).status == 202:
        assert time.monotonic() - revoked_at < ttl + 1, "revoked token still accepted after token_cache_time"
        await asyncio.sleep(0.2)
    assert resp.status == 401
    assert time.monotonic() - revoked_at <= ttl + 1
    assert cloud.main.validations(token) == 2


async def test_rejected_token_is_cached_only_briefly(stack_factory: StackFactory, cloud: Cloud) -> None:
    stack = await stack_factory(cloud.keystone_cfg(negative_cache_time=1))
    sid = stack.nova.add_server(project_id=cloud.projects["demo"])
    token = "gAAAAABrejected-" + str(time.time())
    for _ in range(5):
        assert (await stack.action(sid, {"os-stop": None}, token=token)).status == 401
    assert cloud.main.validations(token) == 1
    await asyncio.sleep(1.1)
    assert (await stack.action(sid, {"os-stop": None}, token=token)).status == 401
    assert cloud.main.validations(token) == 2


# --- Keystone down or slow ---------------------------------------------------------------------

async def test_slow_keystone_gives_503_for_state_changes_and_reads_are_forwarded(
        stack_factory: StackFactory, cloud: Cloud) -> None:
    stack = await stack_factory(cloud.keystone_cfg(timeout_s=0.5))
    sid = stack.nova.add_server(project_id=cloud.projects["demo"])
    token = cloud.token("alice", "demo")
    cloud.main.set_delay(1.5)
    try:
        resp = await stack.action(sid, {"os-stop": None}, token=token)
        read = await stack.client.get(f"/v2.1/servers/{sid}", headers={"X-Auth-Token": token})
    finally:
        cloud.main.set_delay(0)
    assert resp.status == 503
    assert (await resp.json())["serviceUnavailable"]["code"] == 503
    assert stack.nova.actions_for(sid) == []
    assert stack.decisions()[-1]["statelock"]["error_code"] == "identity_unavailable"
    assert read.status == 200  # the fast path: Nova's own authtoken decides
    # once Keystone answers again, so does Statelock (an unavailable Keystone is not cached)
    assert (await stack.action(sid, {"os-stop": None}, token=token)).status == 202


@pytest.mark.parametrize(("reads", "read_status"), [("forward", 200), ("deny", 503)])
async def test_keystone_down_reads_when_identified(stack_factory: StackFactory, cloud: Cloud,
                                                   reads: str, read_status: int) -> None:
    down = f"http://127.0.0.1:{free_port()}/v3"
    stack = await stack_factory(cloud.keystone_cfg(auth_url=down, reads_when_keystone_down=reads),
                                classifier={"reads_skip_policy": False})
    sid = stack.nova.add_server(project_id=cloud.projects["demo"])
    token = cloud.token("alice", "demo")
    resp = await stack.action(sid, {"os-stop": None}, token=token)
    assert resp.status == 503
    read = await stack.client.get(f"/v2.1/servers/{sid}", headers={"X-Auth-Token": token})
    assert read.status == read_status
    assert stack.nova.actions_for(sid) == []
    assert [r.method for r in stack.nova.received] == (["GET"] if reads == "forward" else [])


async def test_refused_service_credentials_give_503_and_are_logged_without_secrets(
        stack_factory: StackFactory, cloud: Cloud, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "not-the-" + SERVICE_PASSWORD
    stack = await stack_factory(cloud.keystone_cfg(password=wrong))
    sid = stack.nova.add_server(project_id=cloud.projects["demo"])
    token = cloud.token("alice", "demo")
    resp = await stack.action(sid, {"os-stop": None}, token=token)
    assert resp.status == 503
    assert "refused Statelock's service credentials" in caplog.text
    assert wrong not in caplog.text and token not in caplog.text
    assert stack.nova.received == []


async def test_service_user_without_a_validating_role_gives_503(stack_factory: StackFactory,
                                                                 cloud: Cloud) -> None:
    stack = await stack_factory(cloud.keystone_cfg(username="bob", password=PASSWORDS["bob"],
                                                   project_name="other"))
    sid = stack.nova.add_server(project_id=cloud.projects["demo"])
    resp = await stack.action(sid, {"os-stop": None}, token=cloud.token("alice", "demo"))
    assert resp.status == 503
    assert stack.nova.received == []


# --- secrets, and Statelock's own identity ---------------------------------------------------------

async def test_tokens_and_passwords_never_appear_in_logs_or_records(
        stack_factory: StackFactory, cloud: Cloud, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    stack = await stack_factory(cloud.keystone_cfg(token_cache_time=1))
    sid = stack.nova.add_server(project_id=cloud.projects["demo"])
    alice = cloud.token("alice", "demo")
    billing = cloud.token("billing-svc", "service")
    garbage = "gAAAAABgarbage-" + str(time.time())
    assert (await stack.action(sid, {"os-stop": None}, token=alice)).status == 202
    assert (await stack.action(sid, {"os-stop": None}, token=garbage)).status == 401
    assert (await _place(stack, billing, kind="boot", target=sid, reason=REASON)).status == 201
    assert (await stack.action(sid, {"resume": None}, token=alice)).status == 409
    cloud.admin.revoke(alice)
    await asyncio.sleep(1.1)
    assert (await stack.action(sid, {"os-stop": None}, token=alice)).status == 401
    service_token = await _identifier(stack).service.token()
    records = stack.audit_path.read_text()
    assert caplog.records, "nothing was logged: the check below would prove nothing"
    for secret in (alice, billing, garbage, service_token, SERVICE_PASSWORD):
        assert secret not in caplog.text
        assert secret not in records
    assert SERVICE_PASSWORD not in repr(stack.client.app[CONFIG])


async def test_service_token_is_statelocks_own(stack: Stack, cloud: Cloud) -> None:
    """The hook for Statelock's own calls (suspend-lock): the service user's token, not a caller's."""
    alice = cloud.token("alice", "demo")
    await _identifier(stack).identify({"X-Auth-Token": alice})
    service_token = await _identifier(stack).service.token()
    assert service_token != alice
    assert await _identifier(stack).service.token() == service_token
    status, _, doc = cloud.admin.call("GET", "/v3/auth/tokens", headers={"X-Subject-Token": service_token})
    assert status == 200
    assert doc["token"]["user"]["id"] == cloud.users["statelock"]
    assert doc["token"]["project"]["id"] == cloud.projects["service"]


async def test_identify_reports_unavailable_with_the_read_setting(cloud: Cloud) -> None:
    down = f"http://127.0.0.1:{free_port()}"
    for reads, forward in (("forward", True), ("deny", False)):
        cfg = config_from_mapping({
            "backend": {"upstream_url": "http://127.0.0.1:1"},
            "classifier": {"reads_skip_policy": False},
            "identity": {"mode": "keystone", "keystone": cloud.keystone_cfg(
                auth_url=down, reads_when_keystone_down=reads, timeout_s=1)}}, env={})
        identifier = KeystoneIdentifier(cfg.identity.keystone)
        await identifier.start()
        try:
            with pytest.raises(IdentityUnavailable) as err:
                await identifier.identify({"X-Auth-Token": "anything"})
        finally:
            await identifier.close()
        assert err.value.forward_reads is forward and err.value.status == 503


# --- configuration -------------------------------------------------------------------------------

KS = {"auth_url": "http://keystone:5000/v3", "username": "statelock", "password": "ks-secret-pw-0a1b",
      "project_name": "service"}


@pytest.mark.parametrize(("identity", "classifier", "message"), [
    ({"mode": "keystone"}, {}, "identity.keystone.auth_url: required"),
    ({"mode": "keystone", "keystone": {**KS, "password": None}}, {}, "identity.keystone.password: required"),
    ({"mode": "keystone", "keystone": {**KS, "auth_url": "keystone:5000"}}, {}, "must be an http(s) URL"),
    ({"mode": "keystone", "keystone": {**KS, "token_cache_size": 0}}, {}, "token_cache_size: must be at least 1"),
    ({"mode": "keystone", "keystone": {**KS, "timeout_s": 0}}, {}, "timeout_s: must be positive"),
    ({"mode": "keystone", "keystone": {**KS, "token_cache_time": -1}}, {}, "must be zero or positive"),
    ({"mode": "keystone", "keystone": {**KS, "reads_when_keystone_down": "maybe"}}, {}, "is not one of forward"),
    ({"mode": "keystone", "keystone": {**KS, "reads_when_keystone_down": "deny"}}, {},
     "needs classifier.reads_skip_policy false"),
    ({"mode": "noauth", "keystone": KS}, {}, "identity.keystone: only valid when identity.mode is keystone"),
    ({"mode": "keystone", "keystone": {**KS, "memcached_servers": "x"}}, {}, "unknown key identity.keystone."),
])
def test_keystone_config_is_checked_at_start(identity: dict[str, Any], classifier: dict[str, Any],
                                             message: str) -> None:
    raw = {"backend": {"upstream_url": "http://127.0.0.1:1"}, "identity": identity, "classifier": classifier}
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        config_from_mapping(raw, env={})


def test_keystone_config_defaults_and_secret_repr() -> None:
    cfg = config_from_mapping({"backend": {"upstream_url": "http://127.0.0.1:1"},
                               "classifier": {"reads_skip_policy": False},
                               "identity": {"mode": "keystone", "keystone": {
                                   **KS, "reads_when_keystone_down": "deny"}}}, env={})
    ks = cfg.identity.keystone
    assert (ks.user_domain_name, ks.project_domain_name, ks.token_cache_time) == ("Default", "Default", 300)
    assert (ks.token_cache_size, ks.negative_cache_time, ks.timeout_s) == (10000, 5.0, 3.0)
    assert ks.reads_when_keystone_down == "deny"
    assert KS["password"] not in repr(cfg)


def test_the_example_config_is_valid() -> None:
    cfg = load_config(ROOT / "config" / "keystone-example.yaml", env={})
    assert cfg.identity.mode == "keystone"
    assert cfg.identity.keystone.username == "statelock" and cfg.backend.service_auth.token is None


# --- lock targets -------------------------------------------------------------------------

async def test_a_project_lock_target_is_checked_in_keystone(stack_factory: StackFactory, cloud: Cloud) -> None:
    """A service user that may read projects gets Keystone's answer; one that may not, Nova's."""
    reader = "statelock-reader"
    if reader not in cloud.users:
        cloud.users[reader] = cloud.admin.user(reader, SERVICE_PASSWORD)
        cloud.admin.grant(cloud.users[reader], cloud.projects["service"], "service")
        cloud.admin.grant(cloud.users[reader], cloud.projects["service"], "admin")
    billing = cloud.token("billing-svc", "service")
    lock = {"kind": "boot", "scope": "project", "reason": "invoice 12"}
    stack = await stack_factory(cloud.keystone_cfg(username=reader))
    # "other" has no server anywhere: only Keystone can vouch for it
    known = await _place(stack, billing, target=cloud.projects["other"], **lock)
    assert known.status == 201, await known.text()
    unknown = await _place(stack, billing, target="0" * 32, **lock)
    assert unknown.status == 404
    assert "Keystone has no project" in (await unknown.json())["itemNotFound"]["message"]
    # the default service user may not read other projects (403): Nova's servers decide
    plain = await stack_factory(audit={"path": str(stack.audit_path.with_name("plain.jsonl"))})
    fallback = await _place(plain, billing, target=cloud.projects["other"], **lock)
    assert fallback.status == 404
    assert "Nova has no server in project" in (await fallback.json())["itemNotFound"]["message"]
