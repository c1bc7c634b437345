"""The console's Keystone login in a real browser, against a real Keystone (``tests/support/keystone.py``).

Statelock runs with ``identity.mode: keystone``; the login form asks for user,
password and project, Statelock gets a project-scoped token from Keystone for them,
and the session ends with that token. Neither the password nor the token reaches a
page, a cookie, the decision log or Statelock's own log.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from tests.browser.conftest import Shoot
from tests.support.console import ConsoleServer
from tests.support.keystone import KeystoneAdmin, KeystoneServer, KeystoneSite

pytestmark = pytest.mark.integration

SERVICE_PASSWORD = "statelock-console-svc-pw-19b"
ANN_PASSWORD = "ann-auditor-pw-44d7"
BOB_PASSWORD = "bob-member-pw-08c1"
UI = "/statelock/ui"


@dataclass
class Cloud:
    keystone: KeystoneServer
    statelock: ConsoleServer
    users: dict[str, str]


@pytest.fixture(scope="module")
def cloud(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cloud]:
    site = KeystoneSite.create(tmp_path_factory.mktemp("keystone"))
    statelock: ConsoleServer | None = None
    try:
        keystone = site.serve()
        admin = KeystoneAdmin(keystone.url)
        projects = {name: admin.project(name) for name in ("service", "audit", "demo")}
        users = {name: admin.user(name, password) for name, password in (
            ("statelock", SERVICE_PASSWORD), ("ann", ANN_PASSWORD), ("bob", BOB_PASSWORD))}
        admin.grant(users["statelock"], projects["service"], "service")
        admin.grant(users["ann"], projects["audit"], "auditor")
        admin.grant(users["bob"], projects["demo"], "member")
        statelock = ConsoleServer.start(tmp_path_factory.mktemp("statelock"), identity={
            "mode": "keystone", "keystone": {"auth_url": keystone.auth_url, "username": "statelock",
                                             "password": SERVICE_PASSWORD, "project_name": "service"}})
        yield Cloud(keystone, statelock, users)
    finally:
        if statelock is not None:
            statelock.stop()
        site.stop()


def _login(page: Page, cloud: Cloud, user: str, password: str, project: str) -> None:
    page.goto(cloud.statelock.url + UI + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", password)
    page.fill("input[name=project]", project)
    page.click("button[type=submit]")


def test_keystone_login_wrong_password_role_refusal_and_logout(page: Page, browser: BrowserContext, cloud: Cloud,
                                                                 shoot: Shoot) -> None:
    page.goto(cloud.statelock.url + UI + "/login")
    expect(page.locator("input[name=token]")).to_have_count(0)
    shoot(page, "login-keystone")
    _login(page, cloud, "ann", "not-her-password", "audit")
    expect(page.locator("#login-error")).to_contain_text("Keystone refused")
    assert not [c for c in browser.cookies() if c["name"] == "statelock_session"]
    _login(page, cloud, "bob", BOB_PASSWORD, "demo")
    expect(page.locator("#needed-role")).to_contain_text("auditor")
    assert not [c for c in browser.cookies() if c["name"] == "statelock_session"]
    before = time.time()
    _login(page, cloud, "ann", ANN_PASSWORD, "audit")
    expect(page).to_have_url(cloud.statelock.url + UI + "/decisions")
    expect(page.locator("#who")).to_contain_text("auditor")
    [cookie] = [c for c in browser.cookies() if c["name"] == "statelock_session"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    # NOTE: Keystone's tokens live an hour here; the session ends with the token, not after 8 hours.
    assert before + 3500 < cookie["expires"] <= before + 3600 + 5
    records = cloud.statelock.records()
    logins = [r for r in records if r["input"].get("action", {}).get("name") == "console_login"]
    assert [(r["input"]["subject"]["user_id"], r["statelock"]["outcome"]) for r in logins] == [
        (cloud.users["bob"], "deny"), (cloud.users["ann"], "allow")]
    refusals = [r for r in records if r["statelock"]["outcome"] == "error"
                and r["statelock"]["http"]["path"] == UI + "/login"]
    assert len(refusals) == 1 and refusals[0]["error"]["code"] == "unauthorized"
    page.click("#logout")
    expect(page).to_have_url(cloud.statelock.url + UI + "/login")
    for text in (cloud.statelock.audit_path.read_text(), cloud.statelock.log.read_text(), page.content()):
        for secret in (ANN_PASSWORD, BOB_PASSWORD, "not-her-password", SERVICE_PASSWORD):
            assert secret not in text
