"""Paths of the repository the tests use."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
ACTIONS = ROOT / "config" / "actions.yaml"
