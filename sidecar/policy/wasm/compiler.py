"""Compiling Rego to WebAssembly with OPA's own compiler (``opa build -t wasm``).

The modules are written to a private directory under their bundle-relative names
and compiled from there, so OPA's messages name the policy author's files as they
are in the bundle (``statelock/authz.rego:158: rego_parse_error: ...``). A bundle
that does not compile, or whose entry point does not exist, is refused with OPA's
own text.
"""

from __future__ import annotations

import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

from sidecar.errors import PolicyError

__all__ = ["DIVERGENT_NATIVE", "OPA_HELP", "OPA_VERSION", "DivergentBuiltin", "compile_wasm", "divergent_calls",
           "find_opa"]

OPA_VERSION = "1.22.2"
REPO_ROOT = Path(__file__).resolve().parents[3]
OPA_HELP = (f"OPA is not installed: run `make opa` (builds OPA v{OPA_VERSION} into .tools/bin with go install), "
            "put an `opa` binary on PATH, or name one (policy.opa_binary in the config, --opa PATH "
            "on the command line)")
COMPILE_TIMEOUT_S = 120.0


# NOTE: builtins OPA compiles into the Wasm module itself (so the host can't supply them)
# whose Wasm implementation answers some inputs otherwise than OPA (found by
# tests/integration/test_engine_differential.py). A bundle calling one is refused.
DIVERGENT_NATIVE = {
    "json.marshal": "OPA's Wasm library writes an object's keys in hash order and <, >, & unescaped; "
                    "OPA sorts the keys and escapes them",
    "base64.decode": "OPA's Wasm library accepts text without its '=' padding and refuses the empty string; "
                     "OPA does the opposite",
    "base64url.decode": "OPA's Wasm library refuses the empty string, which OPA decodes to \"\"",
    "to_number": "OPA's Wasm library reads number texts (\"1e400\") that OPA refuses, and refuses some it reads",
}
_CALL = re.compile(r"(?<![\w.])(" + "|".join(re.escape(n) for n in DIVERGENT_NATIVE) + r")\s*\(")
_COMMENT = re.compile(r'"(?:[^"\\\n]|\\.)*"|`[^`]*`|#[^\n]*')


class DivergentBuiltin(PolicyError):
    """The bundle calls a builtin whose Wasm implementation does not answer as OPA does."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        why = "; ".join(f"{name}: {DIVERGENT_NATIVE[name]}" for name in names)
        super().__init__(
            f"the embedded engine does not evaluate {', '.join(names)} exactly as OPA does ({why}); "
            "use policy.engine: opa to evaluate this bundle with an OPA server")


def divergent_calls(modules: Mapping[str, str]) -> list[str]:
    """The builtins of ``DIVERGENT_NATIVE`` that the modules' code calls (comments and strings left out)."""
    found: set[str] = set()
    for text in modules.values():
        code = _COMMENT.sub(lambda m: "" if m.group(0).startswith("#") else '""', text)
        found.update(m.group(1) for m in _CALL.finditer(code))
    return sorted(found)


def find_opa(explicit: str | None = None) -> str:
    """The opa executable (``explicit``, ``PATH``, then ``.tools/bin``); PolicyError saying how to get one."""
    if explicit:
        if Path(explicit).is_file() and os.access(explicit, os.X_OK):
            return explicit
        raise PolicyError(f"{explicit} is not an executable file. {OPA_HELP}")
    found = shutil.which("opa")
    if found:
        return found
    local = REPO_ROOT / ".tools" / "bin" / "opa"
    if local.is_file() and os.access(local, os.X_OK):
        return str(local)
    raise PolicyError(OPA_HELP)


_NOISE = re.compile(r"^(?:error: )?(?:load error: )?(?:\d+ errors? occurred(?: during [a-z]+)?: *)?",
                    re.MULTILINE)


def _opa_message(stderr: str) -> str:
    """OPA's error text without its "N errors occurred" preamble, on one line per error."""
    text = _NOISE.sub("", stderr.strip())
    lines = [line.rstrip() for line in text.splitlines() if line.strip()]
    # NOTE: OPA follows a type error with the offending expression and a caret; keep the messages.
    kept = [line for line in lines if re.match(r"^\S.*:\d+: ", line) or not line.startswith(("\t", " "))]
    # NOTE: OPA reports some parse errors twice, the second with a hint appended: keep the longer.
    unique = [line for i, line in enumerate(kept)
              if not any(other != line and other.startswith(line) for other in kept[i + 1:])]
    return "; ".join(dict.fromkeys(unique or lines)) or "opa build failed without a message"


def compile_wasm(modules: Mapping[str, str], entrypoints: Sequence[str], *,
                 opa: str | None = None, timeout_s: float = COMPILE_TIMEOUT_S) -> bytes:
    """The ``policy.wasm`` OPA compiles from ``modules`` (bundle-relative name -> text) for ``entrypoints``.

    Raises PolicyError with OPA's own message when the modules don't compile or an
    entry point is missing, and when OPA can't be run at all; DivergentBuiltin when
    they call a builtin whose Wasm implementation is known to answer otherwise.
    """
    if not entrypoints:
        raise PolicyError("compiling to Wasm needs at least one entry point")
    divergent = divergent_calls(modules)
    if divergent:
        raise DivergentBuiltin(divergent)
    binary = find_opa(opa)
    with tempfile.TemporaryDirectory(prefix="statelock-wasm-") as tmp:
        src = Path(tmp, "src")
        names = []
        for name, text in modules.items():
            rel = Path(name)
            if rel.is_absolute() or ".." in rel.parts:
                raise PolicyError(f"policy module name {name!r} is not relative to the bundle")
            target = src / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text, encoding="utf-8")
            names.append(str(rel))
        out = Path(tmp, "bundle.tar.gz")
        cmd = [binary, "build", "-t", "wasm", "-o", str(out)]
        for entrypoint in entrypoints:
            cmd += ["-e", entrypoint]
        cmd += sorted(names)
        try:
            done = subprocess.run(cmd, cwd=src, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise PolicyError(f"opa build did not finish within {timeout_s:g} s") from exc
        except OSError as exc:
            raise PolicyError(f"cannot run {binary}: {exc}. {OPA_HELP}") from exc
        if done.returncode != 0:
            raise PolicyError(_opa_message(done.stderr or done.stdout))
        return _policy_wasm(out.read_bytes())


def _policy_wasm(bundle: bytes) -> bytes:
    with tarfile.open(fileobj=io.BytesIO(bundle), mode="r:gz") as tar:
        for member in tar.getmembers():
            if member.name.lstrip("/") == "policy.wasm":
                extracted = tar.extractfile(member)
                if extracted is not None:
                    return extracted.read()
    raise PolicyError("opa build wrote no policy.wasm")
