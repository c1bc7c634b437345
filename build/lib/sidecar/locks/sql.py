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

from sidecar.errors import BadRequest, LockStoreError
from sidecar.identity import Subject
from sidecar.locks.model import Lock, LockFilter
from sidecar.vocab import LOCK_KINDS, LOCK_SCOPES, LOCK_SOURCES, LOCK_STATES, one_of

COLUMNS: tuple[str, ...] = (
    "id", "kind", "scope", "target", "reason", "owner_user_id", "owner_project_id", "owner_roles",
    "created_at", "expires_at", "state", "source", "note",
    "lifted_at", "lifted_by_user_id", "lifted_by_project_id", "lifted_decision_id",
    "placed_decision_id",
)
_COLUMN_LIST = ", ".join(COLUMNS)
_ORDER = " ORDER BY created_at, id"
_SCOPED = "scope <> 'instance'"
_NOT_LIFTED = "state <> 'lifted'"

SCHEMA_VERSION_TABLE = "CREATE TABLE IF NOT EXISTS schema_version (version integer NOT NULL)"


@dataclass(frozen=True)
class Dialect:
    """How one database spells what the two stores do differently.

    ``time_type`` and ``roles_type`` are column types; the ``encode_``/``decode_``
    functions convert a value to a bound argument and a fetched column back.
    ``expand_lists``: a list is bound as one placeholder per value (``IN (?, ?)``)
    rather than as one array (``= ANY(%s)``).
    """

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
        # 2: lock history. A lifted lock keeps its row (state 'lifted'); rows already here
        # are not lifted. The scoped index leaves lifted rows out, as every in-force read does.
        f"""
        ALTER TABLE locks ADD COLUMN lifted_at {d.time_type};
        ALTER TABLE locks ADD COLUMN lifted_by_user_id text;
        ALTER TABLE locks ADD COLUMN lifted_by_project_id text;
        ALTER TABLE locks ADD COLUMN lifted_decision_id text;
        DROP INDEX locks_scoped;
        CREATE INDEX locks_scoped ON locks (scope) WHERE {_SCOPED} AND {_NOT_LIFTED};
        """,
        # 3: the decision that placed a lock (rows already here have none on record).
        """
        ALTER TABLE locks ADD COLUMN placed_decision_id text;
        """,
    )


def to_run(migrations: Sequence[str], current: int) -> list[tuple[int, str]]:
    """The (version, script) pairs that take a database from version ``current`` to the last."""
    return list(enumerate(migrations[current:], start=current + 1))


class LockSql:
    """The shared statements of the lock table in one dialect (see the module docstring).

    Arguments of the plain statements: ``insert``, ``params(lock)``; ``get``, the lock
    id; ``set_state`` (which leaves a lifted lock alone), the state, the note and the
    lock id; ``instance`` and
    ``own_and_scoped``, the instance id and ``encode_now(now)``; ``scoped``,
    ``scoped_exists`` and ``count_by_kind``, ``encode_now(now)``; ``pending``,
    ``count`` and ``version``, none. ``in_force`` is the clause true for a row in
    force at its one argument: not lifted and not expired.
    """

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        m = dialect.mark
        self.select = f"SELECT {_COLUMN_LIST} FROM locks"
        self.in_force = f"{_NOT_LIFTED} AND (expires_at IS NULL OR expires_at > {m})"
        self.insert = f"INSERT INTO locks ({_COLUMN_LIST}) VALUES ({', '.join(m for _ in COLUMNS)})"
        self.get = f"{self.select} WHERE id = {m}"
        self.pending = f"{self.select} WHERE state = 'pending'{_ORDER}"
        self.set_state = f"UPDATE locks SET state = {m}, note = {m} WHERE id = {m} AND {_NOT_LIFTED}"
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
                lock.note, self._time(lock.lifted_at),
                None if lock.lifted_by is None else lock.lifted_by.user_id,
                None if lock.lifted_by is None else lock.lifted_by.project_id, lock.lifted_decision_id,
                lock.placed_decision_id)

    def lock(self, row: Sequence[Any]) -> Lock:
        """The Lock of a row fetched in ``COLUMNS`` order; LockStoreError for an unknown state."""
        d = self.dialect
        try:
            state = one_of(LOCK_STATES, row[10], "state")
            kind = one_of(LOCK_KINDS, row[1], "kind")
            scope = one_of(LOCK_SCOPES, row[2], "scope")
            source = one_of(LOCK_SOURCES, row[11], "source")
        except BadRequest as exc:
            raise LockStoreError(f"lock {row[0]} holds a value this version does not know: {exc.message}") from None
        return Lock(
            id=row[0], kind=kind, scope=scope, target=row[3], reason=row[4],
            owner=Subject(row[5], row[6], d.decode_roles(row[7])),
            created_at=d.decode_time(row[8]),
            expires_at=None if row[9] is None else d.decode_time(row[9]),
            state=state, source=source, note=row[12],
            lifted_at=None if row[13] is None else d.decode_time(row[13]),
            lifted_by=None if row[14] is None else Subject(row[14], row[15], ()),
            lifted_decision_id=row[16], placed_decision_id=row[17],
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

    def lift(self, lock_ids: Sequence[str], lifted_by: Subject, decision_id: str,
             now: datetime) -> tuple[str, list[Any]]:
        """Mark the locks ``lock_ids`` (not empty) lifted; rows lifted already are not touched."""
        m = self.dialect.mark
        clause, args = self.member("id", lock_ids)
        return (f"UPDATE locks SET state = 'lifted', lifted_at = {m}, lifted_by_user_id = {m}, "
                f"lifted_by_project_id = {m}, lifted_decision_id = {m} WHERE {clause} AND {_NOT_LIFTED}",
                [self.encode_now(now), lifted_by.user_id, lifted_by.project_id, decision_id, *args])

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
        if filters.state == "active":
            clauses.append(self.in_force)
            args.append(self.encode_now(now))
        elif filters.state == "expired":
            clauses.append(f"{_NOT_LIFTED} AND expires_at IS NOT NULL AND expires_at <= {m}")
            args.append(self.encode_now(now))
        elif filters.state == "lifted":
            clauses.append("state = 'lifted'")
        where = " WHERE " + " AND ".join(clauses) if clauses else ""
        return f"{self.select}{where}{_ORDER}", args

    def encode_now(self, now: datetime) -> Any:
        """``now`` as the argument of ``in_force``."""
        return self.dialect.encode_time(now)
