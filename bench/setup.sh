#!/usr/bin/env bash
# What `make bench` needs beyond `make install-test`:
#   wrk and nginx (Debian packages), matplotlib and py-spy (PyPI, into the venv,
#   not pyproject), and the Go load generator built into bench/.work/.
# Idempotent: installs only what is missing. Run by `python -m bench`.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${BENCH_PYTHON:-.venv/bin/python}"

need=()
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || need+=(nginx-light)
if [ "${#need[@]}" -gt 0 ]; then
  echo "bench/setup: installing ${need[*]} (Debian)"
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif command -v sudo >/dev/null 2>&1; then SUDO="sudo -n"; else
    echo "bench/setup: need root (or sudo) to apt-get install ${need[*]}" >&2; exit 1
  fi
  # RUNLEVEL=1: the package must not start a system nginx on port 80.
  if ! $SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q "${need[@]}" >/dev/null; then
    $SUDO apt-get update -q >/dev/null
    $SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -q "${need[@]}" >/dev/null
  fi
fi

if ! "$PY" -c "import matplotlib, pyinstrument" >/dev/null 2>&1 || [ ! -x "$(dirname "$PY")/py-spy" ]; then
  echo "bench/setup: installing matplotlib, py-spy, pyinstrument into $(dirname "$(dirname "$PY")")"
  "$PY" -m pip install -q matplotlib py-spy pyinstrument
fi
# NOTE: regopy is the engine the Wasm one replaced: the bench's "before" column runs it in a
# process of its own (bench/regopy_before.py); Statelock itself never imports it.
if ! "$PY" -c "import regopy" >/dev/null 2>&1; then
  echo "bench/setup: installing regopy 1.5.2 (the engine before the Wasm one, for comparison)"
  "$PY" -m pip install -q "regopy==1.5.2"
fi

mkdir -p bench/.work/bin
if [ ! -x bench/.work/bin/loadgen ] || [ bench/loadgen/main.go -nt bench/.work/bin/loadgen ]; then
  echo "bench/setup: building the constant-rate load generator (Go, standard library only)"
  go build -o bench/.work/bin/loadgen ./bench/loadgen/main.go
fi
