"""Picking a decision log's chain up where it ended: what ``JsonlAuditLog.open`` finds.

``pick_up`` cuts a torn last line (``sidecar.audit.files.cut_torn_tail``), finds the
head of the chain (the last record of the active file, or of the newest rotated file
when the active one is empty or gone), opens the checkpoint file with the signing key,
and checks the tail of the chain against the last checkpoint (``sidecar.audit.tail``).
A broken tail is logged and reported, not raised: the log goes on from the head it
found, and ``chain_state`` shows the break.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.audit.checkpoint import CheckpointFile, head
from sidecar.audit.files import (
    checkpoints_path,
    cut_torn_tail,
    last_record,
    log_files,
    next_rotation,
    rotated_files,
)
from sidecar.audit.record import GENESIS
from sidecar.audit.signing import load_or_create
from sidecar.audit.tail import TailCheck, check_tail

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Pickup:
    """Where the chain of a log stands: its head, its next rotation number, its checkpoints."""

    prev_hash: str
    seq: int
    next_rotation: int
    checkpoints: CheckpointFile
    tail: TailCheck

    @property
    def checkpointed_seq(self) -> int:
        """The seq the last checkpoint covers (0 if there is none)."""
        covered = head(self.checkpoints.last) if self.checkpoints.last is not None else None
        return covered[0] if covered else 0


def pick_up(path: Path, key_path: Path, fsync: bool) -> Pickup:
    """The state of the log at ``path`` (blocking; the caller holds its writer lock).

    Raises AuditError for an unfit signing key or checkpoint file (see
    ``signing.load_or_create`` and ``CheckpointFile.open``), ValueError if the last
    record can't be continued from, OSError if a file can't be read or written.
    """
    cut = cut_torn_tail(path)
    if cut:
        log.warning("decision log %s ended in a torn line (%d bytes, never acknowledged); "
                    "moved to %s-torn", path, cut, path.name)
    last = None
    for candidate in [path, *reversed(rotated_files(path))]:
        last = last_record(candidate)
        if last is not None:
            break
    prev_hash, seq = (str(last["hash"]), int(last["seq"])) if last else (GENESIS, 0)
    checkpoints = CheckpointFile(checkpoints_path(path), load_or_create(key_path), fsync)
    checkpoints.open()
    prior = checkpoints.last
    tail = check_tail(log_files(path), prior if checkpoints.last_signature_ok else None)
    if not checkpoints.last_signature_ok and tail.broken_at is None:
        tail = TailCheck(tail.how, tail.verified_from, tail.verified_through, {
            "seq": None, "file": str(checkpoints.path), "line": None,
            "reason": "the last checkpoint's signature does not verify: the checkpoint file was altered"})
    if tail.broken_at is not None:
        log.error("decision log %s: the chain is broken (%s): %s; run statelock audit verify on it. "
                  "Writing goes on from seq %d.", path, tail.how, tail.broken_at["reason"], seq)
    else:
        log.info("decision log %s: chain intact through seq %d (checked %s)", path, tail.verified_through,
                 tail.how)
    return Pickup(prev_hash, seq, next_rotation(path), checkpoints, tail)


def chain_state(seq: int, prev_hash: str, tail: TailCheck, checkpoints: CheckpointFile | None,
                failures: int) -> dict[str, Any]:
    """The state of a chain, for ``/health`` (``JsonlAuditLog.chain_state`` documents the keys)."""
    last = checkpoints.last if checkpoints is not None else None
    covered = head(last) if last is not None else None
    return {
        "last_seq": seq,
        "last_hash": prev_hash,
        "tail_checked": tail.how,
        "verified_from": tail.verified_from,
        "verified_through": tail.verified_through,
        "broken_at": dict(tail.broken_at) if tail.broken_at else None,
        "last_checkpoint": None if last is None or covered is None else {
            "checkpoint_seq": last.get("checkpoint_seq"), "seq": covered[0], "hash": covered[1],
            "timestamp": last.get("timestamp"), "key_id": last.get("key_id")},
        "checkpoints": checkpoints is not None,
        "checkpoint_failures": failures,
    }
