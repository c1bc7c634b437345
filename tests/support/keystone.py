"""A real Keystone for tests, from PyPI, served by gunicorn on a loopback port.

``keystone_venv()`` installs ``keystone`` and ``gunicorn`` (versions pinned below,
OpenStack upper-constraints style) into their own venv under
``.tools/keystone-venv`` on first use, and reuses it while the pins are unchanged.
``KeystoneSite.create(dir)`` lays out a Keystone (SQLite, Fernet and credential
keys, ``db_sync``, ``bootstrap``); ``site.serve()`` starts it, and several servers
may share one site (same database and keys, e.g. one issuing short-lived tokens).

Each server runs Keystone's own WSGI application wrapped by a few lines that
count token validations per subject token (by SHA-256, never the token) and can
delay them, so tests can see "Keystone was asked once" and "Keystone is slow".
``KeystoneAdmin`` makes users, projects, roles and tokens through the REST API.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.paths import ROOT
from tests.support.process import free_port, terminate

VENV = ROOT / ".tools" / "keystone-venv"
ADMIN_PASSWORD = "bootstrap-admin-secret"

# NOTE: keystone 30.0.0 (2026.2) supports Python 3.11-3.13; these are the versions it was
# tested with here. Pinning every dependency keeps a first install reproducible.
PINS = """
keystone==30.0.0
gunicorn==27.0.1
alembic==1.20.1
amqp==5.4.2
aniso8601==10.0.1
attrs==26.1.0
bcrypt==5.0.0
blinker==1.9.0
cachetools==8.0.2
certifi==2026.10.19.post1
cffi==2.1.1
charset-normalizer==3.5.2
click==8.5.1
cryptography==50.0.2
debtcollector==3.1.0
decorator==5.3.1
defusedxml==0.7.1
dnspython==2.9.2
dogpile.cache==1.5.0
elementpath==4.8.0
eventlet==0.41.3
fasteners==0.20
Flask==3.1.3
Flask-RESTful==0.3.10
futurist==3.5.0
greenlet==3.5.6
idna==3.20
iso8601==2.1.0
itsdangerous==2.2.0
Jinja2==3.1.6
jsonschema==4.26.0
jsonschema-specifications==2025.9.1
keystoneauth1==5.18.1
keystonemiddleware==13.0.1
kombu==5.7.0
Mako==1.4.3
MarkupSafe==3.0.4
msgpack==1.2.4
netaddr==1.3.0
oauthlib==4.0.1
os-service-types==1.9.0
oslo.cache==4.3.0
oslo.concurrency==7.6.1
oslo.config==10.7.0
oslo.context==6.5.0
oslo.db==18.1.1
oslo.i18n==6.9.0
oslo.log==8.3.2
oslo.messaging==18.3.1
oslo.metrics==0.17.0
oslo.middleware==8.2.0
oslo.policy==6.0.1
oslo.serialization==5.11.0
oslo.service==4.8.0
oslo.upgradecheck==2.8.0
oslo.utils==10.2.0
osprofiler==4.4.0
packaging==26.3
Paste==3.10.1
PasteDeploy==3.1.0
pbr==7.1.3
prettytable==3.18.0
prometheus_client==0.26.0
psutil==7.2.2
pycadf==4.1.0
pycparser==3.12
PyJWT==2.15.1
pyOpenSSL==26.4.0
pyparsing==3.3.3
pysaml2==7.5.5
python-dateutil==4.0.0
python-keystoneclient==6.0.0
pytz==2026.6
PyYAML==6.0.4
referencing==0.37.0
repoze-lru==0.8
requests==2.34.2
rfc3986==2.0.0
Routes==2.5.1
rpds-py==2026.9.1
six==1.17.0
SQLAlchemy==2.1.9
statsd==4.0.1
stevedore==5.10.0
testresources==2.1.2
testscenarios==0.7.0
typing_extensions==4.16.0
tzdata==2026.6
urllib3==2.8.0
vine==5.1.0
wcwidth==0.9.4
WebOb==1.8.11
Werkzeug==3.1.9
wrapt==2.5.2
xmlschema==2.5.1
yappi==1.7.6
"""

# The WSGI module gunicorn serves: Keystone's public application, plus a validation
# counter and an optional delay under /statelock-test/.
WRAPPER = '''
import hashlib, json, sys, threading, time
from keystone.server import wsgi as _keystone_wsgi

sys.argv = sys.argv[:1]  # oslo.config would parse gunicorn's arguments as Keystone's
_app = _keystone_wsgi.initialize_public_application()
_lock = threading.Lock()
_counts = {}
_delay = [0.0]


def application(environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path == "/statelock-test/validations":
        with _lock:
            body = json.dumps(_counts).encode()
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/statelock-test/delay":
        _delay[0] = float(environ.get("QUERY_STRING") or 0)
        start_response("204 No Content", [])
        return []
    if environ.get("REQUEST_METHOD") == "GET" and path.rstrip("/") == "/v3/auth/tokens":
        key = hashlib.sha256(environ.get("HTTP_X_SUBJECT_TOKEN", "").encode()).hexdigest()
        with _lock:
            _counts[key] = _counts.get(key, 0) + 1
        if _delay[0]:
            time.sleep(_delay[0])
    return _app(environ, start_response)
'''


def _pins_digest() -> str:
    return hashlib.sha256(PINS.encode()).hexdigest()[:16]


@contextlib.contextmanager
def _file_lock(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def keystone_venv(venv: Path = VENV) -> Path:
    """The venv holding keystone and gunicorn, installed on first use (minutes); raises if it can't be."""
    marker = venv / ".statelock-installed"
    want = _pins_digest()
    if marker.exists() and marker.read_text().split()[:1] == [want]:
        return venv
    with _file_lock(venv.parent / "keystone-venv.lock"):
        if marker.exists() and marker.read_text().split()[:1] == [want]:
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        constraints = venv / "constraints.txt"
        constraints.write_text(PINS)
        log = venv / "install.log"
        cmd = [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check",
               "--no-input", "--retries", "5", "--timeout", "60", "-c", str(constraints),
               "keystone", "gunicorn"]
        for attempt in (1, 2):
            with log.open("a") as out:
                done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
            if done.returncode == 0:
                break
            if attempt == 2:
                tail = log.read_text()[-3000:]
                shutil.rmtree(venv, ignore_errors=True)
                raise RuntimeError(f"installing keystone failed:\n{tail}")
        seconds = time.monotonic() - started
        marker.write_text(f"{want} installed in {seconds:.0f}s\n")
        print(f"keystone test venv installed in {seconds:.0f}s at {venv}", file=sys.stderr)
    return venv


