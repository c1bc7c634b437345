"""The qemu hook's program: refuse to start a domain whose metadata carries a boot block.

``statelock hypervisor install-hook`` embeds this module's source in the hook
script it installs, and the script runs it with the hypervisor host's own
``python3`` (3.7 or newer) for ``prepare begin`` and ``restore begin`` of a domain
whose XML holds Statelock's namespace and the word ``bootblock``. So it imports
nothing but the standard library, and only the cheap parts of it (``pyexpat``, not
``ElementTree`` or ``typing``: see ``docs/hypervisors.md`` for the costs).

The record it looks for is the one ``drivers._libvirt_metadata`` writes::

    <domain><metadata>
      <statelock:instance xmlns:statelock="http://statelock.dev/xmlns/statelock/1.0">
        <statelock:bootblock reason="billing: invoice 881" lock_id="lk-..."/>

Exit status, the program's contract with the script: ``ALLOW`` (0) lets libvirt go
on; ``REFUSE`` (3) refuses, with ``blocked by Statelock lock lk-...: <reason>`` on
stderr (libvirt puts a failed hook's stderr in its error, so ``virsh start`` and
Nova show it). The script turns anything else (a crash, a missing interpreter)
into "let it proceed", logged: a broken hook must not stop every guest on the host.
XML that cannot be parsed is let through too, and logged to syslog and stderr.
"""

from __future__ import annotations

import sys
import xml.parsers.expat

# NOTE: importing typing would cost the hook more than all the rest of its work.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import BinaryIO, TextIO

STATELOCK_NS = "http://statelock.dev/xmlns/statelock/1.0"
REFUSAL_PREFIX = "blocked by Statelock"
ALLOW = 0
REFUSE = 3
MAX_REASON = 500

# NOTE: pyexpat reports a namespaced name as "<uri> <local name>".
_BOOTBLOCK_PATH = ("domain", "metadata", f"{STATELOCK_NS} instance", f"{STATELOCK_NS} bootblock")


class BootBlock:
    """A boot-block record: its reason and, since records carry it, the lock's id."""

    __slots__ = ("lock_id", "reason")

    def __init__(self, reason: str, lock_id: str | None) -> None:
        self.reason = reason
        self.lock_id = lock_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BootBlock) and (self.reason, self.lock_id) == (
            other.reason,
            other.lock_id,
        )

    def __repr__(self) -> str:
        return f"BootBlock(reason={self.reason!r}, lock_id={self.lock_id!r})"


def read_boot_block(domain_xml: bytes) -> BootBlock | None:
    """The boot block in ``/domain/metadata/statelock:instance``, or ``None`` if there is none.

    Only that place counts (an element of the same name elsewhere is not a record).
    Raises ``xml.parsers.expat.ExpatError`` when the document is not well-formed XML.
    """
    parser = xml.parsers.expat.ParserCreate(namespace_separator=" ")
    path: list[str] = []
    found: list[BootBlock] = []

    def start(name: str, attributes: dict[str, str]) -> None:
        path.append(name)
        if not found and tuple(path) == _BOOTBLOCK_PATH:
            found.append(BootBlock(attributes.get("reason", ""), attributes.get("lock_id") or None))

    def end(_name: str) -> None:
        path.pop()

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.Parse(domain_xml, True)
    return found[0] if found else None


def _printable(text: str) -> str:
    """``text`` on one line: control characters become spaces; at most ``MAX_REASON`` long."""
    flat = "".join(" " if ord(char) < 32 or ord(char) == 127 else char for char in text)
    return flat if len(flat) <= MAX_REASON else flat[: MAX_REASON - 3] + "..."


def refusal_message(block: BootBlock) -> str:
    """``blocked by Statelock lock <id>: <reason>`` (each part left out when not recorded)."""
    message = REFUSAL_PREFIX
    if block.lock_id:
        message += f" lock {_printable(block.lock_id)}"
    if block.reason:
        message += f": {_printable(block.reason)}"
    return message


def _syslog(priority: int, message: str) -> None:
    import syslog

    syslog.openlog("statelock-hook", 0, syslog.LOG_DAEMON)
    syslog.syslog(priority, message)


def main(argv: list[str], stdin: BinaryIO, stderr: TextIO) -> int:
    """Decide for one hook call: ``argv`` is the hook's (domain, operation, sub-operation, extra).

    Returns ``REFUSE`` after writing the refusal to ``stderr`` (and syslog), else ``ALLOW``.
    """
    import syslog

    domain = _printable(argv[0]) if argv else "?"
    operation = argv[1] if len(argv) > 1 else "?"
    try:
        block = read_boot_block(stdin.read())
    except xml.parsers.expat.ExpatError as exc:
        message = (
            f"statelock hook: cannot parse the XML of domain {domain} ({exc}); "
            f"letting {operation} proceed"
        )
        stderr.write(message + "\n")
        _syslog(syslog.LOG_WARNING, message)
        return ALLOW
    if block is None:
        return ALLOW
    message = refusal_message(block)
    stderr.write(message + "\n")
    _syslog(syslog.LOG_NOTICE, f"refused {operation} of domain {domain}: {message}")
    return REFUSE


if __name__ == "__main__":
    try:
        status = main(sys.argv[1:], sys.stdin.buffer, sys.stderr)
    except Exception as exc:  # NOTE: fail safe: any bug here lets the guest start, logged
        sys.stderr.write(f"statelock hook: internal error ({exc!r}); letting the start proceed\n")
        status = ALLOW
    sys.exit(status)
