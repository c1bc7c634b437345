"""Checkpoints on the real request path: the configured key and interval reach the log."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import Awaitable, Callable
from pathlib import Path

from sidecar.audit.signing import key_id, load_public
from tests.functional.conftest import Stack

StackFactory = Callable[..., Awaitable[Stack]]


async def test_the_configured_key_signs_checkpoints_of_served_requests(
    stack_factory: StackFactory, tmp_path: Path,
) -> None:
    key = tmp_path / "keys" / "audit-signing.key"
    stack = await stack_factory(audit={"signing_key": str(key), "checkpoint_interval_s": 0.05})
    sid = stack.nova.add_server()
    assert (await stack.action(sid, {"os-stop": None})).status == 202
    checkpoints = tmp_path / "decisions.jsonl-checkpoints"
    for _ in range(200):
        if checkpoints.exists() and checkpoints.read_text():
            break
        await asyncio.sleep(0.01)
    last = json.loads(checkpoints.read_text().splitlines()[-1])
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    assert not (tmp_path / "decisions.jsonl-signing.key").exists()
    assert last["key_id"] == key_id(load_public(key))
    # NOTE: the checkpoint may fall between the decision and its completion: it covers one of them.
    assert (last["log"]["seq"], last["log"]["hash"]) in {(r["seq"], r["hash"]) for r in stack.records()}
