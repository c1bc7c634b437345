"""Which worker a process is, and the per-worker names of what a worker may not share.

With ``server.workers: N`` (N > 1) a supervisor runs N worker processes on one port.
Each worker keeps its own decision-log chain (one writer per chain), its own
shipping spool and its own checkpoint key unless ``audit.signing_key`` names one
for all. Worker 1 uses the configured names themselves, so going from 1 worker to
N and back continues the same chain; worker k > 1 inserts ``-w<k>`` before the
name's suffix: ``decisions.jsonl`` -> ``decisions-w2.jsonl``. What the workers share
is shared on purpose: the lock table (and its guard file) and the decision index.
Nothing here does I/O except ``worker_chains``, which lists what is on disk.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from sidecar.audit.files import side_file
from sidecar.config import Config


@dataclass(frozen=True)
class WorkerInfo:
    """This process's place among the workers: ``index`` (1-based) of ``count``, and its pid."""

    index: int = 1
    count: int = 1
    pid: int = 0

    def describe(self) -> dict[str, int]:
        """What ``/health`` shows: which worker answered, and how many there are."""
        return {"index": self.index, "count": self.count, "pid": self.pid or os.getpid()}


def worker_path(path: str | Path, index: int) -> Path:
    """The name worker ``index`` uses for ``path``: ``path`` itself for worker 1, else ``<stem>-w<k><suffix>``."""
    p = Path(path)
    if index <= 1:
        return p
    return p.with_name(f"{p.stem}-w{index}{p.suffix}")


def worker_chains(path: str | Path, count: int = 1) -> list[Path]:
    """Every worker chain of the log at ``path``: the first ``count`` names, and any other found on disk.

    A chain counts as found when its active file or a rotated file of it exists, so a
    chain left by a run with more workers is still listed (it must verify too).
    Ordered by worker number.
    """
    base = Path(path)
    numbers = set(range(1, count + 1))
    pattern = re.compile(re.escape(base.stem) + r"-w(\d+)" + re.escape(base.suffix) + r"(\.\d+)?")
    if base.parent.is_dir():
        for entry in base.parent.iterdir():
            m = pattern.fullmatch(entry.name)
            if m and int(m.group(1)) > 1:
                numbers.add(int(m.group(1)))
    return [worker_path(base, n) for n in sorted(numbers)]


def worker_config(cfg: Config, index: int) -> Config:
    """The config worker ``index`` runs: its own chain and spool, the one shared decision index.

    Worker 1 (and a single process) gets ``cfg`` unchanged. A worker k > 1 gets
    ``audit.path`` and ``audit.shipping.spool_dir`` renamed (``worker_path``), and
    ``audit.index_path`` pinned to the index of the configured log, so that every
    worker feeds, and every console reads, the same index.
    """
    if index <= 1:
        return cfg
    audit = cfg.audit
    return dataclasses.replace(cfg, audit=dataclasses.replace(
        audit, path=str(worker_path(audit.path, index)),
        index_path=audit.index_path or str(side_file(audit.path, "index.db")),
        shipping=dataclasses.replace(audit.shipping, spool_dir=str(worker_path(audit.shipping.spool_dir, index)))))
