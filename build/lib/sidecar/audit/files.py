"""The files of a decision log: their names, their modes, and reading them from the end.

A log at ``<path>`` is the active file plus its rotated files ``<path>.000001``,
``<path>.000002``, ... (oldest first, and in that order under the shell glob
``<path>.*``). Everything else the log keeps beside it is named ``<path>-<what>``, so
that the glob never picks it up (``statelock audit verify <path>.* <path>``):

* ``<path>-checkpoints``: the signed checkpoints (``sidecar.audit.checkpoint``);
* ``<path>-writer.lock``: held by the one process that writes the log;
* ``<path>-signing.key``: the checkpoint signing key, unless configured elsewhere;
* ``<path>-torn`` (and ``<path>-checkpoints-torn``): a torn last line cut at open.

Files are created ``FILE_MODE`` (0640, 0600 under a stricter umask): the records hold
subjects and lock reasons, which are not for every local user.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

FILE_MODE = 0o640
_BLOCK = 65536
_ROTATED_SUFFIX = re.compile(r"\.(\d{6,})$")


def rotated_name(path: Path, n: int) -> Path:
    """The name the n-th rotation of ``path`` gets (``decisions.jsonl.000003``)."""
    return path.with_name(f"{path.name}.{n:06d}")


def rotated_files(path: str | Path) -> list[Path]:
    """The rotated files of a log, oldest first (by their number, not their name)."""
    base = Path(path)
    pattern = re.compile(re.escape(base.name) + r"\.(\d+)")
    found: list[tuple[int, Path]] = []
    if base.parent.is_dir():
        for entry in base.parent.iterdir():
            m = pattern.fullmatch(entry.name)
            if m and entry.is_file():
                found.append((int(m.group(1)), entry))
    return [p for _, p in sorted(found)]


def log_files(path: str | Path) -> list[Path]:
    """Every file of a log in chain order: the rotated ones, then the active one if present."""
    base = Path(path)
    return rotated_files(base) + ([base] if base.is_file() else [])


def next_rotation(path: Path) -> int:
    """The number the next rotation of ``path`` gets (one past the highest found)."""
    rotated = rotated_files(path)
    m = _ROTATED_SUFFIX.search(rotated[-1].name) if rotated else None
    return int(m.group(1)) + 1 if m else 1


def active_path(file: str | Path) -> Path:
    """The active file of the log that ``file`` belongs to (``d.jsonl.000003`` -> ``d.jsonl``)."""
    p = Path(file)
    return p.with_name(_ROTATED_SUFFIX.sub("", p.name))


def side_file(path: str | Path, what: str) -> Path:
    """``<path>-<what>``: a file kept beside the log, outside the ``<path>.*`` glob."""
    p = Path(path)
    return p.with_name(f"{p.name}-{what}")


def checkpoints_path(path: str | Path) -> Path:
    """Where the checkpoints of the log at ``path`` are written."""
    return side_file(path, "checkpoints")


def default_key_path(path: str | Path) -> Path:
    """The signing key of the log at ``path`` when ``audit.signing_key`` is not set."""
    return side_file(path, "signing.key")


def is_regular_or_absent(path: Path) -> bool:
    """True unless ``path`` exists as something other than a regular file (a device, a pipe)."""
    try:
        return stat.S_ISREG(path.stat().st_mode)
    except FileNotFoundError:
        return True


def open_fd(path: Path, flags: int, mode: int = FILE_MODE) -> int:
    """``os.open`` creating with ``mode`` (whatever the umask leaves of it, never more).

    An existing file that others may read or write loses those bits (a log written by
    an older release came out 0644), with a warning naming it.
    """
    fd = os.open(path, flags | os.O_CREAT, mode)
    try:
        current = os.fstat(fd)
        if stat.S_ISREG(current.st_mode) and current.st_mode & 0o007:
            os.fchmod(fd, stat.S_IMODE(current.st_mode) & ~0o007)
            log.warning("%s was readable by every local user (mode %o); now %o", path,
                        stat.S_IMODE(current.st_mode), stat.S_IMODE(current.st_mode) & ~0o007)
    except OSError:
        os.close(fd)
        raise
    return fd


def fsync_dir(directory: Path) -> None:
    """fsync a directory, so that renames and new files in it survive a crash."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def cut_torn_tail(path: Path) -> int:
    """Cut a final line that has no newline (a write cut short by a crash); bytes cut.

    Such a line belongs to a batch that was never acknowledged (acknowledgement
    follows the fsync of the whole batch). Its bytes are kept in ``<path>-torn``, a
    name outside the ``<path>.*`` glob of the rotated files.
    """
    if not path.exists() or path.stat().st_size == 0:
        return 0
    with path.open("r+b") as fh:
        size = fh.seek(0, os.SEEK_END)
        fh.seek(size - 1)
        if fh.read(1) == b"\n":
            return 0
        keep = size
        while keep > 0:
            start = max(0, keep - _BLOCK)
            fh.seek(start)
            chunk = fh.read(keep - start)
            nl = chunk.rfind(b"\n")
            if nl >= 0:
                keep = start + nl + 1
                break
            keep = start
        fh.seek(keep)
        fragment = fh.read()
        fd = open_fd(side_file(path, "torn"), os.O_WRONLY | os.O_APPEND)
        with open(fd, "ab") as torn:
            torn.write(fragment + b"\n")
        fh.truncate(keep)
        fh.flush()
        os.fsync(fh.fileno())
    return len(fragment)


def lines_from_end(path: Path) -> Iterator[tuple[int, bytes]]:
    """The lines of ``path``, last first: (byte offset where it starts, the line with its newline).

    Blank lines are skipped. Reads backwards in blocks, so the cost is that of the lines
    taken, not of the file.
    """
    with path.open("rb") as fh:
        pos = fh.seek(0, os.SEEK_END)
        rest = b""
        while pos > 0:
            start = max(0, pos - _BLOCK)
            fh.seek(start)
            data = fh.read(pos - start) + rest
            pos = start
            parts = data.split(b"\n")
            # NOTE: the first part may be the end of a line that starts in the block before.
            rest = parts[0] if pos > 0 else b""
            first = 1 if pos > 0 else 0
            end = pos + len(data)
            for i in range(len(parts) - 1, first - 1, -1):
                end -= len(parts[i]) + (1 if i < len(parts) - 1 else 0)
                if parts[i].strip():
                    yield end, parts[i] + b"\n"


def last_record(path: Path) -> dict[str, Any] | None:
    """The last record of ``path`` as a JSON object; None if it holds none.

    Raises ValueError if the last line is not a JSON object with ``seq`` and ``hash``:
    a chain can't be continued from it.
    """
    if not path.is_file() or path.stat().st_size == 0:
        return None
    for _, raw in lines_from_end(path):
        record = json.loads(raw)
        if not isinstance(record, dict) or not isinstance(record.get("seq"), int) \
                or not isinstance(record.get("hash"), str):
            raise ValueError(f"the last line of {path} is not a decision record with seq and hash")
        return record
    return None


def line_number(path: Path, offset: int) -> int:
    """The 1-based number of the line that starts at byte ``offset`` (reads up to it: for messages)."""
    count = 0
    with path.open("rb") as fh:
        left = offset
        while left > 0:
            chunk = fh.read(min(left, 1 << 20))
            if not chunk:
                break
            count += chunk.count(b"\n")
            left -= len(chunk)
    return count + 1
