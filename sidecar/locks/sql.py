"""The lock table's SQL, written once: columns, DDL, row mapping, the in-force clause, filters.

Both stores hold the same table. A ``Dialect`` says how one database spells what
differs (its placeholder, how it stores a time and the owner's roles, how a list of
values is bound); ``LockSql`` builds from it every statement the stores share, and
maps rows to ``Lock`` and back. Nothing here does I/O or imports a database driver.
Each builder returns ``(sql, args)``, or the SQL alone when its arguments are
documented, so a store only runs statements.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sidecar.identity import Subject
from sidecar.locks.model import Lock, LockFilter

COLUMNS: tuple[str, ...] = (
    "id", "kind", "scope", "target", "reason", "owner_user_id", "owner_project_id", "owner_roles",
    "created_at", "expires_at", "state", "source", "note",
)
_COLUMN_LIST = ", ".join(COLUMNS)
_ORDER = " ORDER BY created_at, id"
_SCOPED = "scope <> 'instance'"

SCHEMA_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)"


@dataclass(frozen=True)
class Dialect:
    """How one database spells what the two stores do differently.

    ``time_type`` and ``roles_type`` are column types; the ``encode_``/``decode_``
    functions convert a value to a bound argument and a fetched column back.
    ``expand_lists``: a list is bound as one placeholder per value (``IN (?, ?)``)
    rather than as one array (``= ANY(%s)``).
    """

    name: str
    mark: str
    time_type: str
    roles_type: str
    encode_time: Callable[[datetime], Any]
    decode_time: Callable[[Any], datetime]
    encode_roles: Callable[[tuple[str, ...]], Any]
    decode_roles: Callable[[Any], tuple[str, ...]]
    expand_lists: bool


def table_migrations(d: Dialect) -> tuple[str, ...]:
    """The lock table's numbered migrations in the dialect's types (version n is item n-1)."""
    return (
        f"""
        CREATE TABLE locks (
            id text PRIMARY KEY,
            kind text NOT NULL,
            scope text NOT NULL,
            target text NOT NULL,
            reason text NOT NULL,
            owner_user_id text NOT NULL,
            owner_project_id text NOT NULL,
            owner_roles {d.roles_type} NOT NULL,
            created_at {d.time_type} NOT NULL,
            expires_at {d.time_type},
            state text NOT NULL DEFAULT 'active',
            source text NOT NULL DEFAULT 'api',
            note text NOT NULL DEFAULT ''
        );
        CREATE INDEX locks_scope_target ON locks (scope, target);
        CREATE INDEX locks_state ON locks (state) WHERE state <> 'active';
        CREATE INDEX locks_scoped ON locks (scope) WHERE {_SCOPED};
        """,
    )


def to_run(migrations: Sequence[str], current: int) -> list[tuple[int, str]]:
    """The (version, script) pairs that take a database from version ``current`` to the last."""
    return list(enumerate(migrations[current:], start=current + 1))


class LockSql:
    """The shared statements of the lock table in one dialect (see the module docstring).

    Arguments of the plain statements: ``insert``, ``params(lock)``; ``get``, the lock
    id; ``set_state``, the state, the note and the lock id; ``instance`` and
    ``own_and_scoped``, the instance id and ``encode_now(now)``; ``scoped``,
    ``scoped_exists`` and ``count_by_kind``, ``encode_now(now)``; ``pending``,
    ``count`` and ``version``, none. ``in_force`` is the clause true for a row in
    force at its one argument.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        m = dialect.mark
        self.select = f"SELECT {_COLUMN_LIST} FROM locks"
        self.in_force = f"(expires_at IS NULL OR expires_at > {m})"
        self.insert = f"INSERT INTO locks ({_COLUMN_LIST}) VALUES ({', '.join(m for _ in COLUMNS)})"
        self.get = f"{self.select} WHERE id = {m}"
        self.pending = f"{self.select} WHERE state = 'pending'{_ORDER}"
        self.set_state = f"UPDATE locks SET state = {m}, note = {m} WHERE id = {m}"
        self.count_by_kind = f"SELECT kind, count(*) FROM locks WHERE {self.in_force} GROUP BY kind"
        self.count = "SELECT count(*) FROM locks"
        self.version = "SELECT coalesce(max(version), 0) FROM schema_version"
        self.scoped_exists = f"SELECT 1 FROM locks WHERE {_SCOPED} AND {self.in_force} LIMIT 1"
        self.scoped = f"{self.select} WHERE {_SCOPED} AND {self.in_force}{_ORDER}"
        self.own_and_scoped = (f"{self.select} WHERE ((scope = 'instance' AND target = {m}) OR {_SCOPED}) "
                               f"AND {self.in_force}{_ORDER}")
        self.instance = f"{self.select} WHERE scope = 'instance' AND target = {m} AND {self.in_force}{_ORDER}"

    def _time(self, when: datetime | None) -> Any:
        return None if when is None else self.dialect.encode_time(when)

    def params(self, lock: Lock) -> tuple[Any, ...]:
        """The arguments of ``insert`` for a lock, in ``COLUMNS`` order."""
        return (lock.id, lock.kind, lock.scope, lock.target, lock.reason, lock.owner.user_id,
                lock.owner.project_id, self.dialect.encode_roles(lock.owner.roles),
                self._time(lock.created_at), self._time(lock.expires_at), lock.state, lock.source,
                lock.note)

    def lock(self, row: Sequence[Any]) -> Lock:
        """The Lock of a row fetched in ``COLUMNS`` order."""
        d = self.dialect
        return Lock(
            id=row[0], kind=row[1], scope=row[2], target=row[3], reason=row[4],
            owner=Subject(row[5], row[6], d.decode_roles(row[7])),
            created_at=d.decode_time(row[8]),
            expires_at=None if row[9] is None else d.decode_time(row[9]),
            state=row[10], source=row[11], note=row[12],
        )

    def member(self, column: str, values: Sequence[Any]) -> tuple[str, list[Any]]:
        """``column`` is one of ``values`` (not empty): the clause and its arguments."""
        if self.dialect.expand_lists:
            return f"{column} IN ({', '.join(self.dialect.mark for _ in values)})", list(values)
        return f"{column} = ANY({self.dialect.mark})", [list(values)]

    def on_instances(self, instance_ids: Sequence[str], now: datetime) -> tuple[str, list[Any]]:
        """Instance-scope locks in force on any of ``instance_ids`` (not empty)."""
        clause, args = self.member("target", instance_ids)
        return (f"{self.select} WHERE scope = 'instance' AND {clause} AND {self.in_force}{_ORDER}",
                [*args, self.encode_now(now)])

    def effective(self, pairs: Sequence[tuple[str, str]], now: datetime) -> tuple[str, list[Any]]:
        """Locks in force on any of the (scope, target) ``pairs`` (not empty)."""
        m = self.dialect.mark
        where = " OR ".join(f"(scope = {m} AND target = {m})" for _ in pairs)
        return (f"{self.select} WHERE ({where}) AND {self.in_force}{_ORDER}",
                [v for pair in pairs for v in pair] + [self.encode_now(now)])

    def remove(self, lock_ids: Sequence[str]) -> tuple[str, list[Any]]:
        """Delete the locks ``lock_ids`` (not empty)."""
        clause, args = self.member("id", lock_ids)
        return f"DELETE FROM locks WHERE {clause}", args

    def find(self, filters: LockFilter, now: datetime) -> tuple[str, list[Any]]:
        """The locks matching ``filters`` at ``now``, oldest first."""
        m = self.dialect.mark
        clauses: list[str] = []
        args: list[Any] = []
        for column, value in (("scope", filters.scope), ("target", filters.target),
                              ("kind", filters.kind), ("owner_user_id", filters.owner)):
            if value is not None:
                clauses.append(f"{column} = {m}")
                args.append(value)
        if filters.active is True:
            clauses.append(self.in_force)
            args.append(self.encode_now(now))
        elif filters.active is False:
            clauses.append(f"expires_at IS NOT NULL AND expires_at <= {m}")
            args.append(self.encode_now(now))
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return f"{self.select}{where}{_ORDER}", args

    def encode_now(self, now: datetime) -> Any:
        """``now`` as the argument of ``in_force``."""
        return self.dialect.encode_time(now)
