"""The PostgreSQL lock schema: the dialect, the numbered migrations and the migrating.

Each migration is the shared table DDL of ``sidecar.locks.sql`` for that version,
plus what only PostgreSQL has: the ``lock_generation`` counter and the trigger that
bumps it and announces every change on ``CHANNEL`` (the replicas' caches listen),
and ``statelock_guard_lock``, the bounded advisory-lock wait of the guard. From
version 2 the trigger ignores changes confined to lifted rows (history).
Replicas starting together migrate one at a time (an advisory transaction lock).
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from sidecar.locks.pg_session import Connection
from sidecar.locks.sql import SCHEMA_VERSION_TABLE, Dialect, LockSql, table_migrations, to_run

log = logging.getLogger(__name__)

CHANNEL = "statelock_locks"
_MIGRATION_LOCK = 0x5354_4C4B_4D49_4752  # NOTE: any fixed bigint; serialises replicas migrating at once.


def _utc(value: Any) -> datetime:
    assert isinstance(value, datetime)
    return value.astimezone(UTC)


POSTGRES = Dialect(
    mark="%s", time_type="timestamptz", roles_type="text[]",
    encode_time=lambda when: when,
    decode_time=_utc,
    encode_roles=list,
    decode_roles=tuple,
    expand_lists=False,
)
SQL = LockSql(POSTGRES)


def _locks_changed(skip: str = "") -> str:
    """The trigger function: bump the generation, announce the changed target (``*``: any).

    ``skip`` runs first and may ``RETURN NULL`` for a change that needs neither.
    """
    return f"""
    CREATE OR REPLACE FUNCTION statelock_locks_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        gen bigint;
        s text := '*';
        t text := '';
    BEGIN{skip}
        UPDATE lock_generation SET value = value + 1 RETURNING value INTO gen;
        IF TG_OP = 'DELETE' THEN
            s := OLD.scope; t := OLD.target;
        ELSIF TG_OP = 'INSERT' THEN
            s := NEW.scope; t := NEW.target;
        ELSIF TG_OP = 'UPDATE' AND OLD.scope = NEW.scope AND OLD.target = NEW.target THEN
            s := NEW.scope; t := NEW.target;
        END IF;
        PERFORM pg_notify('{CHANNEL}',
                          json_build_object('generation', gen, 'scope', s, 'target', t)::text);
        RETURN NULL;
    END $$;
"""


# NOTE: history rows are no lock in force: a change that touches only lifted rows (before
# and after) changes no cached answer, so it bumps no generation and announces nothing.
_SKIP_HISTORY = """
        IF TG_OP = 'INSERT' THEN
            IF NEW.state = 'lifted' THEN RETURN NULL; END IF;
        ELSIF TG_OP = 'DELETE' THEN
            IF OLD.state = 'lifted' THEN RETURN NULL; END IF;
        ELSIF TG_OP = 'UPDATE' THEN
            IF OLD.state = 'lifted' AND NEW.state = 'lifted' THEN RETURN NULL; END IF;
        END IF;"""


_GENERATION_AND_GUARD = """
    CREATE TABLE lock_generation (
        singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        value bigint NOT NULL
    );
    INSERT INTO lock_generation (value) VALUES (0);

{locks_changed}
    CREATE TRIGGER locks_changed AFTER INSERT OR UPDATE OR DELETE ON locks
        FOR EACH ROW EXECUTE FUNCTION statelock_locks_changed();
    CREATE TRIGGER locks_truncated AFTER TRUNCATE ON locks
        FOR EACH STATEMENT EXECUTE FUNCTION statelock_locks_changed();

    -- The guard: take a session advisory lock within timeout_ms (NULL when it was not
    -- free in time), then read the generation. A VOLATILE function takes a new snapshot
    -- for each query, so the read sees every change committed before the lock was granted.
    CREATE FUNCTION statelock_guard_lock(key bigint, exclusive boolean, timeout_ms integer)
    RETURNS bigint LANGUAGE plpgsql VOLATILE AS $$
    DECLARE
        gen bigint;
    BEGIN
        PERFORM set_config('lock_timeout', timeout_ms::text, true);
        BEGIN
            IF exclusive THEN
                PERFORM pg_advisory_lock(key);
            ELSE
                PERFORM pg_advisory_lock_shared(key);
            END IF;
        EXCEPTION WHEN lock_not_available THEN
            RETURN NULL;
        END;
        SELECT value INTO gen FROM lock_generation;
        RETURN gen;
    END $$;
"""

_EXTRAS: tuple[str, ...] = (
    _GENERATION_AND_GUARD.replace("{locks_changed}", _locks_changed()),
    _locks_changed(_SKIP_HISTORY),
    "",  # NOTE: 3, placed_decision_id, needs nothing beyond the table change
)
MIGRATIONS: tuple[str, ...] = tuple(table + extra for table, extra in
                                    zip(table_migrations(POSTGRES), _EXTRAS, strict=True))


async def schema_version(conn: Connection) -> int:
    """The schema version the database is at (0: none yet)."""
    cur = await conn.execute(SQL.version)
    row = await cur.fetchone()
    return int(row[0]) if row else 0


async def migrate(conn: Connection, shown: str) -> None:
    """Bring the schema to the last version in one transaction; psycopg.Error on failure."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(SCHEMA_VERSION_TABLE)
        for number, script in to_run(MIGRATIONS, await schema_version(conn)):
            await conn.execute(script.encode())
            await conn.execute("INSERT INTO schema_version VALUES (%s)", (number,))
            log.info("lock store %s migrated to schema version %d", shown, number)
