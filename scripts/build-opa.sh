#!/usr/bin/env bash
# Build OPA into a directory with `go install`, showing progress: the one way OPA is
# got, for `make opa` (make run, make test) and the Dockerfile alike.
#   scripts/build-opa.sh VERSION DIR
# The embedded policy engine compiles the bundle with `opa build -t wasm`, so
# `statelock serve` needs this binary; `make test` also runs `opa test` and a real OPA server.
set -euo pipefail
version=${1:?usage: scripts/build-opa.sh VERSION DIR}
dir=${2:?usage: scripts/build-opa.sh VERSION DIR}
mkdir -p "$dir"
if ! command -v go >/dev/null 2>&1; then
  echo "statelock: building OPA needs Go (https://go.dev/dl/), or put an opa $version binary at $dir/opa" >&2
  exit 1
fi
log=$(mktemp)
trap 'rm -f "$log"' EXIT
echo "statelock: building OPA $version with go install (first run only: a few minutes on 2 cores)"
start=$(date +%s)
# NOTE: go install -v names each package as it is compiled; print a count instead of ~600 lines.
if ! GOBIN="$(cd "$dir" && pwd)" GOFLAGS=-mod=mod go install -v "github.com/open-policy-agent/opa@$version" 2>"$log" \
     < /dev/null; then
  cat "$log" >&2
  echo "statelock: go install github.com/open-policy-agent/opa@$version failed (above)" >&2
  exit 1
fi &
pid=$!
while kill -0 "$pid" 2>/dev/null; do
  sleep 10
  n=$(grep -c . "$log" 2>/dev/null || true)
  echo "statelock: OPA build: ${n:-0} packages compiled, $(( $(date +%s) - start )) s"
done
wait "$pid"
echo "statelock: OPA $version built into $dir/opa in $(( $(date +%s) - start )) s"
