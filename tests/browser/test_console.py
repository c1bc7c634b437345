"""The auditors' console in a real browser (Chromium), against a real ``statelock serve``.

One Statelock for the module (the fake driver, SQLite, the embedded engine on a copy
of the bundle), seeded through its HTTP API with locks, allowed and denied actions, a
suspend-lock and its unlock-resume, a lock that expires, and a refused request. The
lock on the first instance carries markup and a spreadsheet formula in its reason.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, expect

from sidecar.policy.backtest import replayable
from tests.browser.conftest import Shoot
from tests.support.console import ADMIN, AUDITOR, BILLING, INSTANCES, LEGAL, MEMBER, ConsoleServer

pytestmark = pytest.mark.integration

REASON = '=HYPERLINK("http://evil.example/x","click")<img src=x onerror=alert(document.cookie)><b>bold</b>'
I0, I1, I2 = INSTANCES
UI = "/statelock/ui"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    srv = ConsoleServer.start(tmp_path_factory.mktemp("console"))
    try:
        _seed(srv)
        yield srv
    finally:
        srv.stop()


def _seed(srv: ConsoleServer) -> None:
    def ok(answer: tuple[int, dict[str, str], Any], want: int) -> Any:
        assert answer[0] == want, answer
        return answer[2]

    lock = ok((srv.api("POST", "/statelock/v1/locks", {"lock": {
        "kind": "state", "scope": "instance", "target": I0, "reason": REASON}}, token=LEGAL)), 201)
    srv.notes["lock_id"] = lock["lock"]["id"]
    srv.api("POST", f"/v2.1/servers/{I0}/action", {"os-stop": None}, token=MEMBER)
    ok((srv.api("POST", f"/v2.1/servers/{I1}/action", {"os-stop": None}, token=MEMBER)), 202)
    ok((srv.api("POST", f"/statelock/v1/instances/{I2}/suspend-lock",
                              {"reason": "billing: invoice 881 overdue"}, token=BILLING)), 200)
    srv.api("POST", f"/v2.1/servers/{I2}/action", {"os-start": None}, token=MEMBER)
    ok((srv.api("POST", f"/statelock/v1/instances/{I2}/unlock-resume", {}, token=BILLING)), 200)
    soon = (datetime.now(UTC) + timedelta(seconds=1.5)).isoformat().replace("+00:00", "Z")
    ok((srv.api("POST", "/statelock/v1/locks", {"lock": {
        "kind": "delete", "scope": "instance", "target": I1, "reason": "hold for a day", "expires_at": soon}},
        token=LEGAL)), 201)
    srv.api("POST", f"/v2.1/servers/{I1}/action", {"os-start": None})  # unidentified: a refusal on record
    time.sleep(1.6)


def login(page: Page, server: ConsoleServer, token: str) -> None:
    page.goto(server.url + UI + "/login")
    page.fill("input[name=token]", token)
    page.click("button[type=submit]")


def _ids(page: Page) -> list[str]:
    return [str(a.get_attribute("title")) for a in page.locator("#decisions a.decision-link").all()]


def test_nothing_but_the_login_page_before_login(page: Page, server: ConsoleServer) -> None:
    some_id = server.decisions()[0]["decision_id"]
    for path in ("/decisions", "/locks", f"/instances/{I0}", f"/decisions/{some_id}", "/backtest",
                 "/decisions.csv", "/decisions.json", ""):
        resp = page.goto(server.url + UI + path)
        assert resp is not None
        assert page.url == server.url + UI + "/login", path
        expect(page.locator("#login-form")).to_be_visible()
        assert some_id not in page.content() and REASON not in page.content()
    resp = page.goto(server.url + UI + "/login")
    assert resp is not None
    csp = resp.headers["content-security-policy"]
    assert "script-src 'none'" in csp and "default-src 'none'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp and resp.headers["x-frame-options"] == "DENY"


def test_login_sets_a_strict_session_cookie_and_logout_ends_it(page: Page, browser: BrowserContext,
                                                                server: ConsoleServer, shoot: Shoot) -> None:
    page.goto(server.url + UI + "/login")
    shoot(page, "login")
    login(page, server, AUDITOR)
    expect(page).to_have_url(server.url + UI + "/decisions")
    expect(page.locator("#who")).to_contain_text("audit-svc")
    shoot(page, "decisions")
    [cookie] = [c for c in browser.cookies() if c["name"] == "statelock_session"]
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict" and cookie["secure"] is False
    assert cookie["path"] == UI + "/" and cookie["expires"] > time.time()
    assert AUDITOR not in cookie["value"] and AUDITOR not in page.content()
    page.click("#logout")
    expect(page).to_have_url(server.url + UI + "/login")
    assert not [c for c in browser.cookies() if c["name"] == "statelock_session"]
    page.goto(server.url + UI + "/decisions")
    expect(page).to_have_url(server.url + UI + "/login")
    actions = [(r["input"]["action"]["name"], r["input"]["subject"]["user_id"]) for r in server.decisions()
               if "subject" in r["input"]]
    assert ("console_login", "audit-svc") in actions and ("console_logout", "audit-svc") in actions
    assert AUDITOR not in server.audit_path.read_text() and AUDITOR not in server.log.read_text()


def test_a_subject_without_the_role_gets_a_page_naming_it(page: Page, server: ConsoleServer, shoot: Shoot) -> None:
    login(page, server, MEMBER)
    needed = page.locator("#needed-role")
    expect(needed).to_contain_text("auditor")
    expect(needed).to_contain_text("admin")
    assert I0 not in page.content()
    shoot(page, "refused")
    refused = [r for r in server.decisions(action="console_login", subject="alice")]
    assert refused and refused[-1]["statelock"]["outcome"] == "deny"


def _filters(server: ConsoleServer) -> list[dict[str, str]]:
    records = server.decisions()
    first, last = records[1]["timestamp"], records[-3]["timestamp"]
    return [{"outcome": "deny"}, {"outcome": "error"}, {"action": "os-stop"}, {"instance": I0}, {"project": "demo"},
            {"subject": "alice"}, {"lock": server.notes["lock_id"]},
            {"revision": "console-test-1"}, {"decision_id": records[2]["decision_id"][:8]},
            {"since": first, "until": last}, {"subject": "alice", "outcome": "deny"}]


def test_each_filter_shows_what_the_api_answers(page: Page, server: ConsoleServer, shoot: Shoot) -> None:
    login(page, server, AUDITOR)
    for filters in _filters(server):
        expected = [r["decision_id"] for r in reversed(server.decisions(**filters))]
        query = "&".join(f"{k}={v}" for k, v in filters.items()).replace("+", "%2B")
        page.goto(f"{server.url}{UI}/decisions?{query}")
        assert expected, f"the seed holds no decision for {filters}: the check would prove nothing"
        assert _ids(page) == expected, filters
    page.goto(f"{server.url}{UI}/decisions")
    page.select_option("select[name=outcome]", "deny")
    page.fill("input[name=subject]", "alice")
    page.click("#filters button[type=submit]")
    assert "outcome=deny" in page.url and "subject=alice" in page.url
    assert set(_ids(page)) == {r["decision_id"] for r in server.decisions(outcome="deny", subject="alice")}
    shoot(page, "decisions-filtered")


def test_pages_of_a_long_view_link_to_older_ones(page: Page, server: ConsoleServer) -> None:
    login(page, server, AUDITOR)
    expected = [r["decision_id"] for r in reversed(server.decisions())]
    page.goto(f"{server.url}{UI}/decisions?limit=3")
    seen = _ids(page)
    while page.locator("#older").count():
        page.click("#older")
        seen += _ids(page)
    assert len(expected) > 6 and seen == expected


def test_a_decision_shows_its_parts_and_replays(page: Page, server: ConsoleServer, shoot: Shoot) -> None:
    login(page, server, AUDITOR)
    [denied] = server.decisions(instance=I0, outcome="deny", action="os-stop")
    page.goto(f"{server.url}{UI}/decisions?instance={I0}&outcome=deny")
    page.click(f"a[title='{denied['decision_id']}']")
    expect(page.locator("#decision-id")).to_have_text(denied["decision_id"])
    expect(page.locator("#outcome")).to_have_text("deny")
    expect(page.locator("#revision")).to_have_text("console-test-1")
    expect(page.locator("#reasons")).to_contain_text(server.notes["lock_id"])
    expect(page.locator("#decision-locks")).to_contain_text("blocked")
    expect(page.locator("#completion")).to_contain_text("not forwarded")
    expect(page.locator("#input")).to_contain_text('"instance_id"')
    page.click("#replay")
    expect(page.locator("#replay-result tr.recorded .changed")).to_have_text("same")
    expect(page.locator("#replay-result tr.current .changed")).to_have_text("same")
    shoot(page, "decision")
    _exempt_os_stop(server)
    page.click("#replay")
    expect(page.locator("#replay-result tr.recorded .changed")).to_have_text("same")
    expect(page.locator("#replay-result tr.current")).to_contain_text("console-test-2")
    expect(page.locator("#replay-result tr.current .changed")).to_have_text("CHANGED")
    shoot(page, "decision-replayed")
    replays = server.decisions(action="console_replay")
    assert replays[-1]["input"]["action"]["params"] == {"decision_id": denied["decision_id"]}
    assert replays[-1]["result"]["replay"]["current"] == {"outcome": "allow", "changed": True}


def _exempt_os_stop(server: ConsoleServer) -> None:
    """A new revision in which a state lock no longer blocks os-stop; wait until it serves."""
    data_path = server.root / "bundle" / "data.json"
    data = json.loads(data_path.read_text())
    data["statelock"]["lock_kinds"]["state"]["exempt_actions"].append("os-stop")
    data_path.write_text(json.dumps(data))
    (server.root / "bundle" / ".manifest").write_text(json.dumps({"revision": "console-test-2",
                                                                   "roots": ["statelock"]}))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if server.api("GET", "/statelock/v1/health")[2]["policy"]["revision"] == "console-test-2":
            return
        time.sleep(0.1)
    raise AssertionError("the changed bundle was not loaded")


def test_locks_and_an_instance_timeline(page: Page, server: ConsoleServer, shoot: Shoot) -> None:
    login(page, server, AUDITOR)
    page.goto(f"{server.url}{UI}/locks")
    expect(page.locator("#locks")).to_contain_text(server.notes["lock_id"])
    expect(page.locator("#locks")).to_contain_text("legal-svc")
    shoot(page, "locks")
    page.goto(f"{server.url}{UI}/locks?state=all")
    expect(page.locator("#locks")).to_contain_text("billing: invoice 881 overdue")
    expect(page.locator("#locks")).to_contain_text("lifted")
    page.click(f"#locks a[href$='{I2}']")
    timeline = page.locator("#timeline")
    expect(timeline.locator("tr.created")).to_contain_text("billing-svc")
    expect(timeline.locator("tr.lifted")).to_contain_text("billing-svc")
    assert len(_ids(page)) == len(server.decisions(instance=I2))
    shoot(page, "timeline")
    page.goto(f"{server.url}{UI}/instances/{I1}")
    expect(page.locator("#timeline tr.expired")).to_contain_text("hold for a day")


def test_markup_in_a_lock_reason_runs_no_script_and_the_csv_neutralises_it(page: Page, server: ConsoleServer,
                                                                          tmp_path: Path) -> None:
    login(page, server, AUDITOR)
    denied = server.decisions(instance=I0, outcome="deny")[0]["decision_id"]
    for path in (f"/decisions?instance={I0}", "/locks", f"/instances/{I0}", f"/decisions/{denied}"):
        page.goto(server.url + UI + path)
        expect(page.get_by_text(REASON, exact=False).first).to_be_visible()
        assert page.locator("main img").count() == 0 and page.locator("main b").count() == 0, path
    page.goto(f"{server.url}{UI}/decisions?instance={I0}")
    with page.expect_download() as got:
        page.click("#export-csv")
    rows = list(csv.DictReader(io.StringIO(Path(got.value.path()).read_text(encoding="utf-8"))))
    assert {r["decision_id"] for r in rows} == {r["decision_id"] for r in server.decisions(instance=I0)}
    [row] = [r for r in rows if r["decision_id"] == denied]
    assert row["lock_reasons"] == "'" + REASON
    for r in rows:
        assert not [cell for cell in r.values() if cell[:1] in ("=", "+", "-", "@", "\t", "\r")], r
    with page.expect_download() as got:
        page.click("#export-json")
    doc = json.loads(Path(got.value.path()).read_text(encoding="utf-8"))
    assert [d["decision_id"] for d in doc["decisions"]] == [r["decision_id"] for r in
                                                            reversed(server.decisions(instance=I0))]
    [exported] = [d for d in doc["decisions"] if d["decision_id"] == denied]
    assert exported["input"]["locks"][0]["reason"] == REASON
    exports = server.decisions(action="console_export")
    assert [e["input"]["action"]["params"]["format"] for e in exports[-2:]] == ["csv", "json"]


def test_backtest_is_for_admins_and_counts_the_changes(page: Page, server: ConsoleServer, shoot: Shoot) -> None:
    login(page, server, AUDITOR)
    page.goto(f"{server.url}{UI}/backtest")
    expect(page.locator("#error-message")).to_contain_text("admins only")
    page.context.clear_cookies()
    login(page, server, ADMIN)
    page.goto(f"{server.url}{UI}/backtest")
    records = [r for r in server.decisions() if replayable(r)]
    for candidate, to_deny, to_allow in (("deny-all", "allow", None), ("allow-all", None, "deny"),
                                         ("current", None, None)):
        page.select_option("select[name=candidate]", candidate)
        page.click("#run-backtest")
        expect(page.locator("#backtest-result")).to_contain_text(f"candidate-{candidate}")
        # NOTE: the run itself is recorded after it reads the window, so it is not in its own count.
        want_deny = len([r for r in records if r["statelock"]["outcome"] == to_deny])
        want_allow = len([r for r in records if r["statelock"]["outcome"] == to_allow])
        if candidate == "current":
            want_deny = want_allow = 0
        expect(page.locator("#allow-to-deny")).to_have_text(str(want_deny))
        expect(page.locator("#deny-to-allow")).to_have_text(str(want_allow))
        changes = page.locator("#changes tbody tr a")
        assert changes.count() == min(20, want_deny + want_allow)
        if candidate == "deny-all":
            shoot(page, "backtest")
        records = [r for r in server.decisions() if replayable(r)]
    runs = server.decisions(action="console_backtest")
    assert [r["input"]["action"]["params"]["candidate"] for r in runs[-3:]] == ["deny-all", "allow-all", "current"]
