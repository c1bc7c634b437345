"""The console over TLS (``tls.certfile``): the session cookie gets Secure, in a real browser."""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from playwright.sync_api import BrowserContext, Page, expect

from tests.support.console import AUDITOR, ConsoleServer

pytestmark = pytest.mark.integration


def self_signed(directory: Path) -> Path:
    """A PEM file holding a fresh key and a certificate for 127.0.0.1 (one day)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    path = directory / "console.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()) + cert.public_bytes(serialization.Encoding.PEM))
    path.chmod(0o600)
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleServer]:
    root = tmp_path_factory.mktemp("console-tls")
    srv = ConsoleServer.start(root / "statelock", tls={"certfile": str(self_signed(root))})
    yield srv
    srv.stop()


def test_over_tls_the_cookies_are_secure(page: Page, browser: BrowserContext, server: ConsoleServer) -> None:
    assert server.url.startswith("https://")
    page.goto(server.url + "/statelock/ui/login")
    [login_cookie] = [c for c in browser.cookies() if c["name"] == "statelock_login"]
    assert login_cookie["secure"] and login_cookie["httpOnly"] and login_cookie["sameSite"] == "Strict"
    page.fill("input[name=token]", AUDITOR)
    page.click("button[type=submit]")
    expect(page).to_have_url(server.url + "/statelock/ui/decisions")
    [cookie] = [c for c in browser.cookies() if c["name"] == "statelock_session"]
    assert cookie["secure"] is True and cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
