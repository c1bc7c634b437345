"""A ``statelock serve`` for the console tests: the fake driver, SQLite, a bundle of its own, candidates.

``ConsoleServer.start(root)`` copies ``policies/`` to ``root/bundle`` (a test may change
it: the engine reloads it), lays out candidate bundles under ``root/candidates``
(``current``: the same policy; ``deny-all``; ``allow-all``), writes the config and
starts the process, returning once ``/statelock/v1/livez`` answers. ``api`` calls
Statelock's HTTP API with urllib (a token in noauth mode).
"""

from __future__ import annotations

import json
import os
import shutil
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.support.paths import POLICIES, ROOT
from tests.support.process import free_port, terminate

INSTANCES = ("6e5c3c2e-3c39-4f0a-9d3f-7d1b0a0a0a01", "6e5c3c2e-3c39-4f0a-9d3f-7d1b0a0a0a02",
             "6e5c3c2e-3c39-4f0a-9d3f-7d1b0a0a0a03")
AUDITOR = "audit-svc:service:auditor"
ADMIN = "admin:admin"
MEMBER = "alice:demo"
LEGAL = "legal-svc:service:legal"
BILLING = "billing-svc:service:billing"

_DENY_ALL = ('package statelock.authz\n\ndecision := {"allow": false, "status": 403, '
             '"reasons": ["candidate: nothing is allowed"], "lock_ids": [], "overrides": []}\n')
_ALLOW_ALL = ('package statelock.authz\n\ndecision := {"allow": true, "status": 200, '
              '"reasons": [], "lock_ids": [], "overrides": []}\n')


def bundle(root: Path, revision: str, rego: str | None = None) -> Path:
    """A bundle at ``root``: a copy of ``policies/`` (or one module ``rego``) with ``revision``."""
    if rego is None:
        shutil.copytree(POLICIES, root, ignore=shutil.ignore_patterns("*_test.rego"))
    else:
        (root / "statelock").mkdir(parents=True)
        (root / "statelock" / "authz.rego").write_text(rego)
    (root / ".manifest").write_text(json.dumps({"revision": revision, "roots": ["statelock"]}))
    return root


@dataclass
class ConsoleServer:
    """A running Statelock and its files."""

    root: Path
    port: int
    proc: subprocess.Popen[bytes]
    scheme: str = "http"
    log: Path = field(default_factory=Path)
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}"

    @property
    def audit_path(self) -> Path:
        return self.root / "decisions.jsonl"

    @classmethod
    def start(cls, root: Path, identity: dict[str, Any] | None = None, tls: dict[str, str] | None = None,
              extra: dict[str, Any] | None = None) -> ConsoleServer:
        root.mkdir(parents=True, exist_ok=True)
        bundle(root / "bundle", "console-test-1")
        candidates = root / "candidates"
        candidates.mkdir()
        bundle(candidates / "current", "candidate-current")
        bundle(candidates / "deny-all", "candidate-deny-all", _DENY_ALL)
        bundle(candidates / "allow-all", "candidate-allow-all", _ALLOW_ALL)
        raw: dict[str, Any] = {
            "backend": {"kind": "driver", "driver": {"name": "fake", "instances": [
                {"id": iid, "name": f"vm-{n}", "project_id": "demo", "user_id": "alice"}
                for n, iid in enumerate(INSTANCES)]}},
            "identity": identity or {"mode": "noauth"},
            "lockstore": {"url": f"sqlite:///{root}/locks.db"},
            "policy": {"engine": "embedded", "bundle": str(root / "bundle")},
            "audit": {"path": str(root / "decisions.jsonl"), "checkpoint_interval_s": 1.0, "replica": "console-1"},
            "console": {"backtest_dir": str(candidates)},
            **(extra or {}),
        }
        if tls:
            raw["tls"] = tls
        config = root / "statelock.yaml"
        config.write_text(yaml.safe_dump(raw))
        port = free_port()
        log = root / "statelock.log"
        with log.open("ab") as out:
            proc = subprocess.Popen([sys.executable, "-m", "sidecar", "serve", "--config", str(config)], cwd=ROOT,
                                    stdout=out, stderr=subprocess.STDOUT,
                                    env={"STATELOCK_LISTEN": f"127.0.0.1:{port}", "PATH": os.environ.get(
                                        "PATH", "/usr/bin:/bin")})
        server = cls(root, port, proc, "https" if tls else "http", log)
        server.wait()
        return server

    def wait(self, timeout_s: float = 30.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"statelock exited with {self.proc.returncode}: {self.log.read_text()[-3000:]}")
            try:
                self.api("GET", "/statelock/v1/livez")
                return
            except (urllib.error.URLError, OSError):
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"statelock did not start in {timeout_s}s: {self.log.read_text()[-3000:]}")

    def api(self, method: str, path: str, body: Any = None, token: str | None = None,
            headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], Any]:
        """One call; (status, headers, parsed JSON body or None)."""
        data = json.dumps(body).encode() if body is not None else None
        hdrs = {"Content-Type": "application/json", **(headers or {})}
        if token:
            hdrs["X-Auth-Token"] = token
        req = urllib.request.Request(self.url + path, data=data, headers=hdrs, method=method)
        context = ssl._create_unverified_context() if self.scheme == "https" else None
        try:
            with urllib.request.urlopen(req, timeout=10, context=context) as resp:
                raw = resp.read()
                return resp.status, dict(resp.headers), _json(raw)
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), _json(exc.read())

    def decisions(self, **filters: str) -> list[dict[str, Any]]:
        """``GET /statelock/v1/decisions`` as an auditor."""
        query = urllib.parse.urlencode(filters)
        status, _, doc = self.api("GET", f"/statelock/v1/decisions?{query}", token=AUDITOR)
        assert status == 200, doc
        return list(doc["decisions"])

    def records(self) -> list[dict[str, Any]]:
        """The decision records in the active log file, oldest first (completions left out)."""
        lines = self.audit_path.read_text().splitlines()
        return [r for r in map(json.loads, filter(None, lines)) if r.get("type") != "completion"]

    def stop(self) -> None:
        terminate(self.proc)


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")
