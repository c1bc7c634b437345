"""Installing, updating, removing and inspecting the hook script (drivers/libvirt_hook/install.py).

Every test works on a hooks directory of its own under ``tmp_path``; the daemon
look-up runs on a fake ``/proc`` tree.
"""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from drivers.libvirt_hook import install as hook
from drivers.libvirt_hook.install import HookError, HookState

PYTHON = sys.executable
OPERATOR_HOOK = "#!/bin/sh\n# the operator's own hook\nexit 0\n"


def executable(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def test_install_writes_an_executable_script_once(tmp_path: Path) -> None:
    assert hook.status(tmp_path).state is HookState.MISSING
    assert hook.install(tmp_path, PYTHON) is True
    script = tmp_path / "qemu.d" / "00-statelock"
    assert script.read_text() == hook.render_script(PYTHON)
    assert stat.S_IMODE(script.stat().st_mode) == 0o755
    first = script.stat()

    assert hook.install(tmp_path, PYTHON) is False
    assert script.stat().st_ino == first.st_ino and script.stat().st_mtime == first.st_mtime
    current = hook.status(tmp_path)
    assert (current.state, current.python, current.operator_hook) == (HookState.INSTALLED, PYTHON, None)
    assert [p.name for p in script.parent.iterdir()] == ["00-statelock"]  # no temporary file left


def test_the_operators_hooks_are_kept_as_they_are(tmp_path: Path) -> None:
    operator = executable(tmp_path / "qemu", OPERATOR_HOOK)
    other = executable(tmp_path / "qemu.d" / "50-network", OPERATOR_HOOK)
    hook.install(tmp_path, PYTHON)
    current = hook.status(tmp_path)
    assert current.operator_hook == operator and current.other_hooks == (other,)

    assert hook.remove(tmp_path) is True
    assert operator.read_text() == OPERATOR_HOOK and os.access(operator, os.X_OK)
    assert other.read_text() == OPERATOR_HOOK
    assert hook.status(tmp_path).state is HookState.MISSING


def test_remove_takes_qemu_d_away_when_it_is_left_empty(tmp_path: Path) -> None:
    hook.install(tmp_path, PYTHON)
    assert hook.remove(tmp_path) is True
    assert not (tmp_path / "qemu.d").exists()
    assert hook.remove(tmp_path) is False


@pytest.mark.parametrize(("change", "state"), [
    (lambda p: p.write_text(p.read_text().replace("exit 0\n", "exit 1\n", 1)), HookState.OUTDATED),
    (lambda p: p.chmod(0o644), HookState.NOT_EXECUTABLE),
    (lambda p: p.write_text(p.read_text().replace("python=", "interpreter=")), HookState.OUTDATED),
], ids=["edited", "not executable", "no python line"])
def test_install_repairs_its_own_script(tmp_path: Path, change: object, state: HookState) -> None:
    hook.install(tmp_path, PYTHON)
    script = hook.script_path(tmp_path)
    change(script)  # type: ignore[operator]
    assert hook.status(tmp_path).state is state
    assert hook.install(tmp_path, PYTHON) is True
    assert hook.status(tmp_path).state is HookState.INSTALLED
    assert script.read_text() == hook.render_script(PYTHON)


def test_install_switches_to_another_python(tmp_path: Path) -> None:
    hook.install(tmp_path, PYTHON)
    assert hook.install(tmp_path, "/opt/python3/bin/python3") is True
    assert hook.status(tmp_path).python == "/opt/python3/bin/python3"


def test_a_file_statelock_did_not_write_is_never_overwritten_or_removed(tmp_path: Path) -> None:
    foreign = executable(hook.script_path(tmp_path), OPERATOR_HOOK)
    assert hook.status(tmp_path).state is HookState.FOREIGN
    with pytest.raises(HookError, match="was not written by Statelock"):
        hook.install(tmp_path, PYTHON)
    with pytest.raises(HookError, match="not removing it"):
        hook.remove(tmp_path)
    assert foreign.read_text() == OPERATOR_HOOK


@pytest.mark.parametrize(("hooks_dir", "message"), [
    (Path("/proc/statelock-test"), "cannot install the hook at /proc/statelock-test/qemu.d/00-statelock"),
    (Path("/etc/hostname"), "cannot read /etc/hostname/qemu.d/00-statelock"),
], ids=["read-only file system", "a file in the way"])
def test_an_unusable_hooks_dir_is_a_clear_error(hooks_dir: Path, message: str) -> None:
    with pytest.raises(HookError, match=message):
        hook.install(hooks_dir, PYTHON)


@pytest.mark.parametrize("python", ["/usr/bin/py'thon", "/usr/bin/python\n3"])
def test_render_refuses_a_python_path_it_cannot_quote(python: str) -> None:
    with pytest.raises(HookError, match="unusable python path"):
        hook.render_script(python)


@pytest.mark.parametrize(("version", "refused"), [("6.0.0", True), ("6.5.0", False), ("9.0.0", False)])
def test_libvirt_older_than_6_5_is_refused(tmp_path: Path, version: str, refused: bool) -> None:
    executable(tmp_path / "libvirtd", f"#!/bin/sh\necho 'libvirtd (libvirt) {version}'\n")
    if refused:
        with pytest.raises(HookError, match=f"libvirtd {version} does not run hooks from qemu.d/"):
            hook.check_libvirt_supports_hook_dirs(str(tmp_path))
    else:
        hook.check_libvirt_supports_hook_dirs(str(tmp_path))


def fake_proc(root: Path, pid: int, name: str, state: str, start_ticks: int) -> None:
    fields = [state, "1", *["0"] * 17, str(start_ticks), "0"]
    (root / str(pid)).mkdir(parents=True)
    (root / str(pid) / "stat").write_text(f"{pid} ({name}) {' '.join(fields)}\n")


def test_running_daemon_finds_libvirtd_and_skips_zombies(tmp_path: Path) -> None:
    ticks = os.sysconf("SC_CLK_TCK")
    fake_proc(tmp_path, 10, "libvirtd", "Z", 100)
    fake_proc(tmp_path, 11, "bash", "S", 100)
    assert hook.running_daemon(proc=tmp_path) is None
    fake_proc(tmp_path, 12, "virtqemud", "S", 50 * ticks)
    (tmp_path / "self").mkdir()
    daemon = hook.running_daemon(proc=tmp_path)
    assert daemon is not None and (daemon.pid, daemon.name) == (12, "virtqemud")
    boot = float(next(line.split()[1] for line in Path("/proc/stat").read_text().splitlines()
                      if line.startswith("btime ")))
    assert daemon.started_at == pytest.approx(boot + 50)
