"""OPA's own compliance cases (``v1/test/cases/testdata/v1``), found in the Go module cache and loaded.

The cases ship in the OPA Go module that ``make test`` fetches when it builds OPA.
``cases_dir`` finds them (``go env GOMODCACHE``, else ``~/go/pkg/mod``), downloads
the module with ``go mod download`` when it is missing, and raises ``CasesMissing``
saying so when neither works.

The YAML is read as OPA reads it (``util.Unmarshal``: YAML to JSON, then JSON):
timestamps stay strings, a mapping key is its scalar's text (``on:`` is the key
"on", not true), and a float with an integral value is that integer, as Go writes it.

A case applies to the embedded engine when its query is ``data.<path> = <var>``:
the path becomes the entry point (``pkg/rule``) and the var names the binding.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from sidecar.policy.wasm.compiler import OPA_VERSION

__all__ = ["NO_INPUT", "Case", "CasesMissing", "applicable", "cases_dir", "load_cases"]

OPA_MODULE = "github.com/open-policy-agent/opa"
CASES_SUBDIR = Path("v1", "test", "cases", "testdata", "v1")
NO_INPUT: Any = None
_QUERY = re.compile(r"\s*data((?:\.[A-Za-z_][A-Za-z0-9_]*)+)\s*=\s*([A-Za-z_][A-Za-z0-9_]*)\s*")
_NOT_A_VAR = frozenset({"input", "data", "true", "false", "null"})


class CasesMissing(RuntimeError):
    """OPA's compliance cases are not on this machine and could not be fetched."""


@dataclass(frozen=True)
class Case:
    """One compliance case as OPA's ``cases.TestCase`` has it; ``input`` is None when the case has none."""

    file: str
    note: str
    query: str
    modules: tuple[str, ...] = ()
    data: dict[str, Any] | None = None
    input: Any = NO_INPUT
    has_input: bool = False
    input_term: str | None = None
    want_defined: bool | None = None
    want_result: list[dict[str, Any]] | None = None
    want_error_code: str | None = None
    want_error: str | None = None
    sort_bindings: bool = False
    strict_error: bool = False

    @property
    def case_id(self) -> str:
        """``<file relative to the cases dir>: <note>`` (notes alone are not unique)."""
        return f"{self.file}: {self.note}"


def applicable(case: Case) -> tuple[str, str] | None:
    """``(entry point, binding var)`` for a ``data.pkg.rule = x`` query, None for any other form."""
    match = _QUERY.fullmatch(case.query)
    if match is None or match.group(2) in _NOT_A_VAR:
        return None
    return match.group(1)[1:].replace(".", "/"), match.group(2)


# --- finding the cases ---------------------------------------------------------------


def _go() -> str | None:
    return shutil.which("go") or next((p for p in ("/usr/local/go/bin/go",) if os.access(p, os.X_OK)), None)


def _module_root(go: str | None) -> Path:
    cache = ""
    if go:
        done = subprocess.run([go, "env", "GOMODCACHE"], capture_output=True, text=True, check=False, timeout=60)
        cache = done.stdout.strip() if done.returncode == 0 else ""
    base = Path(cache) if cache else Path.home() / "go" / "pkg" / "mod"
    return base / f"{OPA_MODULE}@v{OPA_VERSION}"


def _download(go: str) -> str:
    """Fetch the OPA module into the module cache; the error text, "" on success."""
    with tempfile.TemporaryDirectory(prefix="statelock-opa-mod-") as tmp:
        Path(tmp, "go.mod").write_text("module fetchcases\n\ngo 1.21\n", encoding="utf-8")
        env = {**os.environ, "GOFLAGS": "-mod=mod"}
        done = subprocess.run([go, "mod", "download", f"{OPA_MODULE}@v{OPA_VERSION}"], cwd=tmp, env=env,
                              capture_output=True, text=True, check=False, timeout=600)
    return "" if done.returncode == 0 else (done.stderr or done.stdout).strip()


def cases_dir() -> Path:
    """The directory of OPA v{OPA_VERSION}'s v1 compliance cases; CasesMissing when they can't be had."""
    go = _go()
    found = _module_root(go) / CASES_SUBDIR
    if found.is_dir():
        return found
    why = "go is not installed" if go is None else _download(go)
    if found.is_dir():
        return found
    raise CasesMissing(f"OPA's compliance cases are not at {found} ({why or 'not in the module'}); "
                       f"`make test` fetches them when it builds OPA v{OPA_VERSION} "
                       f"(go install {OPA_MODULE}@v{OPA_VERSION}), or run "
                       f"`go mod download {OPA_MODULE}@v{OPA_VERSION}` in any Go module")


# --- reading them --------------------------------------------------------------------

_BaseLoader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):  # type: ignore[misc]
    """PyYAML's safe loader made to read YAML as OPA's loader does (see module docstring)."""

    yaml_implicit_resolvers = {
        first: [(tag, regexp) for tag, regexp in resolvers if tag != "tag:yaml.org,2002:timestamp"]
        for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
    }

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = key_node.value if isinstance(key_node, yaml.ScalarNode) else self.construct_object(key_node, deep)
            out[key] = self.construct_object(value_node, deep=True)
        return out


_Loader.add_constructor("tag:yaml.org,2002:map", _Loader.construct_mapping)


def _as_go(value: Any) -> Any:
    """``value`` with integral floats as ints (Go's JSON writes 1.0 as 1)."""
    if isinstance(value, float) and value.is_integer() and abs(value) < 1e21:
        return int(value)
    if isinstance(value, dict):
        return {k: _as_go(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_as_go(v) for v in value]
    return value


def _case(rel: str, raw: dict[str, Any]) -> Case:
    raw = _as_go(raw)
    return Case(
        file=rel, note=str(raw["note"]), query=str(raw["query"]),
        modules=tuple(raw.get("modules") or ()), data=raw.get("data"),
        input=raw.get("input"), has_input="input" in raw and raw["input"] is not None,
        input_term=raw.get("input_term"), want_defined=raw.get("want_defined"),
        want_result=raw.get("want_result"), want_error_code=raw.get("want_error_code"),
        want_error=raw.get("want_error"), sort_bindings=bool(raw.get("sort_bindings")),
        strict_error=bool(raw.get("strict_error")),
    )


def load_cases(directory: Path) -> list[Case]:
    """Every case under ``directory``, in file order then the order of each file."""
    out: list[Case] = []
    for path in sorted(directory.rglob("*.yaml")):
        doc = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader) or {}
        rel = str(path.relative_to(directory))
        out.extend(_case(rel, raw) for raw in doc.get("cases") or ())
    return out
