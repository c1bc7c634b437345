"""The shape of the code base, checked: module sizes, import direction, no import cycles.

Imports are read with ``ast`` from every module under ``sidecar/`` and ``drivers/``,
wherever they stand (module level, inside functions, under ``TYPE_CHECKING``). An
import names the module it imports (``from a.b import c`` names ``a.b.c`` when that is
a module, else ``a.b``); a package's ``__init__`` counts as the module ``a.b``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.paths import ROOT

MAX_LINES = 400
# Modules of the pure core: no aiohttp server code in them (see docs/architecture.md).
PURE = ("sidecar.classify", "sidecar.config", "sidecar.vocab", "sidecar.errors", "sidecar.faults",
        "sidecar.identity", "sidecar.locks.model", "sidecar.policy.input", "sidecar.policy.decision",
        "sidecar.audit.record", "sidecar.pipeline", "sidecar.recorder", "sidecar.decide",
        "sidecar.lockops", "sidecar.lockview")


def _modules() -> dict[str, Path]:
    out: dict[str, Path] = {}
    for top in ("sidecar", "drivers"):
        for path in sorted((ROOT / top).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> Iterator[str]:
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                full = f"{base}.{alias.name}"
                yield full if full in MODULES else base


def _graph() -> dict[str, set[str]]:
    return {name: {i for i in _imports(name, path) if i in MODULES and i != name}
            for name, path in MODULES.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start)):
            return found
    return None


@pytest.mark.parametrize("name", sorted(MODULES))
def test_no_module_is_longer_than_400_lines(name: str) -> None:
    lines = len(MODULES[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{MODULES[name].relative_to(ROOT)} has {lines} lines: two jobs in one?"


def test_no_import_cycle() -> None:
    assert _cycle(_graph()) is None, " -> ".join(_cycle(_graph()) or [])


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


def test_drivers_never_import_sidecar() -> None:
    for name, path in MODULES.items():
        if name.startswith("drivers"):
            assert not [i for i in _imports(name, path) if i.split(".")[0] == "sidecar"], name


@pytest.mark.parametrize("name", [m for m in sorted(MODULES) if m.startswith(PURE)])
def test_the_core_does_not_import_the_web_server(name: str) -> None:
    found = [i for i in _imports(name, MODULES[name]) if i.startswith(("aiohttp", "sidecar.handlers",
                                                                       "sidecar.app"))]
    assert not found, f"{name} imports {found}"


def test_only_handlers_app_and_cli_import_aiohttp_web() -> None:
    allowed = ("sidecar.handlers", "sidecar.app", "sidecar.appkeys", "sidecar.cli")
    users = {name for name, path in MODULES.items()
             if any(i in ("aiohttp.web", "aiohttp.typedefs") or i.startswith("aiohttp.web_")
                    for i in _imports(name, path))
             or "from aiohttp import web" in path.read_text(encoding="utf-8")}
    assert {u for u in users if not u.startswith(allowed)} == set()


def test_the_driver_dispatcher_routes_nothing_itself() -> None:
    """It executes the classified Action: no regular expression, no JSON parsing of its own."""
    path = MODULES["sidecar.backends.driver"]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    imported = set(_imports("sidecar.backends.driver", path))
    assert "re" not in imported
    calls = {ast.unparse(node.func) for node in ast.walk(tree) if isinstance(node, ast.Call)}
    assert not {c for c in calls if c.endswith(("json.loads", "json.load", "re.match", "re.compile"))}
