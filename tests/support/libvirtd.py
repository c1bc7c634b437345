"""A real libvirtd with the QEMU driver (``qemu:///system``) for tests, and throwaway guests on it.

``qemu_host`` (session scope) makes the host ready and leaves it as it found it:

- it runs ``scripts/system-deps.sh`` when libvirtd, virtlogd, virsh or
  ``qemu-system-x86_64`` is missing, and skips (saying why) only when that cannot
  install them;
- it installs Statelock's qemu hook into libvirt's own hooks directory (libvirtd
  has no setting for another one: it is built in as ``/etc/libvirt/hooks``), with
  ``drivers.libvirt_hook.install``, unless it is installed already;
- it starts virtlogd and libvirtd when they are not running, and reloads a
  running libvirtd that does not call the hook (the probe tells);
- at the end it removes the hook and stops the daemons, but only what the tests
  installed or started, and only when no other test session still uses them.
  Concurrent sessions share the host through ``/run/statelock-tests/libvirtd.lock``
  (one ``flock``; the first session sets up, the last one tears down).

``qemu_guest`` defines and starts one diskless guest (64 MiB, serial console; KVM
when libvirt can use ``/dev/kvm``, TCG otherwise) with a unique name, owned by
``alice@demo`` in its Statelock metadata, and removes it (with any managed-save
image) afterwards.

Use them from a test module with
``from tests.support.libvirtd import qemu_guest_fixture, qemu_host_fixture  # noqa: F401``.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import libvirt
import pytest

from drivers.libvirt_hook import install as hook
from drivers.libvirt_hook.probe import SYSTEM_LOG_DIR, probe, wait_until_called
from drivers.libvirt_hook.verdict import STATELOCK_NS
from tests.support.paths import ROOT

URI = "qemu:///system"
GUEST_PREFIX = "statelock-test-"
OWNER = ("demo", "alice")
STATE_DIR = Path("/run/statelock-tests")
SAVE_DIR = Path("/var/lib/libvirt/qemu/save")
_BINARIES = ("/usr/sbin/libvirtd", "/usr/sbin/virtlogd", "virsh", "qemu-system-x86_64")

_GUEST_XML = """\
<domain type='{virt_type}'>
  <name>{name}</name><uuid>{uuid}</uuid>
  <memory unit='MiB'>64</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64'>hvm</type></os>
  <metadata>{metadata}</metadata>
  <devices>
    <serial type='pty'/>
    <console type='pty'/>
    <memballoon model='none'/>
  </devices>
</domain>
"""


def guest_xml(virt_type: str, name: str, metadata: str = "") -> str:
    """A diskless 64 MiB guest with a new UUID and ``metadata`` inside its ``<metadata>``."""
    return _GUEST_XML.format(virt_type=virt_type, name=name, uuid=uuid.uuid4(), metadata=metadata)


def owner_metadata(project_id: str, user_id: str) -> str:
    """Statelock's owner record, as a domain defined by hand carries it."""
    return (f"<statelock:instance xmlns:statelock='{STATELOCK_NS}'>"
            f"<statelock:owner project_id='{project_id}' user_id='{user_id}'/></statelock:instance>")


@dataclass(frozen=True)
class QemuHost:
    """The ready host: its URI and whether guests run on KVM (``kvm``) or TCG (``qemu``)."""

    uri: str
    virt_type: str

    def connect(self) -> Any:
        """A new read-write ``libvirt.virConnect`` (close it when done)."""
        libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
        return libvirt.open(self.uri)


@dataclass(frozen=True)
class Guest:
    """A test guest: its UUID (the Statelock instance id) and its libvirt name."""

    uuid: str
    name: str

    @property
    def save_image(self) -> Path:
        """Where libvirtd keeps the guest's managed-save image (its save dir and the name)."""
        return SAVE_DIR / f"{self.name}.save"


def _running(name: str) -> int | None:
    daemon = hook.running_daemon((name,))
    return None if daemon is None else daemon.pid


def _ensure_installed() -> None:
    if all(shutil.which(b) for b in _BINARIES):
        return
    done = subprocess.run([str(ROOT / "scripts" / "system-deps.sh")], capture_output=True,
                          text=True, timeout=900, check=False)
    missing = [b for b in _BINARIES if not shutil.which(b)]
    if missing:
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        pytest.skip(f"{', '.join(missing)} not installed, and scripts/system-deps.sh could not "
                    f"install them (exit {done.returncode}): {' / '.join(tail)}")


