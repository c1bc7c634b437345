"""Backtest: a candidate bundle over past decisions, and what it would have decided differently.

``backtest`` compiles the candidate directory (``load_bundle`` + ``compile_bundle``, on
the calling thread: call it from a worker thread) and re-evaluates the recorded input
of each past decision whose outcome was ``allow`` or ``deny``. It counts the changes
each way (allow -> deny, deny -> allow) and keeps the first ones (oldest first).
Records that can't be replayed are counted as ``skipped``: errors and refusals (no
decision was made), inputs cut short before the locks were read, and the console's
own actions (``console_*``: decided by who may read decisions, not by the decision
document). An input is
replayed as recorded, which is masked (secrets such as passwords were never kept);
a policy that looks at a masked field sees the mask. A candidate that fails on an
input counts that input in ``failed`` (it would have been a 503 deny).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sidecar.errors import PolicyError
from sidecar.policy.bundle import load_bundle
from sidecar.policy.embedded import compile_bundle, evaluate_compiled

FIRST_CHANGES = 20
CONSOLE_ACTION_PREFIX = "console_"


@dataclass(frozen=True)
class Change:
    """One past decision the candidate decides the other way."""

    decision_id: str
    timestamp: str
    action: str
    instance: str
    subject: str
    recorded: str
    candidate: str
    candidate_reasons: tuple[str, ...]
    replica: str = ""


@dataclass(frozen=True)
class BacktestResult:
    """What a candidate would have changed (see the module docstring)."""

    candidate: str
    revision: str
    evaluated: int = 0
    unchanged: int = 0
    allow_to_deny: int = 0
    deny_to_allow: int = 0
    skipped: int = 0
    failed: int = 0
    changes: tuple[Change, ...] = field(default_factory=tuple)

    @property
    def changed(self) -> int:
        return self.allow_to_deny + self.deny_to_allow


def replayable(record: Mapping[str, Any]) -> bool:
    """True for a decision that was made (allow or deny) on a complete input."""
    outcome = _obj(record.get("statelock")).get("outcome")
    inp = _obj(record.get("input"))
    if outcome not in ("allow", "deny"):
        return False
    action = _obj(inp.get("action"))
    if str(action.get("name", "")).startswith(CONSOLE_ACTION_PREFIX):
        return False
    kind = action.get("kind")
    return kind == "read" or all(key in inp for key in ("subject", "action", "target", "locks", "now"))


def backtest(candidate: str | Path, entrypoint: str, records: Iterable[Mapping[str, Any]],
             first: int = FIRST_CHANGES) -> BacktestResult:
    """Re-decide ``records`` (oldest first) with the bundle at ``candidate``.

    Raises PolicyError when the candidate does not load or compile.
    """
    compiled = compile_bundle(load_bundle(candidate), entrypoint)
    counts = {"evaluated": 0, "unchanged": 0, "allow_to_deny": 0, "deny_to_allow": 0, "skipped": 0, "failed": 0}
    changes: list[Change] = []
    for record in records:
        if not replayable(record):
            counts["skipped"] += 1
            continue
        counts["evaluated"] += 1
        recorded = str(_obj(record.get("statelock")).get("outcome"))
        try:
            decision = evaluate_compiled(compiled, _obj(record.get("input")))
            now, reasons = ("allow" if decision.allow else "deny"), decision.reasons
        except PolicyError as exc:
            counts["failed"] += 1
            now, reasons = "deny", (f"the candidate fails on this input: {exc.message}",)
        if now == recorded:
            counts["unchanged"] += 1
            continue
        counts["allow_to_deny" if recorded == "allow" else "deny_to_allow"] += 1
        if len(changes) < first:
            changes.append(_change(record, recorded, now, reasons))
    return BacktestResult(str(candidate), compiled.bundle.revision, changes=tuple(changes), **counts)


def _change(record: Mapping[str, Any], recorded: str, now: str, reasons: tuple[str, ...]) -> Change:
    inp = _obj(record.get("input"))
    st = _obj(record.get("statelock"))
    return Change(str(record.get("decision_id", "")), str(record.get("timestamp", "")),
                  str(_obj(inp.get("action")).get("name", "")), str(_obj(inp.get("target")).get("instance_id") or ""),
                  str(_obj(inp.get("subject")).get("user_id", "")), recorded, now, reasons,
                  str(st.get("replica", "")))


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
