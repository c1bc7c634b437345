"""The open-time check of a decision log's tail: is the chain intact where we pick it up?

``check_tail`` reads the log backwards from its end and verifies, with the rules of
``sidecar.audit.verify``:

* with a (signature-checked) last checkpoint: every record since it. The record with
  the checkpoint's ``seq`` must carry the checkpoint's hash, and each later record
  must link to the one before. A log that ends before that ``seq`` was truncated.
* with no checkpoint (a log from before checkpoints, or a first start): the last
  ``TAIL_RECORDS`` records, the first of them taken on trust.

The cost is that of the records read: since a checkpoint is written at least every
``checkpoint_interval_s`` while records come in, and at close, that is at most one
interval's worth. ``statelock audit verify`` is the check of the whole history.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.audit.checkpoint import head
from sidecar.audit.files import line_number, lines_from_end
from sidecar.audit.record import chain_hash
from sidecar.audit.verify import Chain, ChainBreak, chain_fields, check_link, parse_line

TAIL_RECORDS = 1000


@dataclass(frozen=True)
class TailCheck:
    """What ``check_tail`` found.

    ``how`` says what was checked (for ``/health`` and the log line); ``verified_from``
    and ``verified_through`` are the first and last seq that checked out (None and 0
    for an empty log); ``broken_at`` is None, or where the chain breaks: ``seq`` (None
    if unreadable), ``file``, ``line`` and ``reason``.
    """

    how: str
    verified_from: int | None
    verified_through: int
    broken_at: dict[str, Any] | None = None


@dataclass(frozen=True)
class _Line:
    file: Path
    offset: int
    raw: bytes
    seq: int | None


def check_tail(files: Sequence[Path], checkpoint: Mapping[str, Any] | None,
               bound: int = TAIL_RECORDS) -> TailCheck:
    """Check the tail of the log made of ``files`` (oldest first; see the module docstring).

    Raises OSError if a file can't be read.
    """
    covered = head(checkpoint) if checkpoint is not None else None
    lines = _read_back(files, covered[0] if covered else None, bound)
    if covered is None:
        how = f"the last {len(lines)} records (no checkpoint yet)" if lines else "empty log"
        return _verify(lines, None, how)
    assert checkpoint is not None
    seq, digest = covered
    number = checkpoint.get("checkpoint_seq")
    how = f"the records since checkpoint {number} (seq {seq})"
    if seq == 0:
        return _verify(lines, Chain(digest, 0), how)
    if not lines or lines[0].seq is None or lines[0].seq < seq:
        last = next((ln.seq for ln in reversed(lines) if ln.seq is not None), 0)
        if not lines or (lines[-1].seq is not None and lines[-1].seq < seq):
            return _broken(how, None, 0, lines[-1] if lines else None, last + 1,
                           f"truncated: the log ends at seq {last}, before checkpoint {number}'s seq {seq}: "
                           f"{seq - last} record{'s' if seq - last != 1 else ''} missing from its end")
        return _broken(how, None, 0, lines[0], None,
                       f"record {seq}, which checkpoint {number} covers, is not in the log: records missing")
    if lines[0].seq > seq:
        return _broken(how, None, 0, lines[0], lines[0].seq,
                       f"the log's oldest record is seq {lines[0].seq}, after checkpoint {number}'s seq {seq}: "
                       "older files are missing")
    try:
        record = parse_line(lines[0].raw, 0)
        _, prev_hash, own = chain_fields(record, 0)
    except ChainBreak as exc:
        return _broken(how, None, 0, lines[0], seq, exc.reason)
    if own != digest:
        return _broken(how, None, 0, lines[0], seq,
                       f"record {seq} does not have the hash checkpoint {number} signed: the log was rewritten")
    if chain_hash(prev_hash, record) != own:
        return _broken(how, None, 0, lines[0], seq, "hash mismatch: the record was changed after it was written")
    chain = Chain(digest, seq)
    return _verify(lines[1:], chain, how, first=seq)


def _read_back(files: Sequence[Path], stop_at: int | None, bound: int) -> list[_Line]:
    """The lines of the tail, oldest first: back to the record ``stop_at`` (or one before), else ``bound``."""
    taken: list[_Line] = []
    for path in reversed(files):
        for offset, raw in lines_from_end(path):
            seq = _seq_of(raw)
            taken.append(_Line(path, offset, raw, seq))
            if stop_at is not None and seq is not None and seq <= stop_at:
                return taken[::-1]
            if stop_at is None and len(taken) >= bound:
                return taken[::-1]
    return taken[::-1]


def _seq_of(raw: bytes) -> int | None:
    try:
        seq = parse_line(raw, 0).get("seq")
    except ChainBreak:
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def _verify(lines: Sequence[_Line], chain: Chain | None, how: str, first: int | None = None) -> TailCheck:
    chain = chain or Chain(None, None)
    start = first
    for ln in lines:
        try:
            record = parse_line(ln.raw, 0)
            seq, prev_hash, digest = chain_fields(record, 0)
            check_link(chain, record, 0, seq, prev_hash, digest)
        except ChainBreak as exc:
            return _broken(how, start, chain.prev_seq or 0, ln, exc.seq, exc.reason)
        if start is None:
            start = seq
    return TailCheck(how, start, chain.prev_seq or 0)


def _broken(how: str, start: int | None, through: int, ln: _Line | None, seq: int | None,
            reason: str) -> TailCheck:
    where: dict[str, Any] = {"seq": seq, "file": str(ln.file) if ln else None,
                             "line": line_number(ln.file, ln.offset) if ln else None, "reason": reason}
    return TailCheck(how, start, through, where)
