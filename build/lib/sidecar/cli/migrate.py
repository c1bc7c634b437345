"""``statelock locks migrate --from sqlite:///... --to postgresql://...``: one node to several.

Copies every lock into the PostgreSQL store the replicas will share, prints the row
counts of each table and verifies the copy (same ids, same contents). Run it before
the replicas take traffic. Exit status: 0 copied and verified, 1 a store failed or
the copy could not be verified (the message says why), 2 unusable arguments.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

EPILOG = """\
example:
  statelock locks migrate --from sqlite:////var/lib/statelock/locks.db \\
                          --to postgresql://statelock@db.example:5432/statelock
  (a password can come from ~/.pgpass or $PGPASSWORD instead of the URL)
"""


def add_migrate_command(sub: Any) -> None:
    """Register ``migrate`` on the ``locks`` group's subparsers (dest ``locks_command``)."""
    migrate = sub.add_parser(
        "migrate", help="copy every lock into a PostgreSQL lock store and verify the copy",
        description="Copy every lock (expired ones too) from the current lock store into the "
                    "PostgreSQL one that several replicas will share, print the counts per "
                    "table and verify that the target holds exactly the source's locks.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    migrate.add_argument("--from", dest="from_url", required=True, metavar="URL",
                         help="the current lock store, e.g. sqlite:////var/lib/statelock/locks.db")
    migrate.add_argument("--to", dest="to_url", required=True, metavar="URL",
                         help="the PostgreSQL lock store, e.g. postgresql://user@host:5432/dbname")
    migrate.add_argument("--timeout", type=float, default=30.0, metavar="SECONDS",
                         help="longest wait for a connection or for in-flight state changes "
                              "(default %(default)s)")


def run_migrate_command(args: argparse.Namespace) -> int:
    """Run ``locks migrate``; the exit status (ConfigError and SidecarError reach ``main``, 2 and 1)."""
    from sidecar.locks.migrate import migrate_locks  # NOTE: the database drivers load only for this command.

    report = asyncio.run(migrate_locks(args.from_url, args.to_url, args.timeout))
    print(report.render())
    return 0 if report.ok else 1
