"""The route table: ``config/actions.yaml`` parsed once at start-up into ``RouteTable``.

``load_route_table`` raises ConfigError naming the bad entry; ``parse_version`` reads
a ``major.minor`` microversion.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from sidecar.errors import ConfigError
from sidecar.vocab import ACTION_KINDS, ActionKind

RouteKind = ActionKind | Literal["action", "migration_action"]
"""A route's kind: an action kind, or a route whose body names the action."""
_ROUTE_KINDS: tuple[RouteKind, ...] = (*ACTION_KINDS, "action", "migration_action")
_VERSION_RE = re.compile(r"^([1-9]\d*)\.([1-9]\d*|0)$")


@dataclass(frozen=True)
class _Route:
    segments: tuple[str, ...]
    method: str
    kind: RouteKind
    name: str


@dataclass(frozen=True)
class _ActionSpec:
    kind: ActionKind
    name: str
    params: tuple[str, ...]


@dataclass(frozen=True)
class RouteTable:
    """The parsed ``actions.yaml``; built once at start-up, read on every request."""

    min_version: tuple[int, int]
    max_version: tuple[int, int]
    path_prefixes: tuple[str, ...]
    server_collections: frozenset[str]
    server_routes: tuple[_Route, ...]
    actions: Mapping[str, _ActionSpec]
    migration_actions: Mapping[str, _ActionSpec]
    other_resources: frozenset[str]
    other_routes: tuple[_Route, ...] = ()


def parse_version(text: str) -> tuple[int, int]:
    """``major.minor`` as a pair of ints; ValueError if it is not of that form."""
    m = _VERSION_RE.match(text.strip())
    if not m:
        raise ValueError(text)
    return int(m.group(1)), int(m.group(2))


def as_action_kind(kind: RouteKind) -> ActionKind:
    """A route kind as the Action's kind (the body-named kinds have none of their own: unknown)."""
    return next((k for k in ACTION_KINDS if k == kind), "unknown")


def _route(r: Mapping[str, Any], i: int, path: str | Path, section: str) -> _Route:
    kind = next((k for k in _ROUTE_KINDS if k == r["kind"]), None)
    if kind is None:
        raise ConfigError(f"{path}: {section}[{i}].kind {r['kind']!r} is not a kind")
    segs = tuple(s for s in str(r["path"]).split("/") if s)
    return _Route(segs, str(r["method"]).upper(), kind, r["name"])


def load_route_table(path: str | Path) -> RouteTable:
    """Parse the route table; raises ConfigError naming the bad entry."""
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ConfigError(f"classifier.actions: cannot load {path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"classifier.actions: {path} must hold a mapping")
    try:
        mv = raw["microversion"]
        routes = [_route(r, i, path, "server_routes") for i, r in enumerate(raw["server_routes"])]

        def specs(section: Mapping[str, Any]) -> dict[str, _ActionSpec]:
            out = {}
            for key, spec in section.items():
                kind = next((k for k in ACTION_KINDS if k == spec["kind"]), None)
                if kind is None:
                    raise ConfigError(f"{path}: action {key}.kind {spec['kind']!r} is not a kind")
                out[key] = _ActionSpec(kind, spec.get("name", key), tuple(spec.get("params", ())))
            return out

        return RouteTable(
            min_version=parse_version(mv["min"]),
            max_version=parse_version(mv["max"]),
            path_prefixes=tuple(raw.get("path_prefixes", [""])),
            server_collections=frozenset(raw["server_collections"]),
            server_routes=tuple(routes),
            actions=specs(raw["actions"]),
            migration_actions=specs(raw.get("migration_actions", {})),
            other_resources=frozenset(raw.get("other_resources", [])),
            other_routes=tuple(_route(r, i, path, "other_routes")
                               for i, r in enumerate(raw.get("other_routes", []))),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"classifier.actions: {path} is malformed near {exc}") from exc
