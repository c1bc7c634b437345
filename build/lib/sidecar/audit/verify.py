"""Verification of a decision log's hash chain, across its rotated files.

Every record carries ``seq`` (1, 2, 3, ... across files), ``prev_hash`` (the previous
record's ``hash``, the genesis for the first) and ``hash`` (see
``sidecar.audit.record.chain_hash``). Reading the files in the order given, the first
record that breaks one of these rules is reported:

* its own ``hash`` does not match its content: the record was edited;
* its ``seq`` repeats the previous one: a duplicated record;
* its ``seq`` is lower than the previous one: records out of order;
* its ``seq`` skips: records deleted, or a rotated file missing;
* its ``prev_hash`` is not the previous record's ``hash``: a record inserted, replaced
  or moved;
* a line that is not a JSON object with those fields, an empty line, or a last line
  without its newline (a write cut short).

What a chain can't show: that records were cut off the end of the newest file, or that
someone rewrote a record and every one after it. Signed checkpoints cover both
(``sidecar.audit.checkpoint_verify`` checks them against the hashes ``verify_files``
collects for the seqs asked for in ``want``); so does comparing ``last_seq`` and
``last_hash`` with a copy kept elsewhere (a shipped decision log).

``parse_line``, ``chain_fields`` and ``check_link`` are the rules one record at a time,
raising ``ChainBreak``; the log's open-time check of its tail uses them too.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from sidecar.audit.record import GENESIS, chain_hash


class BadRecord(NamedTuple):
    """Where the chain first breaks: file, 1-based line, the record's seq if readable, why."""

    file: str
    line: int
    seq: int | None
    reason: str


@dataclass(frozen=True)
class VerifyResult:
    """The outcome: ``ok``, how many records checked out, and the first bad one if any.

    ``last_seq`` and ``last_hash`` are those of the last good record (an anchor to
    compare with a copy kept elsewhere), ``first_seq`` that of the first record read
    (None if none was). ``hashes`` holds the hash of each good record whose seq was in
    ``want``.
    """

    ok: bool
    records: int
    first_bad: BadRecord | None
    files: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS
    first_seq: int | None = None
    hashes: dict[int, str] = field(default_factory=dict)


class ChainBreak(Exception):
    """A record breaks the chain: its line (0 if unknown), its seq if readable, and why."""

    def __init__(self, line: int, seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.line, self.seq, self.reason = line, seq, reason


@dataclass
class Chain:
    """The running state: what the next record must link to (None: take it on trust)."""

    prev_hash: str | None
    prev_seq: int | None
    records: int = 0
    first_seq: int | None = None


def verify_files(paths: Sequence[str | Path], *, from_genesis: bool = True,
                 want: Collection[int] = ()) -> VerifyResult:
    """Verify the chain through ``paths`` in the order given (oldest file first).

    With ``from_genesis`` (the default) the first record must be seq 1 linked to the
    genesis hash, so a missing first file is caught; pass False when older rotated
    files were removed on purpose, and the first record is then taken on trust.
    The hashes of the records whose seq is in ``want`` are collected (up to the first
    bad record) in ``VerifyResult.hashes``.
    """
    chain = Chain(GENESIS, 0) if from_genesis else Chain(None, None)
    wanted = frozenset(want)
    hashes: dict[int, str] = {}

    def result(ok: bool, files: int, bad: BadRecord | None) -> VerifyResult:
        return VerifyResult(ok, chain.records, bad, files, chain.prev_seq or 0, chain.prev_hash or GENESIS,
                            chain.first_seq, hashes)

    for index, path in enumerate(paths):
        try:
            _verify_file(Path(path), chain, index == 0, wanted, hashes)
        except ChainBreak as exc:
            return result(False, index + 1, BadRecord(str(path), exc.line, exc.seq, exc.reason))
        except OSError as exc:
            return result(False, index + 1,
                          BadRecord(str(path), 0, None, f"cannot read the file: {exc.strerror or exc}"))
    return result(True, len(paths), None)


def _verify_file(path: Path, chain: Chain, first_file: bool, want: frozenset[int],
                 hashes: dict[int, str]) -> None:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            record = parse_line(raw, lineno)
            seq, prev_hash, digest = chain_fields(record, lineno)
            check_link(chain, record, lineno, seq, prev_hash, digest, opens_file=lineno == 1 and not first_file)
            if seq in want:
                hashes[seq] = digest


def parse_line(raw: bytes, lineno: int) -> dict[str, Any]:
    """A log line as a JSON object; ChainBreak if it is torn, empty or not one."""
    if not raw.endswith(b"\n"):
        raise ChainBreak(lineno, None, "truncated final line (no newline: a write was cut short)")
    if not raw.strip():
        raise ChainBreak(lineno, None, "empty line (the log never writes one)")
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise ChainBreak(lineno, None, f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise ChainBreak(lineno, None, "not a JSON object")
    return record


def chain_fields(record: dict[str, Any], lineno: int) -> tuple[int, str, str]:
    """A record's (seq, prev_hash, hash); ChainBreak if one is missing or of the wrong type."""
    seq, prev_hash, digest = record.get("seq"), record.get("prev_hash"), record.get("hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(prev_hash, str) \
            or not isinstance(digest, str):
        raise ChainBreak(lineno, seq if isinstance(seq, int) else None,
                         "missing or malformed seq, prev_hash or hash")
    return seq, prev_hash, digest


def check_link(chain: Chain, record: dict[str, Any], lineno: int, seq: int, prev_hash: str, digest: str,
               opens_file: bool = False) -> None:
    """Check one record against the chain so far and advance the chain; ChainBreak if it breaks."""
    _check(chain, record, lineno, seq, prev_hash, digest, opens_file)
    chain.prev_hash, chain.prev_seq = digest, seq
    chain.records += 1
    if chain.first_seq is None:
        chain.first_seq = seq


def _check(chain: Chain, record: dict[str, Any], lineno: int, seq: int, prev_hash: str, digest: str,
           opens_file: bool) -> None:
    if chain_hash(prev_hash, record) != digest:
        raise ChainBreak(lineno, seq, "hash mismatch: the record was changed after it was written")
    hint = " (the first record of this file: is a file missing or given out of order?)" if opens_file else ""
    if chain.prev_seq is not None:
        expected = chain.prev_seq + 1
        if seq == chain.prev_seq:
            raise ChainBreak(lineno, seq, f"seq {seq} repeats the previous record's: a duplicated record{hint}")
        if seq < expected:
            raise ChainBreak(lineno, seq, f"seq {seq} after seq {chain.prev_seq}: records out of order{hint}")
        if seq > expected and chain.prev_seq == 0:
            raise ChainBreak(lineno, seq, f"the chain starts at seq {seq}, not 1: earlier records or files "
                                          "are missing (give every file, oldest first)")
        if seq > expected:
            missing = seq - expected
            raise ChainBreak(lineno, seq, f"seq {seq} after seq {chain.prev_seq}: {missing} record"
                                          f"{'s' if missing > 1 else ''} missing here (deleted or moved, or a "
                                          f"rotated file left out){hint}")
    if chain.prev_hash is not None and prev_hash != chain.prev_hash:
        raise ChainBreak(lineno, seq, "prev_hash is not the previous record's hash: a record was inserted, "
                                      f"replaced or moved{hint}")