def _start_daemon(name: str) -> int:
    Path("/var/log/libvirt").mkdir(parents=True, exist_ok=True)
    done = subprocess.run([f"/usr/sbin/{name}", "-d"], capture_output=True, text=True,
                          timeout=60, check=False)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        pid = _running(name)
        if pid is not None:
            return pid
        time.sleep(0.1)
    pytest.fail(f"{name} -d did not start (exit {done.returncode}): {done.stderr.strip()}")


def _connect(timeout_s: float = 30.0) -> Any:
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return libvirt.open(URI)
        except libvirt.libvirtError as exc:
            if time.monotonic() > deadline:
                pytest.fail(f"cannot connect to {URI}: {exc}")
            time.sleep(0.2)


def _remove_guest(dom: Any) -> None:
    """Destroy and undefine a test guest, with its managed-save image and its QEMU log."""
    name = str(dom.name())
    with contextlib.suppress(libvirt.libvirtError):
        if dom.isActive():
            dom.destroy()
    with contextlib.suppress(libvirt.libvirtError):
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
    (SYSTEM_LOG_DIR / f"{name}.log").unlink(missing_ok=True)


def virt_type(conn: Any) -> str:
    """``kvm`` when libvirt offers KVM guests for x86_64 here, else ``qemu`` (TCG)."""
    try:
        conn.getDomainCapabilities(None, "x86_64", None, "kvm", 0)
    except libvirt.libvirtError:
        return "qemu"
    return "kvm"


def _set_up(state: dict[str, Any]) -> None:
    """Install the hook and start the daemons (first session only); records what it did."""
    if hook.status(hook.DEFAULT_HOOKS_DIR).state is not hook.HookState.INSTALLED:
        hook.install(hook.DEFAULT_HOOKS_DIR, hook.default_python())
        state["hook"] = True
    for name in ("virtlogd", "libvirtd"):
        if _running(name) is None:
            state[name] = _start_daemon(name)
    conn = _connect()
    try:
        for dom in conn.listAllDomains(0):
            if str(dom.name()).startswith(GUEST_PREFIX):
                _remove_guest(dom)  # left by a session that was killed
        if not probe(conn, SYSTEM_LOG_DIR).called:
            daemon = hook.running_daemon()
            assert daemon is not None
            hook.reload_daemon(daemon)
            result = wait_until_called(conn, SYSTEM_LOG_DIR)
            if not result.called:
                pytest.fail(f"libvirtd does not call Statelock's hook after a reload: {result.detail}")
    finally:
        conn.close()


def _tear_down(state: dict[str, Any]) -> None:
    """Remove the hook and stop the daemons that test sessions installed or started."""
    if state.get("hook"):
        hook.remove(hook.DEFAULT_HOOKS_DIR)
    for name in ("libvirtd", "virtlogd"):
        pid = state.get(name)
        if pid is None or _running(name) != pid:
            continue
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        while _running(name) == pid and time.monotonic() < deadline:
            time.sleep(0.1)


@contextlib.contextmanager
def _shared_host() -> Iterator[None]:
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    record = STATE_DIR / "libvirtd.json"
    lock: IO[str] = (STATE_DIR / "libvirtd.lock").open("a+")
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fcntl.flock(lock, fcntl.LOCK_SH)  # NOTE: another session set the host up
        else:
            state = json.loads(record.read_text()) if record.exists() else {}
            try:
                _set_up(state)
            finally:
                record.write_text(json.dumps(state))
            fcntl.flock(lock, fcntl.LOCK_SH)
        yield
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return  # NOTE: another session still uses the host; the last one cleans up
        state = json.loads(record.read_text()) if record.exists() else {}
        _tear_down(state)
        record.unlink(missing_ok=True)
    finally:
        lock.close()


@pytest.fixture(scope="session", name="qemu_host")
def qemu_host_fixture() -> Iterator[QemuHost]:
    """libvirtd with the QEMU driver and Statelock's hook, for the whole session."""
    _ensure_installed()
    if os.geteuid() != 0:
        pytest.fail("the qemu:///system tests start libvirtd and install its hook: run them as root")
    with _shared_host():
        conn = _connect()
        try:
            found = virt_type(conn)
        finally:
            conn.close()
        yield QemuHost(URI, found)


@pytest.fixture(name="qemu_guest")
def qemu_guest_fixture(qemu_host: QemuHost) -> Iterator[Guest]:
    """A running diskless guest with a unique name, removed afterwards."""
    name = GUEST_PREFIX + uuid.uuid4().hex[:12]
    conn = qemu_host.connect()
    try:
        xml = guest_xml(qemu_host.virt_type, name, owner_metadata(*OWNER))
        dom = conn.defineXML(xml)
        try:
            dom.create()
            yield Guest(str(dom.UUIDString()), name)
        finally:
            _remove_guest(dom)
    finally:
        conn.close()
