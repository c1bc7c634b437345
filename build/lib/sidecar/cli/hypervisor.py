"""``statelock hypervisor``: install, check and remove the libvirt qemu hook that enforces boot blocks.

``add_hypervisor_commands`` adds the ``hypervisor`` command to the top-level parser;
``run_hypervisor_command`` runs it and returns the exit status: 0 done (for
``--check``: installed, and called by the running libvirtd or by the next one to
start), 1 when it could not be done or the check found a problem (the message says
what to do), 2 on a usage error. The work is ``drivers.libvirt_hook``'s.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

from drivers.libvirt_hook import install as hook
from drivers.libvirt_hook.install import Daemon, HookError, HookState, HookStatus
from sidecar.cli.common import command_group, group_usage

HYPERVISOR_EPILOG = """\
examples:
  statelock hypervisor install-hook                  # into /etc/libvirt/hooks/qemu.d/
  statelock hypervisor install-hook --reload         # and make the running libvirtd re-read its hooks
  statelock hypervisor install-hook --check          # installed? does libvirtd call it?
  statelock hypervisor install-hook --hooks-dir ./files/hooks   # render it for config management
  statelock hypervisor remove-hook
"""

INSTALL_DESCRIPTION = """\
Install Statelock's libvirt qemu hook as HOOKS_DIR/qemu.d/00-statelock. The hook
refuses "prepare" and "restore" of any domain whose metadata carries a Statelock boot
block, so a direct `virsh start`, autostart, or Nova itself cannot restore a
suspend-locked guest; libvirt reports "blocked by Statelock lock lk-...: <reason>".
It runs after (and never replaces) an operator's own HOOKS_DIR/qemu hook and any
other qemu.d/ hook. Idempotent. If the domain XML cannot be parsed, the hook lets
the start proceed and logs that to syslog.

