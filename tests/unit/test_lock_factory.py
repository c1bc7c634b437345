"""Unit tests for sidecar.locks.factory: the store by URL, and psycopg only for PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from sidecar.errors import ConfigError
from sidecar.locks.factory import is_postgres_url, open_lock_store
from sidecar.locks.postgres import PostgresLockStore
from sidecar.locks.sqlite import SqliteLockStore
from tests.support.paths import ROOT


async def test_open_lock_store_picks_sqlite_by_url(tmp_path: Path) -> None:
    s = open_lock_store(f"sqlite:///{tmp_path / 'locks.db'}")
    assert isinstance(s, SqliteLockStore)
    await s.open()
    assert await s.count() == 0
    await s.close()


@pytest.mark.parametrize("url", ["postgresql://statelock@db:5432/locks", "postgres://statelock@db/locks"])
def test_open_lock_store_picks_postgres_by_url(url: str) -> None:
    s = open_lock_store(url, pool_size=3, timeout_s=2.0)
    assert isinstance(s, PostgresLockStore) and s.timeout_s == 2.0
    assert is_postgres_url(url)


@pytest.mark.parametrize("url", ["mysql://db/locks", "sqlite://relative.db", "locks.db", ""])
def test_unknown_schemes_are_config_errors_naming_the_key(url: str) -> None:
    with pytest.raises(ConfigError, match=r"lockstore\.url: unsupported scheme .*use sqlite:///"):
        open_lock_store(url)
    assert not is_postgres_url(url)


LOADED = """
import sys
from sidecar.app import create_app
from sidecar.locks.factory import open_lock_store
store = open_lock_store(sys.argv[1])
print(type(store).__name__, sorted(m for m in sys.modules if m.startswith(("psycopg", "sidecar.locks.p"))))
"""


@pytest.mark.parametrize(("url", "expected"), [
    ("sqlite:///{tmp}/locks.db", "SqliteLockStore []"),
    ("postgresql://statelock@db/locks", "PostgresLockStore ['psycopg"),
])
def test_the_postgresql_modules_load_only_for_a_postgresql_url(tmp_path: Path, url: str, expected: str) -> None:
    done = subprocess.run([sys.executable, "-c", LOADED, url.format(tmp=tmp_path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.startswith(expected), done.stdout + done.stderr
