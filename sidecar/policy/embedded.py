"""The embedded Rego engine on regopy (rego-cpp), with hot reload.

The bundle is compiled once per revision into a regopy ``Bundle`` and queried at
its compiled entry point; a request never compiles anything. A watcher polls the
bundle directory's file signatures; a changed bundle is compiled off the event
loop and swapped in atomically. A bundle that fails to load or compile is
rejected: the previous revision keeps serving and the error shows in ``health``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import regopy

from sidecar.config import PolicyConfig
from sidecar.errors import PolicyError
from sidecar.policy.bundle import Bundle, load_bundle
from sidecar.policy.decision import Decision, decision_from_result

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Compiled:
    bundle: Bundle
    plan: Any
    interpreter: Any


def compile_bundle(bundle: Bundle, entrypoint: str) -> _Compiled:
    """Compile a bundle for one entry point; raises PolicyError naming the problem."""
    try:
        builder = regopy.Interpreter()
        builder.add_data(bundle.data)
        for name, text in bundle.modules.items():
            builder.add_module(name, text)
        plan = builder.build(None, [entrypoint])
    except regopy.RegoError as exc:
        raise PolicyError(f"policy bundle {bundle.root} does not compile: {exc}") from exc
    except Exception as exc:  # NOTE: regopy raises plain exceptions for some syntax errors
        raise PolicyError(f"policy bundle {bundle.root} does not compile: {exc}") from exc
    return _Compiled(bundle, plan, regopy.Interpreter())


def _signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    out = []
    for path in sorted(root.rglob("*")):
        if path.is_file():
            st = path.stat()
            out.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(out)


class EmbeddedEngine:
    """A PolicyEngine evaluating the bundle in process (see module docstring)."""

    name = "embedded"

    def __init__(self, cfg: PolicyConfig, reload_interval_s: float = 0.25) -> None:
        self._root = Path(cfg.bundle)
        self._entrypoint = cfg.decision_path
        self._interval = reload_interval_s
        self._compiled: _Compiled | None = None
        self._signature: tuple[tuple[str, int, int], ...] = ()
        self._watcher: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.last_reload: float | None = None
        self.reloads = 0
        self.reload_failures = 0

    @property
    def revision(self) -> str:
        return self._compiled.bundle.revision if self._compiled else ""

    async def start(self) -> None:
        self._signature = await asyncio.to_thread(_signature, self._root)
        self._compiled = await asyncio.to_thread(self._load)
        self.last_reload = time.time()
        self._watcher = asyncio.create_task(self._watch(), name="statelock-policy-watch")

    def _load(self) -> _Compiled:
        return compile_bundle(load_bundle(self._root), self._entrypoint)

    async def close(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._watcher
            self._watcher = None

    async def reload_if_changed(self) -> bool:
        """Reload when the bundle's files changed; True if a new revision is now serving."""
        sig = await asyncio.to_thread(_signature, self._root)
        if sig == self._signature:
            return False
        self._signature = sig
        try:
            compiled = await asyncio.to_thread(self._load)
        except PolicyError as exc:
            self.last_error = exc.message
            self.reload_failures += 1
            log.error("policy reload rejected, revision %s keeps serving: %s",
                      self.revision, exc.message)
            return False
        old = self.revision
        self._compiled = compiled
        self.last_error = None
        self.last_reload = time.time()
        self.reloads += 1
        log.info("policy reloaded: revision %s -> %s", old, compiled.bundle.revision)
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.reload_if_changed()
            except OSError as exc:
                self.last_error = f"cannot read policy bundle: {exc}"
                log.error("%s", self.last_error)

    async def decide(self, input_doc: Mapping[str, Any]) -> Decision:
        return self.decide_sync(input_doc)

    def decide_sync(self, input_doc: Mapping[str, Any]) -> Decision:
        """Decide on the calling thread (the evaluation takes well under a millisecond)."""
        compiled = self._compiled
        if compiled is None:
            raise PolicyError("policy engine has no bundle loaded")
        try:
            compiled.interpreter.set_input(regopy.Input(dict(input_doc)))
            output = compiled.interpreter.query_bundle_entrypoint(compiled.plan, self._entrypoint)
        except Exception as exc:
            raise PolicyError(f"policy evaluation failed: {exc}") from exc
        return decision_from_result(_result_of(output), compiled.bundle.revision)

    def health(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "ok": self._compiled is not None and self.last_error is None,
            "revision": self.revision,
            "last_error": self.last_error,
            "reloads": self.reloads,
            "reload_failures": self.reload_failures,
        }


def _result_of(output: Any) -> Any:
    """The value of the single expression regopy returned, or None when undefined."""
    text = str(output).strip()
    if text == "undefined":
        return None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise PolicyError(f"policy engine returned unreadable output: {exc}") from exc
    if isinstance(doc, list):
        doc = doc[0] if doc else {}
    if not isinstance(doc, dict):
        return None
    expressions = doc.get("expressions")
    if not expressions:
        return None
    return expressions[0]