@dataclass
class KeystoneServer:
    """One running Keystone (gunicorn) process."""

    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def auth_url(self) -> str:
        return self.url + "/v3"

    def validations(self, token: str) -> int:
        """How often this server was asked to validate ``token`` (GET /v3/auth/tokens)."""
        with urllib.request.urlopen(self.url + "/statelock-test/validations", timeout=10) as resp:
            counts: dict[str, int] = json.loads(resp.read())
        return counts.get(hashlib.sha256(token.encode()).hexdigest(), 0)

    def set_delay(self, seconds: float) -> None:
        """Make every validation take ``seconds`` longer (0: none)."""
        with urllib.request.urlopen(f"{self.url}/statelock-test/delay?{seconds}", timeout=10):
            pass

    def stop(self) -> None:
        terminate(self.proc)


@dataclass
class KeystoneSite:
    """A Keystone's files: config, SQLite database, Fernet and credential keys."""

    root: Path
    venv: Path
    servers: list[KeystoneServer] = field(default_factory=list)
    port: int = 0

    def conf(self, expiration_s: int = 3600, name: str = "keystone.conf") -> Path:
        path = self.root / name
        path.write_text(
            "[DEFAULT]\n"
            "debug = false\n"
            f"[database]\nconnection = sqlite:///{self.root}/keystone.db\n"
            f"[token]\nprovider = fernet\nexpiration = {expiration_s}\n"
            f"[fernet_tokens]\nkey_repository = {self.root}/fernet-keys\n"
            f"[credential]\nkey_repository = {self.root}/credential-keys\n"
            # NOTE: bcrypt's fewest rounds: tests issue many tokens, password checks dominate otherwise.
            "[identity]\npassword_hash_rounds = 4\n"
            # NOTE: without a cache, Keystone 30 makes ~450 SQL queries a validation (~250 ms here);
            # with its in-process cache a validation takes a few ms, as in production. Revoking
            # through the same process invalidates the cached token.
            "[cache]\nenabled = true\nbackend = dogpile.cache.memory\n")
        return path

    def _manage(self, *args: str) -> None:
        cmd = [str(self.venv / "bin" / "keystone-manage"), "--config-file", str(self.conf()), *args]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"keystone-manage {args[0]} failed: {done.stderr[-3000:]}")

    @classmethod
    def create(cls, root: Path) -> KeystoneSite:
        """Install (first time), then set up keys, the database and the bootstrap admin."""
        site = cls(root, keystone_venv())
        root.mkdir(parents=True, exist_ok=True)
        user, group = str(os.getuid()), str(os.getgid())
        for what in ("fernet_setup", "credential_setup"):
            site._manage(what, "--keystone-user", user, "--keystone-group", group)
        site._manage("db_sync")
        site.port = free_port()
        site._manage("bootstrap", "--bootstrap-password", ADMIN_PASSWORD,
                     "--bootstrap-admin-url", f"http://127.0.0.1:{site.port}/v3",
                     "--bootstrap-public-url", f"http://127.0.0.1:{site.port}/v3",
                     "--bootstrap-internal-url", f"http://127.0.0.1:{site.port}/v3",
                     "--bootstrap-region-id", "RegionOne")
        (root / "statelock_keystone_wsgi.py").write_text(WRAPPER)
        return site

    def start(self, expiration_s: int = 3600, port: int | None = None) -> KeystoneServer:
        """Start a server over this site (not waiting for it; see ``wait``)."""
        port = port or free_port()
        name = f"keystone-{port}"
        conf = self.conf(expiration_s, f"{name}.conf")
        log = self.root / f"{name}.log"
        env = {"PATH": f"{self.venv / 'bin'}:/usr/bin:/bin", "OS_KEYSTONE_CONFIG_FILES": str(conf),
               "PYTHONWARNINGS": "ignore"}
        with log.open("ab") as out:
            proc = subprocess.Popen(
                [str(self.venv / "bin" / "gunicorn"), "--bind", f"127.0.0.1:{port}",
                 "--worker-class", "gthread", "--workers", "1", "--threads", "16", "--timeout", "120",
                 "--no-control-socket", "--access-logfile", "-", "--access-logformat", "%(m)s %(U)s %(s)s %(M)sms",
                 "--pythonpath", str(self.root), "statelock_keystone_wsgi:application"],
                cwd=self.root, env=env, stdout=out, stderr=subprocess.STDOUT)
        server = KeystoneServer(f"http://127.0.0.1:{port}", proc, log)
        self.servers.append(server)
        return server

    def serve(self, expiration_s: int = 3600) -> KeystoneServer:
        """Start a server on the bootstrap port (the catalog's) and wait for it."""
        server = self.start(expiration_s, self.port)
        wait(server)
        return server

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


