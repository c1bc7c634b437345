"""Compiling a compliance case as OPA's e2e runner does, with caches so a second run is quick.

OPA's e2e runner registers one builtin of its own, ``test.sleep(duration)``, for the
cases that need time to pass (``time/time caching``); ``compiled_wasm`` compiles
against this OPA's capabilities plus that declaration, so such a case compiles and
the engine then refuses it for lacking the host builtin, as it would any other.

A cold run spends nearly all its time compiling: about 50 ms of ``opa build`` and
120 ms of wasmtime (Cranelift) per case. Both are deterministic, so both are cached
on disk between runs:

- the ``policy.wasm`` that ``opa build`` made, keyed by the opa binary (path, size,
  mtime), the entry point and the modules, under ``$STATELOCK_COMPLIANCE_CACHE``
  (default ``~/.cache/statelock/compliance``); a failed build is never cached;
- wasmtime's own compiled-code cache (``Config.cache``, in ``~/.cache/wasmtime``),
  switched on for the one Engine each worker process uses.

``STATELOCK_COMPLIANCE_CACHE=0`` turns both off (every run cold, as on a fresh machine).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import subprocess
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import wasmtime

from sidecar.policy.wasm import runtime
from sidecar.policy.wasm.compiler import DivergentBuiltin, compile_wasm, divergent_calls, find_opa

__all__ = ["CACHE_ENV", "E2E_BUILTINS", "cache_dir", "compiled_wasm", "e2e_capabilities", "prepare_engine"]

CACHE_ENV = "STATELOCK_COMPLIANCE_CACHE"
E2E_BUILTINS: list[dict[str, Any]] = [
    {"name": "test.sleep",
     "decl": {"type": "function", "args": [{"type": "string"}], "result": {"type": "null"}}},
]


@functools.cache
def e2e_capabilities() -> dict[str, Any]:
    """This OPA's capabilities (``opa capabilities --current``) with the e2e runner's own builtins."""
    done = subprocess.run([find_opa(), "capabilities", "--current"], capture_output=True, text=True,
                          check=True, timeout=60)
    caps: dict[str, Any] = json.loads(done.stdout)
    caps["builtins"] = [*caps["builtins"], *E2E_BUILTINS]
    return caps


def cache_dir() -> Path | None:
    """Where compiled modules are kept; None when caching is off."""
    setting = os.environ.get(CACHE_ENV, "")
    if setting == "0":
        return None
    return Path(setting) if setting else Path.home() / ".cache" / "statelock" / "compliance"


def prepare_engine() -> None:
    """Give this process's Wasm engine wasmtime's compiled-code cache (once, before any policy loads)."""
    if cache_dir() is None or runtime._ENGINE is not None:
        return
    config = wasmtime.Config()
    config.cache = True
    # NOTE: the runtime keeps one Engine per process; this sets it up with a disk cache
    # before the first policy asks for it. Compiled code, and so behaviour, is the same.
    runtime._ENGINE = wasmtime.Engine(config)


def _key(modules: Mapping[str, str], entrypoint: str) -> str:
    opa = Path(find_opa()).resolve()
    stat = opa.stat()
    identity = [str(opa), stat.st_size, stat.st_mtime_ns, E2E_BUILTINS, entrypoint, sorted(modules.items())]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()


def compiled_wasm(modules: Mapping[str, str], entrypoint: str, timeout_s: float) -> bytes:
    """``compile_wasm`` of ``modules`` for ``entrypoint`` with ``e2e_capabilities``; cached when caching is on."""
    divergent = divergent_calls(modules)
    if divergent:  # NOTE: what compile_wasm refuses, a cached module must not let through
        raise DivergentBuiltin(divergent)
    directory = cache_dir()
    if directory is None:
        return compile_wasm(modules, [entrypoint], timeout_s=timeout_s, capabilities=e2e_capabilities())
    path = directory / f"{_key(modules, entrypoint)}.wasm"
    if path.is_file():
        return path.read_bytes()
    wasm = compile_wasm(modules, [entrypoint], timeout_s=timeout_s, capabilities=e2e_capabilities())
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=directory, delete=False, suffix=".tmp") as tmp:
        tmp.write(wasm)
    os.replace(tmp.name, path)
    return wasm
