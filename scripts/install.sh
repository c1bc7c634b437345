#!/usr/bin/env bash
# The one install path, for `make install` and the Dockerfile alike: the system
# packages of the runtime profile, then a virtualenv holding Statelock with its
# libvirt and XenAPI drivers.
#   scripts/install.sh [--editable] VENV [EXTRAS]
# --editable installs the checkout itself (development); without it, a normal install.
set -euo pipefail
cd "$(dirname "$0")/.."
editable=()
if [ "${1:-}" = "--editable" ]; then editable=(-e); shift; fi
venv=${1:?usage: scripts/install.sh [--editable] VENV [EXTRAS]}
extras=${2:-libvirt,xenapi}
./scripts/system-deps.sh runtime
if [ ! -x "$venv/bin/python" ]; then
  "${PYTHON:-python3}" -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip
fi
"$venv/bin/pip" install -q "${editable[@]}" ".[$extras]"
