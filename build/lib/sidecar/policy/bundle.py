"""Loading a Rego bundle directory the way OPA does.

``load_bundle(path)`` returns the modules (test files excluded), the merged data
document (a ``data.json`` in ``a/b/`` lands at ``data.a.b``) and the revision from
``.manifest``. Raises PolicyError naming the file when the bundle is unusable.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.errors import PolicyError


@dataclass(frozen=True)
class Bundle:
    """A bundle read from disk."""

    root: Path
    modules: dict[str, str]
    data: dict[str, Any]
    revision: str
    digest: str


def _merge(into: dict[str, Any], path: tuple[str, ...], value: Any, source: Path) -> None:
    node = into
    for part in path:
        node = node.setdefault(part, {})
        if not isinstance(node, dict):
            raise PolicyError(f"{source}: data conflicts at {'.'.join(path)}")
    if not isinstance(value, dict):
        raise PolicyError(f"{source}: a data.json must hold an object")
    _merge_objects(node, value, source)


def _merge_objects(node: dict[str, Any], value: dict[str, Any], source: Path) -> None:
    # NOTE: objects merge recursively, as OPA's merge.InterfaceMaps does, so the result
    # does not depend on whether a directory sorts before or after a sibling data.json.
    for key, item in value.items():
        if key not in node:
            node[key] = item
        elif isinstance(node[key], dict) and isinstance(item, dict):
            _merge_objects(node[key], item, source)
        else:
            raise PolicyError(f"{source}: data key {key!r} defined twice")


def bundle_files(root: Path) -> list[Path]:
    """The files a bundle is made of, sorted: non-test ``.rego``, ``data.json``, the root ``.manifest``.

    Hidden directories (``.git``) are not entered, so watching a checkout stays cheap;
    symlinked directories are followed, each real directory once.
    """
    found = [root / ".manifest"] if (root / ".manifest").is_file() else []
    seen: set[str] = set()
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True):
        real = os.path.realpath(dirpath)
        if real in seen:
            dirnames[:] = []
            continue
        seen.add(real)
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if name.startswith("."):
                continue
            if name == "data.json" or (name.endswith(".rego") and not name.endswith("_test.rego")):
                found.append(Path(dirpath, name))
    return sorted(found)


def load_bundle(root: str | Path) -> Bundle:
    """Read the bundle at ``root``; raises PolicyError when it can't be used."""
    base = Path(root)
    if not base.is_dir():
        raise PolicyError(f"policy bundle {base} is not a directory")
    modules: dict[str, str] = {}
    data: dict[str, Any] = {}
    digest = hashlib.sha256()
    current = base
    try:
        for path in bundle_files(base):
            current = path
            rel = path.relative_to(base)
            if path.suffix == ".rego":
                text = path.read_text(encoding="utf-8")
                modules[str(rel)] = text
                digest.update(str(rel).encode() + b"\0" + text.encode())
            elif path.name == "data.json":
                text = path.read_text(encoding="utf-8")
                digest.update(str(rel).encode() + b"\0" + text.encode())
                _merge(data, rel.parent.parts, json.loads(text), path)
        manifest_path = base / ".manifest"
        manifest: Any = {}
        if manifest_path.exists():
            current = manifest_path
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyError(f"policy bundle {base}: {current}: {exc}") from exc
    if not isinstance(manifest, dict):
        raise PolicyError(f"policy bundle {base}: {manifest_path} must hold a JSON object")
    if not modules:
        raise PolicyError(f"policy bundle {base} holds no .rego policy")
    revision = str(manifest.get("revision") or "")
    short = digest.hexdigest()[:12]
    return Bundle(base, modules, data, revision or f"sha256:{short}", short)
