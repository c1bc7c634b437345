"""The whole compliance run: every case loaded, the applicable ones judged, the result tallied.

``run_suite`` returns a ``Report``; ``Report.summary()`` is the table the test prints
and ``python -m tests.compliance.run`` shows: counts per outcome, the refused
builtins with how many cases need each (and how many need only that one), the
exceptions that are no longer needed, and every WRONG case with its reason.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from sidecar.policy.wasm.compiler import OPA_VERSION
from tests.compliance.cases import Case, applicable, cases_dir, load_cases
from tests.compliance.exceptions import EXCEPTIONS, apply_exceptions
from tests.compliance.pool import CASE_TIMEOUT_S, WORKERS, judge_all
from tests.compliance.verdict import Verdict

__all__ = ["Report", "run_suite"]


@dataclass(frozen=True)
class Report:
    """What one run found; ``not_applicable`` are the cases of other query forms."""

    directory: Path
    total: int
    not_applicable: tuple[Case, ...]
    verdicts: tuple[Verdict, ...]
    seconds: float
    workers: int

    def of(self, outcome: str) -> list[Verdict]:
        """The verdicts with ``outcome`` ("pass", "refused", "excepted", "wrong")."""
        return [v for v in self.verdicts if v.outcome == outcome]

    def refused_builtins(self) -> list[tuple[str, int, int]]:
        """(builtin, cases needing it, cases needing only it), most needed first."""
        needing: collections.Counter[str] = collections.Counter()
        only: collections.Counter[str] = collections.Counter()
        for verdict in self.of("refused"):
            needing.update(verdict.builtins)
            if len(verdict.builtins) == 1:
                only[verdict.builtins[0]] += 1
        return [(name, n, only[name]) for name, n in sorted(needing.items(), key=lambda kv: (-kv[1], kv[0]))]

    def unneeded_exceptions(self) -> list[str]:
        """Excepted notes whose cases all pass now."""
        by_note: dict[str, set[str]] = collections.defaultdict(set)
        for verdict in self.verdicts:
            if verdict.note in EXCEPTIONS:
                by_note[verdict.note].add(verdict.outcome)
        return sorted(note for note, outcomes in by_note.items() if outcomes == {"pass"})

    def summary(self, top: int = 25) -> str:
        """The summary table (module docstring); ``top`` refused builtins are listed (0: all)."""
        applicable_n = len(self.verdicts)
        lines = [
            f"OPA v{OPA_VERSION} compliance cases on the embedded Wasm engine ({self.directory})",
            f"  cases           {self.total:5d}",
            f"  not applicable  {len(self.not_applicable):5d}  (query not of the form data.<path> = <var>)",
            f"  applicable      {applicable_n:5d}",
        ]
        for outcome, label in (("pass", "pass"), ("refused", "refused"), ("excepted", "excepted"),
                               ("wrong", "WRONG")):
            n = len(self.of(outcome))
            share = f"{100 * n / applicable_n:5.1f}%" if applicable_n else "     -"
            lines.append(f"    {label:<12}{n:5d}  {share}")
        lines.append(f"  run time        {self.seconds:5.0f} s on {self.workers} worker processes")
        builtins = self.refused_builtins()
        if builtins:
            shown = builtins if top <= 0 else builtins[:top]
            lines.append(f"refused builtins ({len(builtins)}; cases needing it / cases missing only it):")
            lines += [f"  {name:<34}{n:5d} {alone:5d}" for name, n, alone in shown]
            if len(shown) < len(builtins):
                lines.append(f"  ... and {len(builtins) - len(shown)} more")
        for verdict in self.of("excepted"):
            lines.append(f"excepted: {verdict.case_id}: {EXCEPTIONS[verdict.note]}")
        for note in self.unneeded_exceptions():
            lines.append(f"exception no longer needed (passes): {note}")
        for verdict in self.of("wrong"):
            lines.append(f"WRONG: {verdict.case_id}: {verdict.reason}")
        return "\n".join(lines)


def run_suite(directory: Path | None = None, *, workers: int = WORKERS, timeout_s: float = CASE_TIMEOUT_S,
              select: Callable[[Case], bool] | None = None,
              progress: Callable[[int, int], None] | None = None) -> Report:
    """Judge every applicable case (those ``select`` keeps, if given) and tally them.

    Raises CasesMissing when OPA's cases can't be found or fetched.
    """
    directory = directory or cases_dir()
    started = time.perf_counter()
    cases = [c for c in load_cases(directory) if select is None or select(c)]
    runnable = [c for c in cases if applicable(c) is not None]
    other = tuple(c for c in cases if applicable(c) is None)
    verdicts = apply_exceptions(judge_all(runnable, workers=workers, timeout_s=timeout_s, progress=progress))
    return Report(directory, len(cases), other, tuple(verdicts), time.perf_counter() - started, workers)
