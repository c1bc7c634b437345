"""The worker pool: verdicts in case order, and a case that hangs or kills its worker is WRONG, not lost."""

from __future__ import annotations

import os
import time

from tests.compliance.cases import Case
from tests.compliance.pool import judge_all
from tests.compliance.verdict import Verdict


def _scripted(case: Case, _timeout_s: float) -> Verdict:
    """A stand-in judge: the note says what to do (it runs in the spawned workers)."""
    if case.note == "hang":
        time.sleep(60)
    if case.note == "die":
        os._exit(3)
    return Verdict(case.case_id, case.note, "pass", f"pid {os.getpid()}")


def test_a_hung_or_dead_worker_costs_one_wrong_case_and_the_rest_still_run() -> None:
    notes = ["a", "hang", "b", "die", "c", "d"]
    cases = [Case(file=f"{i}.yaml", note=n, query="data.t.p = x") for i, n in enumerate(notes)]
    started = time.monotonic()
    verdicts = judge_all(cases, workers=2, timeout_s=3.0, judge_fn=_scripted)
    assert time.monotonic() - started < 30
    assert [v.note for v in verdicts] == notes
    assert [v.outcome for v in verdicts] == ["pass", "wrong", "pass", "wrong", "pass", "pass"]
    assert "no answer within 3 s" in verdicts[1].reason
    assert "died" in verdicts[3].reason
    assert len({v.reason for v in verdicts if v.outcome == "pass"}) <= 4  # NOTE: workers are reused
