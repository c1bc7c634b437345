"""Render, install, remove and inspect Statelock's qemu hook script in a libvirt hooks directory.

The hook goes into ``<hooks dir>/qemu.d/00-statelock``, never into the operator's
``<hooks dir>/qemu``: libvirt (6.5 and newer) runs ``qemu`` first and then every
executable file in ``qemu.d/`` in name order, all of them, and refuses the
operation when any one fails. So an operator's hook keeps running untouched,
nothing has to be chained, and removing Statelock's hook is deleting one file.

The script is POSIX sh, so most hook calls (``start``, ``started``, ``stopped``,
``release``, ``reconnect``, ...) cost one ``sh`` start and exit at once; only
``prepare begin`` and ``restore begin`` of a domain whose XML holds both
Statelock's namespace and the word ``bootblock`` run ``drivers.libvirt_hook.verdict``
(embedded in the script) with the host's python3, whose path is fixed when the
script is rendered.

libvirtd decides whether to call qemu hooks at all when it starts and when it
reloads (SIGHUP): only if ``qemu`` or an executable file in ``qemu.d/`` exists
then. Files added to ``qemu.d/`` later are found on every call once it does.
``running_daemon`` and ``reload_daemon`` find and reload it; ``drivers.libvirt_hook.probe``
tells for sure whether it calls the hook.
"""

from __future__ import annotations

import contextlib
import dataclasses
import enum
import os
import re
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

from drivers.libvirt_hook import verdict

DEFAULT_HOOKS_DIR = Path("/etc/libvirt/hooks")
"""Where libvirtd looks for hooks (``SYSCONFDIR/libvirt/hooks``; built in, not configurable)."""

HOOK_NAME = "00-statelock"
MARKER = "# statelock qemu hook, format 1"
MIN_LIBVIRT = (6, 5, 0)
DAEMONS = ("libvirtd", "virtqemud")
"""The daemons that run libvirt's QEMU driver (monolithic, or the modular one)."""

_PYTHON_LINE = re.compile(r"^python='([^']*)'$", re.MULTILINE)
_SCRIPT = """\
#!/bin/sh
{marker}
# Refuses "prepare" and "restore" of a libvirt domain whose metadata carries a
# Statelock boot block, naming the lock on stderr (which libvirt puts in its
# error). Installed by `statelock hypervisor install-hook`; do not edit (re-run
# it to update), remove with `statelock hypervisor remove-hook`.
case "$2 $3" in
  "prepare begin"|"restore begin") ;;
  *) exit 0 ;;
esac
xml=$(cat)
# NOTE: a record needs both strings literally (libvirt writes namespaces out plainly).
case $xml in
  *'{namespace}'*bootblock*|*bootblock*'{namespace}'*) ;;
  *) exit 0 ;;
esac
python='{python}'
program='{program}'
printf '%s\\n' "$xml" | "$python" -I -S -c "$program" "$@"
status=$?
[ "$status" -eq {allow} ] && exit 0
[ "$status" -eq {refuse} ] && exit 1
message="statelock hook: checking $1 failed (status $status from $python); letting $2 proceed"
echo "$message" >&2
logger -t statelock-hook -p daemon.warning -- "$message" 2>/dev/null
exit 0
"""


class HookError(Exception):
    """The hook cannot be installed, removed or inspected; the message says what to do."""


class HookState(enum.Enum):
    """What a hooks directory holds at Statelock's place."""

    MISSING = "not installed"
    INSTALLED = "installed"
    OUTDATED = "installed, but not what this Statelock would install (re-run install-hook)"
    NOT_EXECUTABLE = "installed, but not executable (libvirt skips it: re-run install-hook)"
    FOREIGN = "a file that Statelock did not write is in its place"


@dataclasses.dataclass(frozen=True)
class HookStatus:
    """The state of the hook in one hooks directory, and what else is there."""

    script: Path
    state: HookState
    python: str | None
    operator_hook: Path | None
    other_hooks: tuple[Path, ...]
    installed_at: float | None
    """The script's ctime (when it was last written or renamed into place), if it exists."""


@dataclasses.dataclass(frozen=True)
class Daemon:
    """A running libvirt daemon with the QEMU driver."""

    pid: int
    name: str
    started_at: float
    """Seconds since the epoch."""


def _sh_quote(text: str) -> str:
    """``text`` for the inside of a single-quoted sh word."""
    return text.replace("'", "'\\''")


def render_script(python: str) -> str:
    """The hook script, running the verdict with the interpreter at ``python``."""
    if "'" in python or "\n" in python:
        raise HookError(f"unusable python path {python!r}: no quotes or newlines, please")
    program = Path(verdict.__file__).read_text(encoding="utf-8")
    return _SCRIPT.format(
        marker=MARKER,
        namespace=verdict.STATELOCK_NS,
        python=python,
        program=_sh_quote(program),
        allow=verdict.ALLOW,
        refuse=verdict.REFUSE,
    )


def default_python() -> str:
    """The host's python3 for the hook: ``/usr/bin/python3``, else the first on ``PATH``.

    Raises ``HookError`` when there is none.
    """
    if os.access("/usr/bin/python3", os.X_OK):
        return "/usr/bin/python3"
    found = shutil.which("python3")
    if found is None:
        raise HookError("no python3 found for the hook: install one, or pass --python PATH")
    return found


def script_path(hooks_dir: Path) -> Path:
    """Where Statelock's hook lives in ``hooks_dir``."""
    return hooks_dir / "qemu.d" / HOOK_NAME


