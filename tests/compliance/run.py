"""Run OPA's compliance cases on the embedded Wasm engine: ``python -m tests.compliance.run --summary``.

Prints the summary table (``suite.Report.summary``); ``--verbose`` also lists every
refused case with the builtins it lacks. Exits 1 when any case is WRONG, 2 when
OPA's cases can't be found.
"""

from __future__ import annotations

import argparse
import sys

from tests.compliance.cases import CasesMissing
from tests.compliance.pool import CASE_TIMEOUT_S, WORKERS
from tests.compliance.suite import run_suite


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv``, run the suite, print the report; the exit status (module docstring)."""
    parser = argparse.ArgumentParser(prog="python -m tests.compliance.run", description=__doc__)
    parser.add_argument("--summary", action="store_true", help="print the summary table only (the default)")
    parser.add_argument("--verbose", action="store_true", help="also list every refused case")
    parser.add_argument("--workers", type=int, default=WORKERS, help=f"worker processes (default {WORKERS})")
    parser.add_argument("--timeout", type=float, default=CASE_TIMEOUT_S, help="seconds a case may take")
    parser.add_argument("--match", default="", help="only cases whose file or note contains this text")
    parser.add_argument("--top", type=int, default=25, help="refused builtins to list (0: all)")
    args = parser.parse_args(argv)

    def progress(done: int, total: int) -> None:
        if sys.stderr.isatty():
            print(f"\r{done}/{total}", end="", file=sys.stderr, flush=True)

    try:
        report = run_suite(workers=max(1, args.workers), timeout_s=args.timeout, progress=progress,
                           select=(lambda c: args.match in c.case_id) if args.match else None)
    except CasesMissing as exc:
        print(exc, file=sys.stderr)
        return 2
    if sys.stderr.isatty():
        print(file=sys.stderr)
    print(report.summary(top=args.top))
    if args.verbose and not args.summary:
        for verdict in report.of("refused"):
            print(f"refused: {verdict.case_id}: {', '.join(verdict.builtins)}")
    return 1 if report.of("wrong") else 0


if __name__ == "__main__":
    sys.exit(main())
