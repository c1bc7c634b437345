"""A real, throwaway PostgreSQL cluster for tests, and a fresh database per test.

``pg_server`` (session scope) runs Debian's server binaries: ``initdb`` into a
temporary directory (as the ``postgres`` user when the tests run as root, since
initdb refuses root), then ``pg_ctl start`` on a free loopback port with its unix
socket in the same directory; the cluster is stopped and removed at the end of the
session. There is no skip: when the binaries are missing, the tests that need them
fail and say what to install. ``pg_url`` creates an empty database for one test; ``store`` and ``other`` are two
replicas' lock stores opened on it (``TIMEOUT_S``).

Use them from a test module with
``from tests.support.postgres import pg_server_fixture, pg_url_fixture  # noqa: F401``
(and ``pg_store_fixture``, ``pg_other_fixture`` for the stores).
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from sidecar.locks.postgres import PostgresLockStore
from tests.support.locks import pg_sql
from tests.support.process import free_port

SUPERUSER = "statelock"
TIMEOUT_S = 1.0
INSTALL_HINT = ("PostgreSQL server binaries not found (looked for initdb in $STATELOCK_PG_BINDIR, "
                "/usr/lib/postgresql/*/bin and $PATH): install them, e.g. apt-get install postgresql-15")


def find_bindir() -> Path | None:
    """The directory holding initdb, pg_ctl and postgres, or None."""
    candidates: list[str] = []
    if os.environ.get("STATELOCK_PG_BINDIR"):
        candidates.append(os.environ["STATELOCK_PG_BINDIR"])
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=_version_key, reverse=True)
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(str(Path(on_path).parent))
    for candidate in candidates:
        path = Path(candidate)
        if all((path / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return path
    return None


def _version_key(path: str) -> int:
    part = Path(path).parent.name
    return int(part) if part.isdigit() else 0


@dataclass
class PgServer:
    """A running throwaway cluster."""

    bindir: Path
    root: Path
    port: int
    run_as: str | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, dbname: str = "postgres") -> str:
        """A postgresql:// URL for a database of this cluster over loopback TCP."""
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self) -> str:
        """Create an empty database and return its URL."""
        name = "t_" + uuid.uuid4().hex[:16]
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def advisory_locks(self, dbname: str | None = None) -> int:
        """How many advisory locks are held (or awaited) in the cluster, or in one database."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            row = conn.execute(
                "SELECT count(*) FROM pg_locks l LEFT JOIN pg_database d ON d.oid = l.database "
                "WHERE l.locktype = 'advisory' AND (%s::text IS NULL OR d.datname = %s::text)",
                (dbname, dbname)).fetchone()
        return int(row[0]) if row else 0

    def _run(self, *argv: str) -> subprocess.CompletedProcess[str]:
        cmd = list(argv)
        if self.run_as is not None:
            cmd = ["runuser", "-u", self.run_as, "--", *cmd]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)

    def start(self) -> None:
        done = self._run(str(self.bindir / "initdb"), "-D", str(self.data), "-U", SUPERUSER,
                         "-A", "trust", "-E", "UTF8", "--locale=C", "--no-sync")
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed ({done.returncode}): {done.stderr or done.stdout}")
        options = " ".join([
            "-c listen_addresses=127.0.0.1", f"-c port={self.port}",
            f"-c unix_socket_directories={self.root}", "-c max_connections=200",
            "-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off",
        ])
        done = self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l",
                         str(self.root / "server.log"), "-o", options, "-w", "-t", "60", "start")
        if done.returncode != 0:
            log = (self.root / "server.log")
            raise RuntimeError(f"pg_ctl start failed ({done.returncode}): {done.stderr}\n"
                               f"{log.read_text() if log.exists() else ''}")

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w",
                  "stop")


def start_server() -> PgServer:
    """Start a throwaway cluster; raises RuntimeError (with what to install) when it can't."""
    bindir = find_bindir()
    if bindir is None:
        raise RuntimeError(INSTALL_HINT)
    run_as: str | None = None
    root = Path(tempfile.mkdtemp(prefix="statelock-pg-"))
    if os.geteuid() == 0:
        run_as = "postgres"
        user = pwd.getpwnam(run_as)
        os.chown(root, user.pw_uid, user.pw_gid)
    server = PgServer(bindir, root, free_port(), run_as)
    try:
        server.start()
    except BaseException:
        shutil.rmtree(root, ignore_errors=True)
        raise
    return server


@pytest.fixture(scope="session", name="pg_server")
def pg_server_fixture() -> Iterator[PgServer]:
    """A PostgreSQL cluster for the whole test session (fails, never skips, without binaries)."""
    try:
        server = start_server()
    except RuntimeError as exc:
        pytest.fail(str(exc))
    try:
        yield server
    finally:
        server.stop()
        with contextlib.suppress(OSError):
            shutil.rmtree(server.root)


@pytest.fixture(name="pg_url")
def pg_url_fixture(pg_server: PgServer) -> str:
    """The URL of a new, empty database for one test."""
    return pg_server.create_database()


async def open_pg_store(url: str, timeout_s: float = TIMEOUT_S) -> PostgresLockStore:
    """A PostgreSQL lock store on ``url``, opened (schema migrated, listener started)."""
    store = PostgresLockStore(url, pool_size=4, timeout_s=timeout_s)
    await store.open()
    return store


@pytest.fixture(name="store")
async def pg_store_fixture(pg_url: str) -> AsyncIterator[PostgresLockStore]:
    """A replica's lock store on the test's database."""
    store = await open_pg_store(pg_url)
    yield store
    await store.close()


@pytest.fixture(name="other")
async def pg_other_fixture(pg_url: str) -> AsyncIterator[PostgresLockStore]:
    """A second replica's lock store on the same database."""
    store = await open_pg_store(pg_url)
    yield store
    await store.close()


def advisory_locks(url: str) -> int:
    """How many advisory locks are held or awaited in the cluster of ``url``."""
    return int(pg_sql(url, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'")[0][0])