def status(hooks_dir: Path) -> HookStatus:
    """What ``hooks_dir`` holds: Statelock's hook (and its state), the operator's, the others."""
    script = script_path(hooks_dir)
    operator = hooks_dir / "qemu"
    others: list[Path] = []
    if script.parent.is_dir():
        others = sorted(p for p in script.parent.iterdir() if p != script and _executable(p))
    python = None
    installed_at = None
    try:
        text = script.read_text(encoding="utf-8")
        installed_at = script.stat().st_ctime
    except FileNotFoundError:
        state = HookState.MISSING
    except (OSError, UnicodeDecodeError) as exc:
        raise HookError(f"cannot read {script}: {exc}") from exc
    else:
        match = _PYTHON_LINE.search(text)
        python = match.group(1) if match else None
        if MARKER not in text:
            state = HookState.FOREIGN
        elif python is None or text != render_script(python):
            state = HookState.OUTDATED
        elif not _executable(script):
            state = HookState.NOT_EXECUTABLE
        else:
            state = HookState.INSTALLED
    return HookStatus(
        script=script,
        state=state,
        python=python,
        operator_hook=operator if _executable(operator) else None,
        other_hooks=tuple(others),
        installed_at=installed_at,
    )


def _executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def install(hooks_dir: Path, python: str) -> bool:
    """Install (or update) the hook in ``hooks_dir``; True if a file was written.

    Idempotent: an identical installed hook is left alone. Never touches the
    operator's ``qemu`` hook or other files in ``qemu.d/``. Refuses (``HookError``)
    to overwrite a file at its place that Statelock did not write.
    """
    before = status(hooks_dir)
    if before.state is HookState.FOREIGN:
        raise HookError(
            f"{before.script} exists and was not written by Statelock: move it away first"
        )
    wanted = render_script(python)
    if before.state is HookState.INSTALLED and before.python == python:
        return False
    try:
        before.script.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=before.script.parent, prefix=".statelock-")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.write(wanted)
            os.chmod(temporary, 0o755)
            # NOTE: rename, so libvirt never runs a half-written hook.
            os.replace(temporary, before.script)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
    except OSError as exc:
        raise HookError(f"cannot install the hook at {before.script}: {exc}") from exc
    return True


def remove(hooks_dir: Path) -> bool:
    """Remove the hook from ``hooks_dir``; True if there was one.

    ``qemu.d/`` goes too when nothing else is left in it; the operator's hooks stay.
    Refuses (``HookError``) to delete a file at its place that Statelock did not write.
    """
    current = status(hooks_dir)
    if current.state is HookState.MISSING:
        return False
    if current.state is HookState.FOREIGN:
        raise HookError(f"{current.script} was not written by Statelock: not removing it")
    try:
        current.script.unlink()
        with contextlib.suppress(OSError):
            current.script.parent.rmdir()  # only when empty
    except OSError as exc:
        raise HookError(f"cannot remove {current.script}: {exc}") from exc
    return True


def libvirt_version(daemon_binary: str) -> tuple[int, int, int] | None:
    """The version ``<daemon> --version`` prints, or ``None`` if it cannot be run or read."""
    try:
        done = subprocess.run(
            [daemon_binary, "--version"], capture_output=True, text=True, timeout=10, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    match = re.search(r"(\d+)\.(\d+)\.(\d+)", done.stdout)
    if done.returncode != 0 or match is None:
        return None
    return int(match.group(1)), int(match.group(2)), int(match.group(3))


def check_libvirt_supports_hook_dirs(search_path: str | None = None) -> None:
    """Raise ``HookError`` if the installed libvirt daemon predates ``qemu.d/`` (6.5.0).

    Looks for the daemons in ``search_path`` (default: the sbin directories, then
    ``PATH``); says nothing when none is installed (installing into a staging dir).
    """
    if search_path is None:
        search_path = f"/usr/sbin:/usr/local/sbin:{os.environ.get('PATH', '')}"
    for name in DAEMONS:
        binary = shutil.which(name, path=search_path)
        version = libvirt_version(binary) if binary else None
        if version is not None and version < MIN_LIBVIRT:
            shown = ".".join(map(str, version))
            raise HookError(
                f"{name} {shown} does not run hooks from qemu.d/ (libvirt 6.5.0 or newer does): "
                "upgrade libvirt"
            )


def _boot_time() -> float:
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise HookError("cannot read the boot time from /proc/stat")


def running_daemon(names: tuple[str, ...] = DAEMONS, proc: Path = Path("/proc")) -> Daemon | None:
    """The running libvirtd (or virtqemud, or another of ``names``); ``None`` if none runs.

    A zombie (exited, not yet reaped) does not count.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue  # gone meanwhile
        name = stat[stat.index("(") + 1 : stat.rindex(")")]
        # NOTE: fields 3 (state) and 22 (start time), counted after the ")" ending field 2.
        fields = stat[stat.rindex(")") + 2 :].split()
        if name in names and fields[0] != "Z":
            return Daemon(int(entry.name), name, _boot_time() + int(fields[19]) / ticks)
    return None


def reload_daemon(daemon: Daemon) -> None:
    """Send the daemon SIGHUP (what ``systemctl reload libvirtd`` does): it re-reads its hooks.

    The daemon does that a moment later, in a thread of its own (``probe.wait_until_called``
    waits for it).
    Raises ``HookError`` when the signal cannot be sent.
    """
    try:
        os.kill(daemon.pid, signal.SIGHUP)
    except OSError as exc:
        raise HookError(f"cannot reload {daemon.name} (pid {daemon.pid}): {exc}") from exc
