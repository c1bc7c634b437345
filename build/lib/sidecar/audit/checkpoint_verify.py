"""Verification of a log's checkpoints: signatures, their own chain, and the log they cover.

``verify_checkpoints`` takes the lines of a checkpoint file, the public key, and the
result of verifying the log's records (``verify_files`` called with
``want=covered_seqs(lines)``), and checks, checkpoint by checkpoint:

* the line is a checkpoint at all (not torn, JSON, ``"type": "checkpoint"``);
* it is signed by the key given: a different ``key_id`` is "signed with another key",
  a signature that does not verify is "forged or altered";
* it follows the one before: ``checkpoint_seq`` one higher (the first is 1),
  ``prev_checkpoint`` the digest of the one before, a ``seq`` no lower than its;
* the log agrees: the record with the checkpoint's ``seq`` has the checkpoint's hash
  (else the log was rewritten), and the log does not end before that ``seq`` (else it
  was truncated: the report says how many records are missing).

A checkpoint whose ``seq`` lies before the first record given (older rotated files
left out on purpose) or after a break in the records' chain can't be compared with
the log; it is counted in ``unchecked``, its signature and links still checked.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sidecar.audit.checkpoint import CheckpointLine, checkpoint_digest, head, signature_valid
from sidecar.audit.record import GENESIS
from sidecar.audit.signing import key_id
from sidecar.audit.verify import VerifyResult


@dataclass(frozen=True)
class CheckpointProblem:
    """What is wrong with one checkpoint: its line, its ``checkpoint_seq`` if readable, why."""

    line: int
    checkpoint_seq: int | None
    reason: str


@dataclass(frozen=True)
class CheckpointReport:
    """The outcome of ``verify_checkpoints``.

    ``ok`` if there is no problem. ``missing`` is how many records were cut off the
    log's end (0 if none), ``last`` the last checkpoint whose signature verified,
    ``uncovered`` how many records follow the last checkpoint (not yet covered by one).
    """

    ok: bool
    checkpoints: int
    key_id: str
    problems: list[CheckpointProblem] = field(default_factory=list)
    missing: int = 0
    last: dict[str, Any] | None = None
    uncovered: int = 0
    unchecked: int = 0


def covered_seqs(lines: Sequence[CheckpointLine]) -> set[int]:
    """The log seqs the checkpoints cover: what ``verify_files`` should collect hashes for."""
    return {h[0] for ln in lines if ln.checkpoint is not None and (h := head(ln.checkpoint)) is not None}


def verify_checkpoints(lines: Sequence[CheckpointLine], public: Ed25519PublicKey,
                       records: VerifyResult) -> CheckpointReport:
    """Check every checkpoint line against ``public`` and ``records`` (see the module docstring)."""
    expected_key = key_id(public)
    problems: list[CheckpointProblem] = []
    prev: dict[str, Any] | None = None
    last_good: dict[str, Any] | None = None
    truncated: tuple[CheckpointLine, int] | None = None
    unchecked = 0
    for ln in lines:
        cp = ln.checkpoint
        if cp is None:
            problems.append(CheckpointProblem(ln.line, None, ln.problem or "not a checkpoint"))
            continue
        number = cp.get("checkpoint_seq") if isinstance(cp.get("checkpoint_seq"), int) else None
        covered = head(cp)
        reason = _signature_problem(cp, public, expected_key) or _link_problem(cp, prev, covered)
        if reason is None and covered is not None:
            seq, digest = covered
            if seq > records.last_seq:
                if records.ok:
                    if truncated is None or seq > truncated[1]:
                        truncated = (ln, seq)
                else:
                    unchecked += 1
            elif seq == 0:
                reason = None if digest == GENESIS else "covers seq 0 with a hash that is not the genesis"
            elif records.first_seq is not None and seq < records.first_seq:
                unchecked += 1
            elif records.hashes.get(seq) != digest:
                reason = (f"says record {seq} has hash {digest[:16]}..., the log's record {seq} has "
                          f"{(records.hashes.get(seq) or 'none')[:16]}...: the log was rewritten at or "
                          f"before record {seq}")
        if reason is not None:
            problems.append(CheckpointProblem(ln.line, number, reason))
        if _signature_problem(cp, public, expected_key) is None:
            last_good = cp
        prev = cp
    missing = 0
    if truncated is not None:
        ln, seq = truncated
        missing = seq - records.last_seq
        assert ln.checkpoint is not None
        problems.append(CheckpointProblem(
            ln.line, ln.checkpoint.get("checkpoint_seq"),
            f"truncated: the log ends at seq {records.last_seq}, but this checkpoint (of "
            f"{ln.checkpoint.get('timestamp')}) covers seq {seq}: {missing} record"
            f"{'s' if missing != 1 else ''} missing from its end"))
    last_head = head(last_good) if last_good else None
    uncovered = max(0, records.last_seq - last_head[0]) if last_head and records.ok else 0
    return CheckpointReport(not problems, sum(1 for ln in lines if ln.checkpoint is not None), expected_key,
                            problems, missing, last_good, uncovered, unchecked)


def _signature_problem(cp: dict[str, Any], public: Ed25519PublicKey, expected_key: str) -> str | None:
    if cp.get("key_id") != expected_key:
        return f"signed with another key ({cp.get('key_id')}), not the one given ({expected_key})"
    if not signature_valid(public, cp):
        return "signature does not verify: the checkpoint was forged or altered"
    return None


def _link_problem(cp: dict[str, Any], prev: dict[str, Any] | None, covered: tuple[int, str] | None) -> str | None:
    number = cp.get("checkpoint_seq")
    if covered is None or not isinstance(number, int) or isinstance(number, bool):
        return "malformed: needs checkpoint_seq and log.seq / log.hash"
    if prev is None:
        if number != 1 or cp.get("prev_checkpoint") != GENESIS:
            return (f"the checkpoint chain starts at checkpoint {number}, not 1: earlier checkpoints "
                    "are missing")
        return None
    prev_number = prev.get("checkpoint_seq")
    if isinstance(prev_number, int) and number != prev_number + 1:
        return (f"checkpoint {number} after checkpoint {prev_number}: checkpoints are missing, "
                "repeated or out of order here")
    if cp.get("prev_checkpoint") != checkpoint_digest(prev):
        return "prev_checkpoint is not the digest of the checkpoint before: one was replaced, inserted or moved"
    prev_head = head(prev)
    if prev_head is not None and covered[0] < prev_head[0]:
        return (f"covers seq {covered[0]}, before the previous checkpoint's seq {prev_head[0]}: the log "
                "went backwards (rewritten, or restored from an older copy)")
    return None
