"""The shipper's on-disk spool (sidecar.audit.spool): batches, their files, their modes."""

from __future__ import annotations

import gzip
import json
import os
import stat
from pathlib import Path

import pytest

from sidecar.audit.spool import Spool, read_batch


def _spool(directory: Path, drops: list[tuple[int, str]], **kwargs: int) -> Spool:
    limits = {"max_bytes": 1 << 20, "max_batch_records": 3, "max_batch_bytes": 1 << 20, **kwargs}
    return Spool(directory, fsync=False, on_drop=lambda n, why: drops.append((n, why)), **limits)


def _encoded(count: int) -> list[bytes]:
    return [json.dumps({"n": n}).encode() for n in range(count)]


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_spool_files_are_0640_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    old = os.umask(umask)
    try:
        spool = _spool(tmp_path / "spool", [])
        spool.open()
        spool.persist(_encoded(7))
        spool.close()
    finally:
        os.umask(old)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "spool").iterdir()}
    assert set(modes) == {".lock", "000000000001-3.json.gz", "000000000002-3.json.gz", "000000000003-1.json.gz"}
    assert set(modes.values()) == {0o640}


def test_batches_are_cut_spooled_and_picked_up_again(tmp_path: Path) -> None:
    drops: list[tuple[int, str]] = []
    spool = _spool(tmp_path, drops)
    spool.open()
    spool.persist(_encoded(5))
    assert [(b.seq, b.records) for b in spool.batches] == [(1, 3), (2, 2)]
    assert json.loads(gzip.decompress(read_batch(spool.batches[0]))) == [{"n": 0}, {"n": 1}, {"n": 2}]
    spool.acknowledged(spool.batches[0])
    spool.close()
    again = _spool(tmp_path, drops)
    again.open()
    assert [(b.seq, b.records) for b in again.batches] == [(2, 2)]
    assert again.backlog_records == 2 and again.spooled == 0 and drops == []
    again.close()


def test_a_second_spool_on_one_directory_is_refused(tmp_path: Path) -> None:
    first = _spool(tmp_path, [])
    first.open()
    with pytest.raises(OSError, match="in use by another shipper"):
        _spool(tmp_path, []).open()
    first.close()


def test_a_full_spool_drops_and_says_why(tmp_path: Path) -> None:
    drops: list[tuple[int, str]] = []
    spool = _spool(tmp_path, drops, max_bytes=60)
    spool.open()
    spool.persist(_encoded(6))
    spool.close()
    assert spool.spooled + sum(n for n, _ in drops) == 6
    assert drops and all("the spool is full" in why for _, why in drops)