def wait(server: KeystoneServer, timeout_s: float = 90.0) -> None:
    """Return once ``GET /v3`` answers 200; raise with the log if the server died or timed out."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(f"keystone exited with {server.proc.returncode}: {server.log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(server.auth_url, timeout=5) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    server.stop()
    raise RuntimeError(f"keystone did not start in {timeout_s}s: {server.log.read_text()[-3000:]}")


class KeystoneError(Exception):
    """A Keystone REST call answered with an unexpected status."""


class KeystoneAdmin:
    """Users, projects, roles and tokens through Keystone's REST API, as the bootstrap admin."""

    def __init__(self, url: str, password: str = ADMIN_PASSWORD) -> None:
        self.url = url
        self._password = password
        self._admin_token: str | None = None

    def call(self, method: str, path: str, body: Any = None, token: str | None = None,
             headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        """One request; returns (status, headers, parsed body or None)."""
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        if token is None and not (method == "POST" and path.startswith("/v3/auth/tokens")):
            token = self.admin_token()
        if token is not None:
            hdrs["X-Auth-Token"] = token
        req = urllib.request.Request(self.url + path, data=data, headers=hdrs, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as resp:
                raw = resp.read()
                return resp.status, dict(resp.headers), json.loads(raw) if raw else None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                doc = json.loads(raw) if raw else None
            except ValueError:
                doc = raw.decode(errors="replace")
            return exc.code, dict(exc.headers), doc

    def _ok(self, method: str, path: str, body: Any = None, **kw: Any) -> Any:
        status, _, doc = self.call(method, path, body, **kw)
        if status >= 300:
            raise KeystoneError(f"{method} {path}: {status} {doc}")
        return doc

    def token(self, user: str, password: str, project: str | None = None, system: bool = False,
              domain: str = "default") -> str:
        """A token for a user: project-scoped, system-scoped or unscoped."""
        auth: dict[str, Any] = {"identity": {"methods": ["password"], "password": {"user": {
            "name": user, "domain": {"id": domain}, "password": password}}}}
        if project is not None:
            auth["scope"] = {"project": {"name": project, "domain": {"id": domain}}}
        elif system:
            auth["scope"] = {"system": {"all": True}}
        status, headers, doc = self.call("POST", "/v3/auth/tokens?nocatalog", {"auth": auth})
        if status != 201:
            raise KeystoneError(f"token for {user}: {status} {doc}")
        return headers["X-Subject-Token"]

    def admin_token(self) -> str:
        if self._admin_token is None:
            self._admin_token = self.token("admin", self._password, project="admin")
        return self._admin_token

    def revoke(self, token: str) -> None:
        """Revoke a token (``DELETE /v3/auth/tokens``)."""
        self._ok("DELETE", "/v3/auth/tokens", headers={"X-Subject-Token": token}, token=self.admin_token())

    def _find(self, kind: str, name: str) -> str | None:
        doc = self._ok("GET", f"/v3/{kind}?name={name}")
        found = doc[kind]
        return str(found[0]["id"]) if found else None

    def role(self, name: str) -> str:
        """The id of a role, created if missing."""
        return self._find("roles", name) or str(self._ok("POST", "/v3/roles", {"role": {"name": name}})["role"]["id"])

    def project(self, name: str) -> str:
        """The id of a project in the default domain, created if missing."""
        return self._find("projects", name) or str(self._ok(
            "POST", "/v3/projects", {"project": {"name": name, "domain_id": "default"}})["project"]["id"])

    def user(self, name: str, password: str) -> str:
        """The id of a new user in the default domain."""
        doc = self._ok("POST", "/v3/users", {"user": {"name": name, "password": password,
                                                     "domain_id": "default"}})
        return str(doc["user"]["id"])

    def grant(self, user_id: str, project_id: str, role: str) -> None:
        self._ok("PUT", f"/v3/projects/{project_id}/users/{user_id}/roles/{self.role(role)}")

    def user_id(self, name: str) -> str:
        found = self._find("users", name)
        if found is None:
            raise KeystoneError(f"no user {name}")
        return found
