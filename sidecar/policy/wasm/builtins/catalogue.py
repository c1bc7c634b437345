"""Every family of host builtins; importing this module registers them all."""

from __future__ import annotations

# NOTE: each family module registers its builtins when imported; add new families here.
from sidecar.policy.wasm.builtins import crypto, documents, jsonpatch, net  # noqa: F401