libvirtd calls qemu hooks only if it found one when it started or last reloaded
(SIGHUP, `systemctl reload libvirtd`): --reload sends that signal, and --check
tells whether the running daemon calls the hook, by starting a probe domain that
the hook refuses and that cannot run if it does not (no QEMU process is started).
"""

REMOVE_DESCRIPTION = """\
Remove Statelock's hook (HOOKS_DIR/qemu.d/00-statelock, and qemu.d/ if that leaves it
empty). The operator's hooks are not touched. libvirt looks into qemu.d/ on every
call, so the hook stops being called at once; no reload is needed.
"""


def add_hypervisor_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``hypervisor install-hook`` and ``hypervisor remove-hook`` under ``subparsers``."""
    sub = command_group(subparsers, "hypervisor",
                        help="install, check or remove the libvirt hook that enforces boot blocks",
                        description="The hypervisor side of Statelock's boot blocks: a libvirt qemu hook.",
                        epilog=HYPERVISOR_EPILOG, dest="hypervisor_command")

    install = sub.add_parser(
        "install-hook", help="install (or --check) the qemu hook", description=INSTALL_DESCRIPTION,
        epilog=HYPERVISOR_EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    _hooks_dir_option(install)
    install.add_argument("--python", metavar="PATH",
                         help="the python3 (3.7+) the hook runs for prepare/restore "
                              "(default /usr/bin/python3, else python3 on PATH)")
    install.add_argument("--check", action="store_true",
                         help="install nothing: report whether the hook is installed and whether "
                              "the running libvirtd calls it (exit 0 if so, 1 if not)")
    install.add_argument("--reload", action="store_true",
                         help="send the running libvirtd (or virtqemud) SIGHUP so that it re-reads "
                              "its hooks")
    install.add_argument("--uri", default="qemu:///system",
                         help="the libvirt connection --check probes (default %(default)s)")
    install.add_argument("--no-probe", action="store_true",
                         help="with --check: do not start a probe domain; judge from file and "
                              "process start times only")

    remove = sub.add_parser("remove-hook", help="remove the qemu hook", description=REMOVE_DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    _hooks_dir_option(remove)


def _hooks_dir_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--hooks-dir", type=Path, default=hook.DEFAULT_HOOKS_DIR, metavar="DIR",
                        help="libvirt's hooks directory (default %(default)s, which libvirtd "
                             "reads; another DIR only renders the hook there)")


def run_hypervisor_command(args: argparse.Namespace) -> int:
    """Run ``statelock hypervisor ...``; returns the exit status (see the module docstring)."""
    try:
        if args.hypervisor_command == "install-hook":
            return _check(args) if args.check else _install(args)
        if args.hypervisor_command == "remove-hook":
            return _remove(args.hooks_dir)
    except HookError as exc:
        print(f"statelock: {exc}", file=sys.stderr)
        return 1
    return group_usage(args)


def _is_libvirts(hooks_dir: Path) -> bool:
    return hooks_dir.resolve() == hook.DEFAULT_HOOKS_DIR.resolve()


def _install(args: argparse.Namespace) -> int:
    hooks_dir: Path = args.hooks_dir
    python = args.python or hook.default_python()
    if not os.access(python, os.X_OK):
        raise HookError(f"--python {python}: not an executable file")
    if _is_libvirts(hooks_dir):
        hook.check_libvirt_supports_hook_dirs()
    wrote = hook.install(hooks_dir, python)
    current = hook.status(hooks_dir)
    print(f"{'installed' if wrote else 'already installed'}: {current.script} (python {python})")
    _print_neighbours(current)
    if not _is_libvirts(hooks_dir):
        print(f"note: libvirtd reads {hook.DEFAULT_HOOKS_DIR}; copy {current.script} there "
              f"(mode 0755) on each hypervisor host")
        return 0
    daemon = hook.running_daemon()
    if daemon is None:
        print("libvirtd is not running: it will call the hook when it starts")
    elif args.reload:
        hook.reload_daemon(daemon)
        print(f"reloaded {daemon.name} (pid {daemon.pid}): it re-reads its hooks")
    else:
        print(f"{daemon.name} (pid {daemon.pid}) calls qemu hooks only if it found one when it "
              "started or last reloaded: `statelock hypervisor install-hook --check` tells; "
              "--reload (or `systemctl reload libvirtd`) makes it re-read them")
    return 0


def _print_neighbours(current: HookStatus) -> None:
    if current.operator_hook is not None:
        print(f"kept: {current.operator_hook} (libvirt runs it first, then {current.script})")
    for other in current.other_hooks:
        print(f"kept: {other}")


def _remove(hooks_dir: Path) -> int:
    script = hook.script_path(hooks_dir)
    if hook.remove(hooks_dir):
        print(f"removed: {script}")
    else:
        print(f"not installed: nothing at {script}")
    _print_neighbours(hook.status(hooks_dir))
    return 0


def _check(args: argparse.Namespace) -> int:
    current = hook.status(args.hooks_dir)
    python = f" (python {current.python})" if current.python else ""
    print(f"hook:   {current.script}: {current.state.value}{python}")
    _print_neighbours(current)
    installed = current.state is HookState.INSTALLED
    if installed and current.python is not None and not os.access(current.python, os.X_OK):
        print(f"python: {current.python} is missing: the hook lets every start proceed "
              "(re-run install-hook)")
        installed = False
    if not _is_libvirts(args.hooks_dir):
        print(f"daemon: not checked ({args.hooks_dir} is not libvirt's {hook.DEFAULT_HOOKS_DIR})")
        return 0 if installed else 1
    daemon = hook.running_daemon()
    if daemon is None:
        print("daemon: libvirtd is not running (it calls the hook when it starts)")
        return 0 if installed else 1
    print(f"daemon: {daemon.name} pid {daemon.pid}, started {_when(daemon.started_at)}")
    if not installed:
        return 1
    if args.reload:
        hook.reload_daemon(daemon)
        print(f"reload: sent SIGHUP to {daemon.name} (pid {daemon.pid})")
    called = _judge(args, current, daemon)
    return 0 if called else 1


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _judge(args: argparse.Namespace, current: HookStatus, daemon: Daemon) -> bool:
    """Print whether the daemon calls the hook; True if it does."""
    advice = (f"reload it: `statelock hypervisor install-hook --reload`, `systemctl reload "
              f"{daemon.name}` or `kill -HUP {daemon.pid}`")
    if args.no_probe:
        earlier = [p for p in (current.operator_hook, *current.other_hooks, current.script)
                   if p is not None and p.stat().st_ctime < daemon.started_at]
        if earlier:
            print(f"called: yes ({daemon.name} started after {earlier[0]} was in place, so it "
                  "calls the qemu hooks)")
            return True
        print(f"called: unknown ({daemon.name} started before any qemu hook was in place: it "
              f"calls them only if it was reloaded since; probe without --no-probe, or {advice})")
        return False
    try:
        import libvirt

        from drivers.libvirt_hook.probe import SYSTEM_LOG_DIR, probe, wait_until_called
    except ImportError:
        raise HookError("the probe needs libvirt-python (pip install libvirt-python); "
                        "or pass --no-probe") from None
    libvirt.registerErrorHandler(lambda _ctx, _err: None, None)
    try:
        conn = libvirt.open(args.uri)
    except libvirt.libvirtError as exc:
        raise HookError(f"cannot connect to {args.uri} to probe: {exc}; or pass --no-probe") from exc
    log_dir = SYSTEM_LOG_DIR if args.uri == "qemu:///system" else None
    try:
        result = wait_until_called(conn, log_dir) if args.reload else probe(conn, log_dir)
    finally:
        conn.close()
    if result.called:
        print(f"called: yes ({result.detail})")
        return True
    print(f"called: no ({result.detail}); {advice}")
    return False
