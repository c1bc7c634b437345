"""The lock store protocol, and the choice of implementation by URL."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from sidecar.errors import ConfigError
from sidecar.locks.model import Lock, LockFilter


class LockStore(Protocol):
    """Where locks live. Every method raises LockStoreError when the store fails."""

    async def open(self) -> None:
        """Connect and migrate the schema to the current version."""

    async def close(self) -> None:
        """Release connections."""

    async def effective_locks(
        self, instance_id: str | None, project_id: str | None, host: str | None, now: datetime
    ) -> list[Lock]:
        """Locks in force at ``now`` on the instance, its project or its host."""

    async def instance_locks(self, instance_id: str, now: datetime) -> tuple[list[Lock], bool]:
        """Locks in force on the instance itself, and whether any project or host lock is.

        One round trip for the common case; when the flag is true the caller resolves
        the instance's project and host and asks ``effective_locks``.
        """

    async def locks_on_instances(self, instance_ids: Sequence[str], now: datetime) -> dict[str, list[Lock]]:
        """Instance-scope locks in force on each of the instances (one round trip)."""

    async def has_scoped_locks(self, now: datetime) -> bool:
        """True when any project or host lock is in force (then targets must be resolved)."""

    async def add(self, lock: Lock) -> None:
        """Insert a lock durably."""

    async def remove(self, lock_ids: Sequence[str]) -> int:
        """Delete locks by id in one transaction; returns how many were removed."""

    async def get(self, lock_id: str) -> Lock | None:
        """One lock by id, expired or not, or None."""

    async def find(self, filters: LockFilter, now: datetime) -> list[Lock]:
        """Locks matching the filters, oldest first."""

    async def set_state(self, lock_id: str, state: str, note: str = "") -> None:
        """Mark a lock active, pending or failed (suspend-lock bookkeeping)."""

    async def pending_locks(self) -> list[Lock]:
        """Locks whose suspend-lock did not finish (state ``pending``)."""

    async def count_in_force_by_kind(self, now: datetime) -> dict[str, int]:
        """How many locks of each kind are in force."""

    async def count(self) -> int:
        """How many rows the table holds."""


POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def filter_where(filters: LockFilter, now: Any, mark: str) -> tuple[str, list[Any]]:
    """The WHERE clause (or "") and its arguments for ``filters``; ``mark`` is ? or %s."""
    clauses: list[str] = []
    args: list[Any] = []
    for column, value in (("scope", filters.scope), ("target", filters.target),
                          ("kind", filters.kind), ("owner_user_id", filters.owner)):
        if value is not None:
            clauses.append(f"{column} = {mark}")
            args.append(value)
    if filters.active is True:
        clauses.append(f"(expires_at IS NULL OR expires_at > {mark})")
        args.append(now)
    elif filters.active is False:
        clauses.append(f"expires_at IS NOT NULL AND expires_at <= {mark}")
        args.append(now)
    return (" WHERE " + " AND ".join(clauses) if clauses else ""), args


def open_lock_store(url: str, *, pool_size: int = 20, timeout_s: float = 5.0) -> LockStore:
    """The store for a lockstore URL (not yet opened); ConfigError for unknown schemes.

    ``pool_size`` and ``timeout_s`` apply to PostgreSQL (connections per replica; the
    longest wait for a connection, a guard or a query).
    """
    if url.startswith("sqlite:///"):
        from sidecar.locks.sqlite import SqliteLockStore

        return SqliteLockStore(url)
    if url.startswith(POSTGRES_SCHEMES):
        from sidecar.locks.postgres import PostgresLockStore

        return PostgresLockStore(url, pool_size=pool_size, timeout_s=timeout_s)
    raise ConfigError(f"lockstore.url: unsupported scheme {url.partition(':')[0]!r}")
