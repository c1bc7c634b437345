"""Every family of host builtins; importing this module registers them all."""

from __future__ import annotations

# NOTE: each family module registers its builtins when imported; add new families here.
from sidecar.policy.wasm.builtins import (  # noqa: F401
    crypto,
    documents,
    encoding,
    jsonpatch,
    net,
    numbers_,
    regex_,
    semver,
    sprintf,
    strings_,
    time_,
    units,
    uri,
    uuidgen,
)
