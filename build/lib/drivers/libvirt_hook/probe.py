"""Ask a running libvirt whether it calls Statelock's qemu hook, by having it refuse a probe.

libvirt has no API that says which hooks the daemon found, so the probe starts a
transient domain that carries a boot block with a unique lock id and sees who
refuses it. The domain is built so that nothing runs either way: libvirt calls the
``prepare`` hook before it opens the domain's devices, and the probe's serial port
is a file in a directory that does not exist, so a start the hook does not refuse
fails right after, before any QEMU process is created. Operators' own hooks see a
``prepare``, ``stopped`` and ``release`` of a domain called ``statelock-hook-probe-*``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import time
import uuid
from pathlib import Path
from typing import Any

from drivers.libvirt_hook import verdict

PROBE_PREFIX = "statelock-hook-probe-"
SYSTEM_LOG_DIR = Path("/var/log/libvirt/qemu")
"""Where a local ``qemu:///system`` writes each domain's log, the probe's included."""

_PROBE_XML = """\
<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>16</memory>
  <os><type>hvm</type></os>
  <metadata>
    <statelock:instance xmlns:statelock='{namespace}'>
      <statelock:bootblock reason='Statelock hook probe' lock_id='{lock_id}'/>
    </statelock:instance>
  </metadata>
  <devices>
    <serial type='file'><source path='/nonexistent-statelock-probe/{lock_id}/console'/></serial>
  </devices>
</domain>
"""


@dataclasses.dataclass(frozen=True)
class ProbeResult:
    """Whether the daemon behind the connection calls the hook, and what libvirt said."""

    called: bool
    detail: str


def probe(conn: Any, log_dir: Path | None = None) -> ProbeResult:
    """Start the probe domain on ``conn`` (an open read-write ``libvirt.virConnect``).

    ``called`` is True only when the start failed with the hook's refusal naming this
    probe's lock id. A probe domain that did start (which it should not) is destroyed.
    libvirt opens a log for the probe domain: give ``log_dir`` (``SYSTEM_LOG_DIR`` for
    a local ``qemu:///system``) to have it removed. Raises ``libvirt.libvirtError``
    only if destroying a started probe fails.
    """
    token = f"probe-{uuid.uuid4().hex[:12]}"
    name = PROBE_PREFIX + token[6:]
    try:
        return _start(conn, name, token)
    finally:
        if log_dir is not None:
            with contextlib.suppress(OSError):
                (log_dir / f"{name}.log").unlink()


def _start(conn: Any, name: str, token: str) -> ProbeResult:
    import libvirt

    xml = _PROBE_XML.format(name=name, namespace=verdict.STATELOCK_NS, lock_id=token)
    try:
        dom = conn.createXML(xml, 0)
    except libvirt.libvirtError as exc:
        message = str(exc.get_error_message() or exc)
        refused = f"{verdict.REFUSAL_PREFIX} lock {token}"
        if exc.get_error_code() == libvirt.VIR_ERR_HOOK_SCRIPT_FAILED and refused in message:
            return ProbeResult(True, f"the hook refused a probe domain: {refused}")
        return ProbeResult(False, f"a probe domain was not refused by the hook; libvirt said: {message}")
    dom.destroy()
    return ProbeResult(False, "a probe domain started: the hook was not called (it is destroyed)")


def wait_until_called(
    conn: Any, log_dir: Path | None = None, timeout_s: float = 5.0
) -> ProbeResult:
    """Probe until the hook is called or ``timeout_s`` passes (a daemon reloads in a thread)."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = probe(conn, log_dir)
        if result.called or time.monotonic() >= deadline:
            return result
        time.sleep(0.1)
