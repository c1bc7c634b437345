"""The lock store protocol: what the request path needs from a lock table.

Implementations: ``sidecar.locks.sqlite`` and ``sidecar.locks.postgres``; pick one by
URL with ``sidecar.locks.factory.open_lock_store``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol

from sidecar.guard import Guard
from sidecar.identity import Subject
from sidecar.locks.model import Lock, LockFilter
from sidecar.vocab import LockState


class LockStore(Protocol):
    """Where locks live. Every method raises LockStoreError when the store fails.

    "In force" means not lifted and not expired: every read that decides (the first
    four methods and ``count_in_force_by_kind``) sees only locks in force.
    """

    async def open(self) -> None:
        """Connect and migrate the schema to the current version."""

    async def close(self) -> None:
        """Release connections."""

    def guard(self, timeout_s: float) -> Guard:
        """The guard that orders state changes against lock changes on this store.

        SQLite: its in-process ``InstanceGuard`` (one process per file; the same guard
        on every call). PostgreSQL: advisory locks shared by every replica, waiting at
        most ``timeout_s`` before entering raises LockStoreError.
        """
        ...

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

    async def lift(self, lock_ids: Sequence[str], lifted_by: Subject, decision_id: str, now: datetime) -> int:
        """Mark locks lifted by ``lifted_by`` (user and project kept) at ``now``, in one transaction.

        The rows stay, as history, with ``decision_id``, the decision that lifted them.
        Returns how many were lifted: unknown ids and locks lifted already are not
        touched and not counted.
        """

    async def get(self, lock_id: str) -> Lock | None:
        """One lock by id, expired, lifted or not, or None."""

    async def find(self, filters: LockFilter, now: datetime) -> list[Lock]:
        """Locks matching the filters, oldest first.

        ``LockFilter(scope="instance", target=instance_id)`` is the instance's history:
        every lock ever placed on it, in force, expired and lifted.
        """

    async def set_state(self, lock_id: str, state: LockState, note: str = "") -> None:
        """Mark a lock active, pending or failed (suspend-lock bookkeeping); a lifted lock stays lifted."""

    async def pending_locks(self) -> list[Lock]:
        """Locks whose suspend-lock did not finish (state ``pending``)."""

    async def count_in_force_by_kind(self, now: datetime) -> dict[str, int]:
        """How many locks of each kind are in force."""

    async def count(self) -> int:
        """How many rows the table holds."""

    async def schema_version(self) -> int:
        """The schema version the database is at."""

