"""A real OPA server for tests: ``opa run --server`` on a loopback port, serving a bundle.

``opa_binary()`` finds OPA on ``PATH`` (``make test`` puts ``.tools/bin`` first) or in
``<repo>/.tools/bin/opa`` (``sidecar.cli.policy.find_opa``), and fails the test with
the way to get it when neither exists. ``OpaServer`` starts ``opa run --server --bundle DIR`` (test files ignored),
so OPA reports the ``.manifest`` revision in ``provenance`` and, with console
decision logs on, a ``decision_id`` with every answer. ``stop``/``kill`` end it
mid-test and ``start`` brings it back on the same port. The ``opa_server`` fixture is
one server per session loaded with ``policies/``; tests that stop it must use their
own ``OpaServer``.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import pytest

from sidecar.errors import PolicyError
from sidecar.policy.wasm.compiler import find_opa
from tests.support.paths import POLICIES, ROOT
from tests.support.process import free_port, terminate

LOOPBACK = "127.0.0.1"


def opa_binary() -> str:
    """The OPA executable, found as ``statelock policy test`` finds it; fails the test if there is none."""
    try:
        return find_opa()
    except PolicyError as exc:
        pytest.fail(exc.message, pytrace=False)


def run_opa(*args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess[str]:
    """Run ``opa ARGS`` from the repository root and capture its output."""
    return subprocess.run([opa_binary(), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout_s, check=False)


class OpaServer:
    """One ``opa run --server`` process on loopback (see module docstring)."""

    def __init__(self, bundle: Path = POLICIES, port: int | None = None,
                 log_path: Path | None = None, decision_logs: bool = True) -> None:
        self.bundle = bundle
        # NOTE: OPA returns a decision_id only while decision logging is on; the console
        # logger costs about half a millisecond a query, so bulk tests turn it off.
        self._decision_log_args = ["--set", "decision_logs.console=true"] if decision_logs else []
        self.port = port or free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        if log_path is None:
            fd, name = tempfile.mkstemp(prefix="opa-", suffix=".log")
            os.close(fd)
            log_path = Path(name)
        self.log_path = log_path
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout_s: float = 20.0) -> None:
        """Start OPA and return once ``/health?bundles`` answers 200; raises RuntimeError if not."""
        if self.running:
            return
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            [opa_binary(), "run", "--server", "--addr", f"{LOOPBACK}:{self.port}",
             "--log-level", "error", *self._decision_log_args,
             "--ignore", "*_test.rego", "--bundle", str(self.bundle)],
            cwd=ROOT, stdout=self._log, stderr=self._log, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                self._close_log()
                raise RuntimeError(f"opa exited with {self._proc.returncode}: {self.log_tail()}")
            if self.healthy():
                return
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"opa did not become healthy in {timeout_s}s: {self.log_tail()}")

    def healthy(self) -> bool:
        """True when OPA answers ``GET /health?bundles`` with 200."""
        try:
            status, _ = self.request("GET", "/health?bundles", timeout_s=1.0)
        except OSError:
            return False
        return status == 200

    def request(self, method: str, path: str, body: Any = None,
                timeout_s: float = 5.0) -> tuple[int, Any]:
        """One request on a fresh connection; returns (status, parsed JSON body or None)."""
        conn = http.client.HTTPConnection(LOOPBACK, self.port, timeout=timeout_s)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(method, path, body=payload,
                         headers={"Content-Type": "application/json"} if payload else {})
            resp = conn.getresponse()
            data = resp.read()
        finally:
            conn.close()
        return resp.status, json.loads(data) if data else None

    def stop(self) -> None:
        """Terminate OPA (SIGTERM) and wait for it; a no-op when it is not running."""
        if self._proc is not None:
            terminate(self._proc)
        self._close_log()

    def kill(self) -> None:
        """Kill OPA (SIGKILL) at once, as a crash would."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait()
        self._close_log()

    def log_tail(self, size: int = 4000) -> str:
        """The end of OPA's output, for failure messages."""
        try:
            return self.log_path.read_bytes()[-size:].decode(errors="replace")
        except OSError:
            return ""

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


class DecisionClient:
    """Queries one OPA decision path over a single keep-alive connection (fast, synchronous)."""

    def __init__(self, server: OpaServer, decision_path: str = "statelock/authz/decision") -> None:
        self._server = server
        self._path = f"/v1/data/{decision_path}"
        self._conn: http.client.HTTPConnection | None = None

    def query(self, input_doc: Any) -> tuple[int, dict[str, Any]]:
        """OPA's status and whole response document for ``input_doc`` (500 is an eval error)."""
        try:
            self.send(input_doc)
            return self.receive()
        except (http.client.HTTPException, OSError):
            self.close()  # NOTE: a keep-alive connection OPA closed; one fresh try
            self.send(input_doc)
            return self.receive()

    def send(self, input_doc: Any) -> None:
        """Send the query for ``input_doc`` without waiting (``receive`` reads the answer).

        Lets a caller do other work, such as the embedded engine's evaluation, while OPA works.
        """
        if self._conn is None:
            self._conn = http.client.HTTPConnection(LOOPBACK, self._server.port, timeout=10)
        self._conn.request("POST", self._path, body=json.dumps({"input": input_doc}),
                           headers={"Content-Type": "application/json"})

    def receive(self) -> tuple[int, dict[str, Any]]:
        """The answer to the last ``send``: OPA's status and response document."""
        assert self._conn is not None, "receive() without send()"
        resp = self._conn.getresponse()
        data = resp.read()
        doc: dict[str, Any] = json.loads(data) if data else {}
        return resp.status, doc

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


@contextlib.contextmanager
def running_opa(bundle: Path = POLICIES, log_path: Path | None = None,
                decision_logs: bool = True) -> Iterator[OpaServer]:
    """An OpaServer started for the block and stopped after it."""
    server = OpaServer(bundle, log_path=log_path, decision_logs=decision_logs)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def opa_server() -> Iterator[OpaServer]:
    """One OPA server for the session, serving the repository's ``policies/`` (do not stop it)."""
    with running_opa(POLICIES) as server:
        yield server
