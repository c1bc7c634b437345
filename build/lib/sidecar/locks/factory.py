"""The lock store for a ``lockstore.url``: SQLite or PostgreSQL, chosen by the URL's scheme.

Each implementation is imported only when its scheme is configured, so psycopg loads
only for a PostgreSQL URL.
"""

from __future__ import annotations

from sidecar.errors import ConfigError
from sidecar.locks.store import LockStore

SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres_url(url: str) -> bool:
    """True for a ``postgresql://`` (or ``postgres://``) URL."""
    return url.startswith(POSTGRES_SCHEMES)


def open_lock_store(url: str, *, pool_size: int = 20, timeout_s: float = 5.0) -> LockStore:
    """The store for a lockstore URL (not yet opened); ConfigError for unknown schemes.

    ``pool_size`` and ``timeout_s`` apply to PostgreSQL (connections per replica; the
    longest wait for a connection, a guard or a query).
    """
    if url.startswith(SQLITE_SCHEME):
        from sidecar.locks.sqlite import SqliteLockStore  # NOTE: each store loads only when configured.

        return SqliteLockStore(url)
    if is_postgres_url(url):
        from sidecar.locks.postgres import PostgresLockStore

        return PostgresLockStore(url, pool_size=pool_size, timeout_s=timeout_s)
    raise ConfigError(f"lockstore.url: unsupported scheme {url.partition(':')[0]!r} "
                      "(use sqlite:///path/locks.db or postgresql://user@host:5432/dbname)")
