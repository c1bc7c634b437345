"""Playwright for Python driving Debian's Chromium (no browser download), against a real Statelock.

``browser`` is one Chromium for each test module (headless, as root: no sandbox, a fresh
``--user-data-dir``, no network but loopback). ``page`` is a fresh page whose cookies
are cleared, and which fails its test if the page logged an error to the console
(a CSP violation included, or an asset that failed to load) or raised one; a page
that is itself a refusal (a 4xx document the test asked for) is the test's to check. ``shoot`` saves a screenshot into
``$STATELOCK_CONSOLE_SCREENSHOTS`` when set (``docs/console/`` is made that way), else
into the test's temporary directory.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Dialog, Page, Playwright, Response, sync_playwright

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
Shoot = Callable[[Page, str], Path]


# NOTE: per module, not per session: while Playwright's sync API runs, its event loop is the
# thread's running loop, and every async test after it would fail to start its own.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: scripts/system-deps.sh --test installs Debian's chromium")
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[BrowserContext]:
    with tempfile.TemporaryDirectory(prefix="statelock-chromium-") as profile:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=ARGS, accept_downloads=True,
            ignore_https_errors=True, viewport={"width": 1360, "height": 900})
        try:
            yield context
        finally:
            context.close()


@pytest.fixture
def page(browser: BrowserContext) -> Iterator[Page]:
    browser.clear_cookies()
    pg = browser.new_page()
    problems: list[str] = []
    refused_documents: set[str] = set()

    def on_response(resp: Response) -> None:
        if resp.status >= 400 and resp.request.resource_type == "document":
            refused_documents.add(resp.url)

    def on_console(msg: ConsoleMessage) -> None:
        # NOTE: Chromium logs a page answered 4xx (a refusal page a test asks for); the test checks those.
        if msg.type == "error" and not (msg.text.startswith("Failed to load resource")
                                        and msg.location.get("url") in refused_documents):
            problems.append(f"console error: {msg.text} at {msg.location.get('url')}")

    pg.on("response", on_response)
    pg.on("console", on_console)
    def on_dialog(dialog: Dialog) -> None:
        problems.append(f"a script opened a dialog: {dialog.message}")
        dialog.dismiss()

    pg.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
    pg.on("dialog", on_dialog)
    yield pg
    pg.close()
    assert problems == [], problems


@pytest.fixture
def shoot(tmp_path: Path) -> Shoot:
    def take(pg: Page, name: str) -> Path:
        target = Path(os.environ.get("STATELOCK_CONSOLE_SCREENSHOTS") or tmp_path) / f"{name}.png"
        target.parent.mkdir(parents=True, exist_ok=True)
        pg.screenshot(path=str(target), full_page=True)
        return target

    return take
