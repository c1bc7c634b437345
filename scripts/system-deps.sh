#!/usr/bin/env bash
# Installs the system packages Statelock's Python dependencies build against
# (libvirt-python needs libvirt's headers and pkg-config) and the servers the
# tests start (PostgreSQL). Idempotent: does nothing when they are present.
set -euo pipefail
need=()
pkg-config --exists libvirt 2>/dev/null || need+=(libvirt-dev pkg-config)
command -v gcc >/dev/null || need+=(gcc)
# The tests start their own PostgreSQL (several replicas share one lock table).
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
command -v runuser >/dev/null || need+=(util-linux)
[ ${#need[@]} -eq 0 ] && exit 0
echo "statelock: installing system packages: ${need[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "statelock: need root (or sudo) to apt-get install ${need[*]}" >&2; exit 1; }
  SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq "${need[@]}" >/dev/null
