"""Signed checkpoints: the head of a decision log's chain, signed, in a file of their own.

A hash chain shows an edited, deleted or reordered record, but not records cut off
its end. A checkpoint does: it is written every ``checkpoint_interval_s`` while
records are being added, and at close, and says "at this time the chain's head was
record ``seq`` with hash ``hash``" under an Ed25519 signature. A log that ends before
its last checkpoint's ``seq`` has lost records. Checkpoints are chained too (each
names the digest of the one before), so one can't be dropped from the middle or
replaced unnoticed. They go to ``<path>-checkpoints``, never into the log: a cut at
the log's end would take them with it. Shape (one JSON line each)::

    {"type": "checkpoint", "checkpoint_seq": 3, "timestamp": "2026-11-25T01:00:00.000000Z",
     "log": {"file": "decisions.jsonl", "seq": 120, "hash": "<record 120's hash>"},
     "prev_checkpoint": "<digest of checkpoint 2, or 64 zeros for the first>",
     "key_id": "ed25519:0123456789abcdef", "signature": "<base64>"}

The signature covers ``statelock-checkpoint-v1\\n`` and the canonical JSON of every
other field (sorted keys, no spaces: ``sidecar.audit.record.canonical``). The digest
a successor names is the SHA-256 of the canonical JSON of the whole checkpoint,
signature included.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sidecar.audit.files import cut_torn_tail, lines_from_end, open_fd
from sidecar.audit.record import GENESIS, canonical, now_rfc3339_ns
from sidecar.audit.signing import key_id, sign, signature_ok
from sidecar.errors import AuditError

log = logging.getLogger(__name__)

CHECKPOINT = "checkpoint"
_DOMAIN = b"statelock-checkpoint-v1\n"


def checkpoint_digest(checkpoint: Mapping[str, Any]) -> str:
    """What the next checkpoint names as ``prev_checkpoint``."""
    return hashlib.sha256(canonical(checkpoint)).hexdigest()


def signed_bytes(checkpoint: Mapping[str, Any]) -> bytes:
    """The bytes a checkpoint's signature covers."""
    return _DOMAIN + canonical({k: v for k, v in checkpoint.items() if k != "signature"})


def make_checkpoint(key: Ed25519PrivateKey, prev: Mapping[str, Any] | None, *, seq: int, head_hash: str,
                    file: str) -> dict[str, Any]:
    """A signed checkpoint of the head (``seq``, ``head_hash``) of ``file``, chained to ``prev``."""
    body: dict[str, Any] = {
        "type": CHECKPOINT,
        "checkpoint_seq": int(prev["checkpoint_seq"]) + 1 if prev else 1,
        "timestamp": now_rfc3339_ns(),
        "log": {"file": file, "seq": seq, "hash": head_hash},
        "prev_checkpoint": checkpoint_digest(prev) if prev else GENESIS,
        "key_id": key_id(key.public_key()),
    }
    body["signature"] = sign(key, signed_bytes(body))
    return body


def signature_valid(public: Ed25519PublicKey, checkpoint: Mapping[str, Any]) -> bool:
    """True if ``checkpoint`` carries ``public``'s signature of its fields."""
    return signature_ok(public, checkpoint.get("signature"), signed_bytes(checkpoint))


def head(checkpoint: Mapping[str, Any]) -> tuple[int, str] | None:
    """The (seq, hash) a checkpoint covers; None if it does not say (malformed)."""
    logged = checkpoint.get("log")
    if not isinstance(logged, dict):
        return None
    seq, digest = logged.get("seq"), logged.get("hash")
    if isinstance(seq, bool) or not isinstance(seq, int) or not isinstance(digest, str):
        return None
    return seq, digest


@dataclass(frozen=True)
class CheckpointLine:
    """One line of a checkpoint file: its 1-based number and what it holds (None if not JSON)."""

    line: int
    checkpoint: dict[str, Any] | None
    problem: str | None = None


def read_checkpoints(path: str | Path) -> list[CheckpointLine]:
    """Every line of a checkpoint file, in order; a line that can't be read names its problem.

    Raises OSError if the file can't be read.
    """
    out: list[CheckpointLine] = []
    with Path(path).open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.endswith(b"\n"):
                out.append(CheckpointLine(lineno, None, "truncated final line (a write was cut short)"))
                continue
            try:
                value = json.loads(raw)
            except ValueError as exc:
                out.append(CheckpointLine(lineno, None, f"not valid JSON ({exc})"))
                continue
            if not isinstance(value, dict) or value.get("type") != CHECKPOINT:
                out.append(CheckpointLine(lineno, None, "not a checkpoint"))
                continue
            out.append(CheckpointLine(lineno, value))
    return out


class CheckpointFile:
    """The checkpoint file a log writes (blocking methods: run them in a thread).

    ``open`` cuts a torn last line (a checkpoint whose write never finished, kept in
    ``<file>-torn``) and picks up the last checkpoint, to chain the next one to it.
    ``append`` signs and writes one, fsynced when ``fsync``.
    """

    def __init__(self, path: Path, key: Ed25519PrivateKey, fsync: bool) -> None:
        self.path = path
        self._key = key
        self._fsync = fsync
        self.key_id = key_id(key.public_key())
        self.last: dict[str, Any] | None = None
        self.last_signature_ok = True

    def open(self) -> None:
        """Pick up the last checkpoint.

        Raises AuditError when it was signed with another key (naming both ids and the
        fix) or the file can't be read; OSError passes through for the caller to wrap.
        """
        if cut_torn_tail(self.path):
            log.warning("checkpoint file %s ended in a torn line; moved to %s-torn", self.path, self.path.name)
        self.last = None
        if self.path.exists():
            for _, raw in lines_from_end(self.path):
                try:
                    value = json.loads(raw)
                except ValueError:
                    value = None
                if not isinstance(value, dict) or value.get("type") != CHECKPOINT:
                    raise AuditError(f"checkpoint file {self.path}: its last line is not a checkpoint; "
                                     "check it with statelock audit verify, then move it aside")
                self.last = value
                break
        if self.last is None:
            return
        if self.last.get("key_id") != self.key_id:
            raise AuditError(
                f"checkpoint file {self.path} was signed with key {self.last.get('key_id')}, but "
                f"audit.signing_key is {self.key_id}: restore that key, or move {self.path} aside "
                "(keep it and its public key to verify the older records) to start a new checkpoint chain")
        self.last_signature_ok = signature_valid(self._key.public_key(), self.last)

    def append(self, seq: int, head_hash: str, file: str) -> dict[str, Any]:
        """Sign and write the checkpoint of head (``seq``, ``head_hash``); it becomes ``last``."""
        checkpoint = make_checkpoint(self._key, self.last, seq=seq, head_hash=head_hash, file=file)
        line = canonical(checkpoint) + b"\n"
        fd = open_fd(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            size = os.fstat(fd).st_size
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                if self._fsync:
                    os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)  # NOTE: no half checkpoint left for the next one to chain to.
                raise
        finally:
            os.close(fd)
        self.last = checkpoint
        self.last_signature_ok = True
        return checkpoint
