"""The embedded engine: the bundle compiled by OPA to WebAssembly, evaluated in process, with hot reload.

Each revision of the bundle is compiled once by OPA's own compiler
(``opa build -t wasm``, off the event loop) and instantiated on wasmtime with the
bundle's data; a request never compiles anything. Because the module is OPA's
compiler output, it decides as OPA does: the builtins it leaves to the host are
implemented with OPA's semantics (``sidecar.policy.wasm.builtins``), and a bundle
that needs one this engine lacks is refused at load, naming it.

A watcher polls the bundle directory's file signatures; a changed bundle is
compiled and swapped in atomically. A bundle that does not compile, lacks the
configured entry point, or needs an unsupported builtin is rejected with OPA's
own message: the previous revision keeps deciding, ``health`` shows the error and
``on_reload`` (the reload metric) counts the failure.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from sidecar.aio import cancel_and_wait
from sidecar.config import PolicyConfig
from sidecar.errors import PolicyError
from sidecar.policy.bundle import Bundle, bundle_files, load_bundle
from sidecar.policy.decision import Decision, decision_from_result
from sidecar.policy.wasm.compiler import compile_wasm
from sidecar.policy.wasm.runtime import WasmPolicy
from sidecar.policy.wasm.values import result_json

log = logging.getLogger(__name__)

KEPT_REVISIONS = 5
EXPLAIN_PACKAGE = "statelock_explain"


@dataclass(frozen=True)
class Compiled:
    """One revision of a bundle, compiled and instantiated for one entry point."""

    bundle: Bundle
    policy: WasmPolicy
    entrypoint_id: int


def input_json(input_doc: Mapping[str, Any]) -> bytes:
    """The input's JSON text; PolicyError when it can't be JSON (a NaN, a non-JSON type)."""
    action = input_doc.get("action")
    if isinstance(action, Mapping):
        _refuse_non_finite(action.get("params"))
    try:
        # NOTE: orjson is ~7x faster than json and refuses integers beyond 64 bits (json
        # keeps them exact, below). It writes NaN as null, so non-finite numbers are refused
        # above in action.params, the one part of a policy input that carries request values.
        return orjson.dumps(input_doc)
    except (orjson.JSONEncodeError, TypeError):
        try:
            return json.dumps(input_doc, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        except (TypeError, ValueError) as exc:
            raise PolicyError(f"policy input is not JSON: {exc}") from exc


def _refuse_non_finite(value: Any) -> None:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyError("policy input holds a non-finite number, which JSON cannot carry")
    elif isinstance(value, Mapping):
        for item in value.values():
            _refuse_non_finite(item)
    elif isinstance(value, list | tuple):
        for item in value:
            _refuse_non_finite(item)


def compile_bundle(bundle: Bundle, entrypoint: str, opa: str | None = None) -> Compiled:
    """Compile ``bundle`` for ``entrypoint`` with OPA and instantiate it.

    Raises PolicyError with OPA's own message (``file:row: message``) when the bundle
    does not compile or lacks the entry point, and UnsupportedBuiltin (a PolicyError)
    naming the builtins this engine does not implement.
    """
    try:
        wasm = compile_wasm(bundle.modules, [entrypoint], opa=opa)
    except PolicyError as exc:
        raise PolicyError(f"policy bundle {bundle.root} does not compile: {exc.message}") from exc
    try:
        policy = WasmPolicy(wasm, bundle.data)
        return Compiled(bundle, policy, policy.entrypoint_id(entrypoint))
    except PolicyError as exc:
        raise PolicyError(f"policy bundle {bundle.root} is refused: {exc.message}") from exc


def evaluate_compiled(compiled: Compiled, input_doc: Mapping[str, Any]) -> Decision:
    """The decision of a compiled bundle for one input; PolicyError if unusable."""
    return decision_from_result(_evaluate(compiled, input_doc), compiled.bundle.revision)


def _evaluate(compiled: Compiled, input_doc: Mapping[str, Any]) -> Any:
    raw = compiled.policy.evaluate_raw(compiled.entrypoint_id, input_json(input_doc), values_out=True)
    results = result_json(raw, orjson.loads)
    return results[0].get("result") if results else None


def explain_bundle(bundle: Bundle, rule: str, input_doc: Mapping[str, Any], opa: str | None = None) -> Any:
    """The value of ``rule`` (Rego ``name := value``, over the bundle's rules) for one input, None if undefined.

    For tools such as ``statelock policy eval --explain``, never the request path: it
    compiles the bundle with the rule added as package ``statelock_explain``.
    Raises PolicyError when it does not compile or evaluate.
    """
    name = rule.split(":=", 1)[0].strip()
    modules = dict(bundle.modules)
    modules[f"{EXPLAIN_PACKAGE}.rego"] = f"package {EXPLAIN_PACKAGE}\n\n{rule}\n"
    compiled = compile_bundle(Bundle(bundle.root, modules, bundle.data, bundle.revision, bundle.digest),
                              f"{EXPLAIN_PACKAGE}/{name}", opa)
    return _evaluate(compiled, input_doc)


def data_value(data: Mapping[str, Any], path: Sequence[str]) -> Any:
    """The value at ``path`` in a bundle's data document, None when absent."""
    node: Any = data
    for part in path:
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def _signature(root: Path) -> tuple[tuple[str, int, int], ...]:
    """(path, mtime, size) of each file of the bundle; empty when the directory is gone."""
    if not root.is_dir():
        return ()
    out = []
    for path in bundle_files(root):
        try:
            st = path.stat()
        except FileNotFoundError:  # NOTE: replaced between the listing and the stat; the next poll sees it
            continue
        out.append((str(path), st.st_mtime_ns, st.st_size))
    return tuple(out)


class EmbeddedEngine:
    """A PolicyEngine evaluating the bundle in process (see module docstring)."""

    name = "embedded"

    def __init__(self, cfg: PolicyConfig, reload_interval_s: float = 0.25,
                 on_reload: Callable[[bool], None] | None = None) -> None:
        self._root = Path(cfg.bundle)
        self._entrypoint = cfg.decision_path
        self._interval = reload_interval_s
        self._on_reload = on_reload
        self._opa = cfg.opa_binary or None
        self._compiled: Compiled | None = None
        # NOTE: the last few revisions stay compiled, so a recorded input can be replayed under its own.
        self._kept: OrderedDict[str, Compiled] = OrderedDict()
        self._signature: tuple[tuple[str, int, int], ...] = ()
        self._watcher: asyncio.Task[None] | None = None
        self.last_error: str | None = None
        self.last_reload: float | None = None
        self.reloads = 0
        self.reload_failures = 0

    @property
    def revision(self) -> str:
        return self._compiled.bundle.revision if self._compiled else ""

    def load(self) -> None:
        """Load and compile the bundle now, on this thread, without watching it.

        Raises PolicyError when the bundle can't be used.
        """
        self._signature = _signature(self._root)
        self._serve(self._load())
        self.last_reload = time.time()

    async def start(self) -> None:
        await asyncio.to_thread(self.load)
        self._watcher = asyncio.create_task(self._watch(), name="statelock-policy-watch")

    def _serve(self, compiled: Compiled) -> None:
        self._compiled = compiled
        self._kept[compiled.bundle.revision] = compiled
        self._kept.move_to_end(compiled.bundle.revision)
        while len(self._kept) > KEPT_REVISIONS:
            self._kept.popitem(last=False)

    def loaded_revisions(self) -> tuple[str, ...]:
        """The revisions still compiled, oldest first (the last is the one serving)."""
        return tuple(self._kept)

    async def decide_at(self, input_doc: Mapping[str, Any], revision: str) -> Decision | None:
        """The decision of revision ``revision`` for ``input_doc``; None when it is no longer loaded.

        Raises PolicyError when the evaluation fails.
        """
        compiled = self._kept.get(revision)
        if compiled is None:
            return None
        return evaluate_compiled(compiled, input_doc)

    async def data_at(self, path: Sequence[str]) -> Any:
        """The serving bundle's data at ``path`` (``("statelock", "audit_roles")``), None when absent."""
        compiled = self._compiled
        if compiled is None:
            raise PolicyError("policy engine has no bundle loaded")
        return data_value(compiled.bundle.data, path)

    def _load(self) -> Compiled:
        return compile_bundle(load_bundle(self._root), self._entrypoint, self._opa)

    async def close(self) -> None:
        await cancel_and_wait(self._watcher)
        self._watcher = None

    async def reload_if_changed(self) -> bool:
        """Reload when the bundle's files changed; True if a new revision is now serving.

        A bundle that does not load or compile is rejected and logged once (until
        the files change again); the revision serving until then keeps serving.
        """
        sig = await asyncio.to_thread(_signature, self._root)
        if sig == self._signature:
            return False
        self._signature = sig
        try:
            compiled = await asyncio.to_thread(self._load)
        except PolicyError as exc:
            self.last_error = exc.message
            self.reload_failures += 1
            self._count(False)
            log.error("policy reload rejected, revision %s keeps serving: %s",
                      self.revision or "(none)", exc.message)
            return False
        old = self._compiled
        if old is not None and (old.bundle.digest, old.bundle.revision) == (compiled.bundle.digest,
                                                                compiled.bundle.revision):
            self.last_error = None
            return False
        self._serve(compiled)
        self.last_error = None
        self.last_reload = time.time()
        self.reloads += 1
        self._count(True)
        if old is not None and old.bundle.revision == compiled.bundle.revision:
            log.warning("policy reloaded with changed content but the same revision %s: "
                        "bump .manifest's revision so that decision records tell them apart",
                        compiled.bundle.revision)
        else:
            log.info("policy reloaded: revision %s -> %s",
                     old.bundle.revision if old else "(none)", compiled.bundle.revision)
        return True

    def _count(self, ok: bool) -> None:
        if self._on_reload is not None:
            self._on_reload(ok)

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            try:
                await self.reload_if_changed()
            except Exception as exc:  # NOTE: the watcher must outlive any one bad poll
                self.last_error = f"cannot read policy bundle {self._root}: {exc}"
                log.error("%s", self.last_error)

    async def decide(self, input_doc: Mapping[str, Any]) -> Decision:
        return self.decide_sync(input_doc)

    def decide_sync(self, input_doc: Mapping[str, Any]) -> Decision:
        """Decide on the calling thread (the evaluation takes well under a millisecond)."""
        compiled = self._compiled
        if compiled is None:
            raise PolicyError("policy engine has no bundle loaded")
        return decision_from_result(_evaluate(compiled, input_doc), compiled.bundle.revision)

    def evaluate(self, input_doc: Mapping[str, Any]) -> Any:
        """The raw decision document for ``input_doc``, None when it is undefined.

        Raises PolicyError when no bundle is loaded or the evaluation fails.
        """
        compiled = self._compiled
        if compiled is None:
            raise PolicyError("policy engine has no bundle loaded")
        return _evaluate(compiled, input_doc)

    def health(self) -> dict[str, Any]:
        return {
            "engine": self.name,
            "ok": self._compiled is not None and self.last_error is None,
            "revision": self.revision,
            "digest": self._compiled.bundle.digest if self._compiled else None,
            "last_error": self.last_error,
            "last_reload": _rfc3339(self.last_reload),
            "reloads": self.reloads,
            "reload_failures": self.reload_failures,
            "host_builtins": list(self._compiled.policy.builtins_used) if self._compiled else [],
        }


def _rfc3339(when: float | None) -> str | None:
    return None if when is None else datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")

