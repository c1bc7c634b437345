"""``statelock hypervisor install-hook / remove-hook`` (sidecar/cli/hypervisor.py) on a hooks dir of its own.

Run through ``sidecar.cli.main`` exactly as the ``statelock`` command does. A
hooks dir other than libvirt's only renders the hook (no daemon is looked at);
``--check`` against the running libvirtd is in tests/integration/test_qemu_guest.py.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from drivers.libvirt_hook import install as hook
from sidecar.cli import main

PYTHON = sys.executable


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["hypervisor", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_install_check_and_remove(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    script = tmp_path / "qemu.d" / "00-statelock"
    code, out, _ = run(capsys, "install-hook", "--check", "--hooks-dir", str(tmp_path))
    assert code == 1 and f"hook:   {script}: not installed" in out

    code, out, _ = run(capsys, "install-hook", "--hooks-dir", str(tmp_path), "--python", PYTHON)
    assert code == 0
    assert out.splitlines()[0] == f"installed: {script} (python {PYTHON})"
    assert f"note: libvirtd reads /etc/libvirt/hooks; copy {script} there" in out
    assert script.read_text() == hook.render_script(PYTHON)
    code, out, _ = run(capsys, "install-hook", "--hooks-dir", str(tmp_path), "--python", PYTHON)
    assert code == 0 and out.startswith(f"already installed: {script}")

    code, out, _ = run(capsys, "install-hook", "--check", "--hooks-dir", str(tmp_path))
    assert code == 0
    assert f"hook:   {script}: installed (python {PYTHON})" in out
    assert f"daemon: not checked ({tmp_path} is not libvirt's /etc/libvirt/hooks)" in out

    code, out, _ = run(capsys, "remove-hook", "--hooks-dir", str(tmp_path))
    assert (code, out) == (0, f"removed: {script}\n")
    code, out, _ = run(capsys, "remove-hook", "--hooks-dir", str(tmp_path))
    assert (code, out) == (0, f"not installed: nothing at {script}\n")


def test_the_operators_hook_is_named_as_kept(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    operator = tmp_path / "qemu"
    operator.write_text("#!/bin/sh\nexit 0\n")
    operator.chmod(0o755)
    code, out, _ = run(capsys, "install-hook", "--hooks-dir", str(tmp_path), "--python", PYTHON)
    assert code == 0
    assert f"kept: {operator} (libvirt runs it first, then {hook.script_path(tmp_path)})" in out
    code, out, _ = run(capsys, "remove-hook", "--hooks-dir", str(tmp_path))
    assert code == 0 and f"kept: {operator}" in out and operator.exists()


@pytest.mark.parametrize(("change", "expected"), [
    (lambda p: p.chmod(0o644), "installed, but not executable"),
    (lambda p: p.write_text(p.read_text() + "# edited\n"), "installed, but not what this Statelock"),
], ids=["not executable", "edited"])
def test_check_reports_a_broken_install(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, change: object, expected: str
) -> None:
    hook.install(tmp_path, PYTHON)
    change(hook.script_path(tmp_path))  # type: ignore[operator]
    code, out, _ = run(capsys, "install-hook", "--check", "--hooks-dir", str(tmp_path))
    assert code == 1 and expected in out


def test_check_reports_a_missing_python(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    hook.install(tmp_path, str(tmp_path / "gone" / "python3"))
    code, out, _ = run(capsys, "install-hook", "--check", "--hooks-dir", str(tmp_path))
    assert code == 1
    assert f"python: {tmp_path}/gone/python3 is missing: the hook lets every start proceed" in out


@pytest.mark.parametrize(("argv", "message"), [
    (["--python", "/nonexistent/python3"], "statelock: --python /nonexistent/python3: not an executable file"),
    ([], "was not written by Statelock: move it away first"),
], ids=["bad python", "foreign file"])
def test_install_errors_say_what_to_do(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, argv: list[str], message: str
) -> None:
    foreign = hook.script_path(tmp_path)
    foreign.parent.mkdir()
    foreign.write_text("#!/bin/sh\n")
    code, out, err = run(capsys, "install-hook", "--hooks-dir", str(tmp_path), *argv)
    assert code == 1 and out == "" and message in err
    assert foreign.read_text() == "#!/bin/sh\n"


def test_hypervisor_without_a_subcommand_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys)
    assert code == 2 and "install-hook" in err and "remove-hook" in err
