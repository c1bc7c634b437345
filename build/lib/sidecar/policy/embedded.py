"""The embedded Rego engine on regopy (rego-cpp), with hot reload.

The bundle is compiled once per revision into a regopy ``Bundle`` and queried at
its compiled entry point; a request never compiles anything. A watcher polls the
bundle directory's file signatures; a changed bundle is compiled off the event
loop and swapped in atomically. A bundle that fails to load or compile is
rejected: the previous revision keeps serving and the error shows in ``health``.

rego-cpp keeps a string exactly as it was given and writes it back into its JSON
output without escaping it, so a quote, backslash or control character in the
input (a lock reason, a user id) made the output unreadable and a NUL cut the
string short; an integer beyond 64 bits became 0. ``rego_input`` therefore hands
rego-cpp every string JSON-escaped, as its own JSON reader would have stored it,
and sends documents with big integers through that reader. Both engines must
decide identically: tests/integration/test_policy_agreement.py checks it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import regopy

from sidecar.aio import cancel_and_wait
from sidecar.config import PolicyConfig
from sidecar.errors import PolicyError
from sidecar.policy.bundle import Bundle, bundle_files, load_bundle
from sidecar.policy.decision import Decision, decision_from_result

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Compiled:
    bundle: Bundle
    plan: Any
    interpreter: Any


_INT64 = range(-(2**63), 2**63)
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f]')


class _NeedsJsonReader(Exception):
    """The document holds a value regopy's Python input conversion would corrupt."""


def _escaped(value: Any) -> Any:
    """``value`` with every string as rego-cpp stores a JSON string (escapes kept verbatim)."""
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)[1:-1] if _NEEDS_ESCAPE.search(value) else value
    if isinstance(value, Mapping):
        return {_escaped(k): _escaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_escaped(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int):
        if value not in _INT64:
            raise _NeedsJsonReader
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PolicyError("policy input holds a non-finite number, which JSON cannot carry")
        return value
    raise PolicyError(f"policy input holds a {type(value).__name__}, which JSON cannot carry")


def _json_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def rego_input(interpreter: Any, input_doc: Mapping[str, Any]) -> None:
    """Set ``input_doc`` as the interpreter's input so that rego-cpp sees what OPA sees.

    Raises PolicyError when the document can't be JSON (a NaN, a non-JSON type).
    """
    try:
        interpreter.set_input(regopy.Input(_escaped(input_doc)))
    except _NeedsJsonReader:
        # NOTE: slower (rego-cpp parses the text), but keeps integers beyond 64 bits exact.
        try:
            interpreter.set_input_term(_json_text(input_doc))
        except ValueError as exc:
            raise PolicyError(f"policy input is not JSON: {exc}") from exc


def compile_bundle(bundle: Bundle, entrypoint: str) -> _Compiled:
    """Compile a bundle for one entry point; raises PolicyError naming the problem."""
    try:
        builder = regopy.Interpreter()
        # NOTE: data as UTF-8 JSON text, as the input is, so that non-ASCII strings compare equal.
        builder.add_data_json(_json_text(bundle.data))
        for name, text in bundle.modules.items():
            builder.add_module(name, text)
        plan = builder.build(None, [entrypoint])
    except regopy.RegoError as exc:
        raise PolicyError(f"policy bundle {bundle.root} does not compile: {exc}") from exc
    except Exception as exc:  # NOTE: regopy raises plain exceptions for some syntax errors
        raise PolicyError(f"policy bundle {bundle.root} does not compile: {exc}") from exc
    return _Compiled(bundle, plan, regopy.Interpreter())


def query_bundle(bundle: Bundle, query: str, input_doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Evaluate an ad-hoc Rego query over ``bundle`` (slow: it compiles); returns its bindings.

    For tools such as ``statelock policy eval --explain``, never the request path.
    Raises PolicyError when the query does not compile or evaluate.
    """
    try:
        interpreter = regopy.Interpreter()
        interpreter.add_data_json(_json_text(bundle.data))
        for name, text in bundle.modules.items():
            interpreter.add_module(name, text)
        rego_input(interpreter, input_doc)
        output = interpreter.query(query)
    except PolicyError:
        raise
    except Exception as exc:
        raise PolicyError(f"query over {bundle.root} failed: {exc}") from exc
    if not output.ok():
        raise PolicyError(f"query over {bundle.root} failed: {str(output).strip()}")
    return [dict(r.bindings) for r in output.results if r.bindings]


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

    def load(self) -> None:
        """Load and compile the bundle now, on this thread, without watching it.

        Raises PolicyError when the bundle can't be used.
        """
        self._signature = _signature(self._root)
        self._compiled = self._load()
        self.last_reload = time.time()

    async def start(self) -> None:
        await asyncio.to_thread(self.load)
        self._watcher = asyncio.create_task(self._watch(), name="statelock-policy-watch")

    def _load(self) -> _Compiled:
        return compile_bundle(load_bundle(self._root), self._entrypoint)

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
            log.error("policy reload rejected, revision %s keeps serving: %s",
                      self.revision or "(none)", exc.message)
            return False
        old = self._compiled
        if old is not None and (old.bundle.digest, old.bundle.revision) == (compiled.bundle.digest,
                                                                compiled.bundle.revision):
            self.last_error = None
            return False
        self._compiled = compiled
        self.last_error = None
        self.last_reload = time.time()
        self.reloads += 1
        if old is not None and old.bundle.revision == compiled.bundle.revision:
            log.warning("policy reloaded with changed content but the same revision %s: "
                        "bump .manifest's revision so that decision records tell them apart",
                        compiled.bundle.revision)
        else:
            log.info("policy reloaded: revision %s -> %s",
                     old.bundle.revision if old else "(none)", compiled.bundle.revision)
        return True

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
        return decision_from_result(_evaluate(compiled, self._entrypoint, input_doc),
                                    compiled.bundle.revision)

    def evaluate(self, input_doc: Mapping[str, Any]) -> Any:
        """The raw decision document for ``input_doc``, None when it is undefined.

        Raises PolicyError when no bundle is loaded or the evaluation fails.
        """
        compiled = self._compiled
        if compiled is None:
            raise PolicyError("policy engine has no bundle loaded")
        return _evaluate(compiled, self._entrypoint, input_doc)

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
        }


def _rfc3339(when: float | None) -> str | None:
    return None if when is None else datetime.fromtimestamp(when, UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _evaluate(compiled: _Compiled, entrypoint: str, input_doc: Mapping[str, Any]) -> Any:
    try:
        rego_input(compiled.interpreter, input_doc)
        output = compiled.interpreter.query_bundle_entrypoint(compiled.plan, entrypoint)
        return result_of(output)
    except PolicyError:
        raise
    except Exception as exc:
        raise PolicyError(f"policy evaluation failed: {exc}") from exc


def result_of(output: Any) -> Any:
    """The value of the single expression regopy returned, or None when undefined.

    Raises PolicyError when the evaluation failed (a conflict, a builtin error in
    strict mode): OPA answers those with a 500, never with a decision.
    """
    if not output.ok():
        raise PolicyError(f"policy evaluation failed: {str(output).strip()}")
    results = output.results
    if not results:
        return None
    expressions = results[0].expressions
    return expressions[0] if expressions else None
