"""Paths of the repository the tests use, and the bundle revision they hold."""

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
ACTIONS = ROOT / "config" / "actions.yaml"
# NOTE: read from .manifest, so that bumping the bundle's revision needs no test edits.
BUNDLE_REVISION: str = json.loads((POLICIES / ".manifest").read_text())["revision"]
