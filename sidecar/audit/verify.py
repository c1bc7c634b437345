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
someone rewrote a record and every one after it. Compare ``last_seq`` and ``last_hash``
with a copy kept elsewhere (a shipped decision log) to cover those.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
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
    compare with a copy kept elsewhere).
    """

    ok: bool
    records: int
    first_bad: BadRecord | None
    files: int = 0
    last_seq: int = 0
    last_hash: str = GENESIS


class _Broken(Exception):
    def __init__(self, line: int, seq: int | None, reason: str) -> None:
        super().__init__(reason)
        self.line, self.seq, self.reason = line, seq, reason


@dataclass
class _Chain:
    """The running state: what the next record must link to."""

    prev_hash: str | None
    prev_seq: int | None
    records: int = 0


def verify_files(paths: Sequence[str | Path], *, from_genesis: bool = True) -> VerifyResult:
    """Verify the chain through ``paths`` in the order given (oldest file first).

    With ``from_genesis`` (the default) the first record must be seq 1 linked to the
    genesis hash, so a missing first file is caught; pass False when older rotated
    files were removed on purpose, and the first record is then taken on trust.
    """
    chain = _Chain(GENESIS, 0) if from_genesis else _Chain(None, None)
    for index, path in enumerate(paths):
        try:
            _verify_file(Path(path), chain, first_file=index == 0)
        except _Broken as exc:
            return VerifyResult(False, chain.records, BadRecord(str(path), exc.line, exc.seq, exc.reason),
                                index + 1, chain.prev_seq or 0, chain.prev_hash or GENESIS)
        except OSError as exc:
            return VerifyResult(False, chain.records,
                                BadRecord(str(path), 0, None, f"cannot read the file: {exc.strerror or exc}"),
                                index + 1, chain.prev_seq or 0, chain.prev_hash or GENESIS)
    return VerifyResult(True, chain.records, None, len(paths), chain.prev_seq or 0, chain.prev_hash or GENESIS)


def _verify_file(path: Path, chain: _Chain, first_file: bool) -> None:
    with path.open("rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            record = _parse(raw, lineno)
            seq, prev_hash, digest = _chain_fields(record, lineno)
            _check(chain, record, lineno, seq, prev_hash, digest, opens_file=lineno == 1 and not first_file)
            chain.prev_hash, chain.prev_seq = digest, seq
            chain.records += 1


def _parse(raw: bytes, lineno: int) -> dict[str, Any]:
    if not raw.endswith(b"\n"):
        raise _Broken(lineno, None, "truncated final line (no newline: a write was cut short)")
    if not raw.strip():
        raise _Broken(lineno, None, "empty line (the log never writes one)")
    try:
        record = json.loads(raw)
    except ValueError as exc:
        raise _Broken(lineno, None, f"not valid JSON ({exc})") from None
    if not isinstance(record, dict):
        raise _Broken(lineno, None, "not a JSON object")
    return record


def _chain_fields(record: dict[str, Any], lineno: int) -> tuple[int, str, str]:
    seq, prev_hash, digest = record.get("seq"), record.get("prev_hash"), record.get("hash")
    if not isinstance(seq, int) or isinstance(seq, bool) or not isinstance(prev_hash, str) \
            or not isinstance(digest, str):
        raise _Broken(lineno, seq if isinstance(seq, int) else None,
                      "missing or malformed seq, prev_hash or hash")
    return seq, prev_hash, digest


def _check(chain: _Chain, record: dict[str, Any], lineno: int, seq: int, prev_hash: str, digest: str,
           opens_file: bool) -> None:
    if chain_hash(prev_hash, record) != digest:
        raise _Broken(lineno, seq, "hash mismatch: the record was changed after it was written")
    hint = " (the first record of this file: is a file missing or given out of order?)" if opens_file else ""
    if chain.prev_seq is not None:
        expected = chain.prev_seq + 1
        if seq == chain.prev_seq:
            raise _Broken(lineno, seq, f"seq {seq} repeats the previous record's: a duplicated record{hint}")
        if seq < expected:
            raise _Broken(lineno, seq, f"seq {seq} after seq {chain.prev_seq}: records out of order{hint}")
        if seq > expected and chain.prev_seq == 0:
            raise _Broken(lineno, seq, f"the chain starts at seq {seq}, not 1: earlier records or files "
                                       "are missing (give every file, oldest first)")
        if seq > expected:
            missing = seq - expected
            raise _Broken(lineno, seq, f"seq {seq} after seq {chain.prev_seq}: {missing} record"
                                       f"{'s' if missing > 1 else ''} missing here (deleted or moved, or a "
                                       f"rotated file left out){hint}")
    if chain.prev_hash is not None and prev_hash != chain.prev_hash:
        raise _Broken(lineno, seq, "prev_hash is not the previous record's hash: a record was inserted, "
                                   f"replaced or moved{hint}")
