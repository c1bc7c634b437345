#!/usr/bin/env bash
# Installs the system packages Statelock needs, by profile (Debian/Ubuntu, apt-get):
#   runtime (default)  what Statelock's Python dependencies build against: libvirt's
#                      headers and pkg-config for libvirt-python, and gcc. `make run`
#                      and the Dockerfile install this much.
#   test               runtime, plus the servers and tools the tests start: PostgreSQL,
#                      libvirtd with its QEMU driver, QEMU for x86_64 and virsh (the
#                      real-guest tests), runuser, and Debian's Chromium (the console's
#                      browser tests drive it with Playwright; no browser is downloaded).
# Idempotent and quiet when everything is present; services are never started by the
# install (the tests start virtlogd and libvirtd themselves when they need them).
set -euo pipefail
profile=${1:-runtime}
case "$profile" in
  runtime|test) ;;
  *) echo "usage: $0 [runtime|test]" >&2; exit 2 ;;
esac
need=()
pkg-config --exists libvirt 2>/dev/null || need+=(libvirt-dev pkg-config)
command -v gcc >/dev/null || need+=(gcc)
if [ "$profile" = test ]; then
  # The tests start their own PostgreSQL (several replicas share one lock table).
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need+=(postgresql)
  command -v runuser >/dev/null || need+=(util-linux)
  # The real-guest tests: libvirtd's QEMU driver on qemu:///system.
  [ -x /usr/sbin/libvirtd ] || need+=(libvirt-daemon)
  [ -e /usr/lib/x86_64-linux-gnu/libvirt/connection-driver/libvirt_driver_qemu.so ] ||
    need+=(libvirt-daemon-driver-qemu)
  command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
  command -v qemu-img >/dev/null || need+=(qemu-utils)
  command -v virsh >/dev/null || need+=(libvirt-clients)
  # The console's browser tests (tests/browser): Playwright for Python drives /usr/bin/chromium.
  [ -x /usr/bin/chromium ] || need+=(chromium)
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
  SUDO=sudo
fi
as_root() {
  if [ -n "$SUDO" ] && ! command -v sudo >/dev/null; then
    echo "statelock: need root (or sudo) for: $*" >&2
    exit 1
  fi
  $SUDO "$@"
}

if [ ${#need[@]} -gt 0 ]; then
  echo "statelock: installing system packages: ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # NOTE: no init system runs here; a policy-rc.d that answers 101 keeps the
  # packages' maintainer scripts from trying to start libvirtd and friends.
  # An existing one (Docker images ship one) is left alone.
  made_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    as_root sh -c 'printf "#!/bin/sh\nexit 101\n" > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d'
    made_policy=1
  fi
  trap '[ -z "$made_policy" ] || as_root rm -f /usr/sbin/policy-rc.d' EXIT
  as_root apt-get update -qq
  # Without recommends: libvirt-daemon-system would define (and autostart) a NAT
  # network with a host bridge, which the tests do not need.
  as_root apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

[ "$profile" = test ] || exit 0

# What libvirt-daemon-system would have set up: Debian's libvirtd runs QEMU as
# libvirt-qemu:libvirt-qemu, which opens /dev/kvm through the kvm group (udev's
# rule gives that group the device), and it logs to /var/log/libvirt.
getent group kvm >/dev/null || as_root groupadd --system kvm
getent group libvirt-qemu >/dev/null || as_root groupadd --system libvirt-qemu
getent passwd libvirt-qemu >/dev/null ||
  as_root useradd --system --gid libvirt-qemu --groups kvm --home-dir /var/lib/libvirt \
    --no-create-home --shell /usr/sbin/nologin libvirt-qemu
[ -d /var/log/libvirt ] || as_root mkdir -p /var/log/libvirt
if [ -c /dev/kvm ] && [ "$(stat -c %G /dev/kvm)" != kvm ]; then
  { as_root chgrp kvm /dev/kvm && as_root chmod 660 /dev/kvm; } 2>/dev/null ||
    echo "statelock: cannot open /dev/kvm to group kvm; QEMU guests will use TCG" >&2
fi
