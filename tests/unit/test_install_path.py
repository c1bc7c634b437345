"""`make run`, `make test` and the Dockerfile install through one path, and `make run` needs no test servers."""

from __future__ import annotations

import re
import subprocess

from tests.support.paths import ROOT

SCRIPTS = ROOT / "scripts"


def _make_dry_run(target: str) -> str:
    return subprocess.run(["make", "-n", "-B", target], cwd=ROOT, capture_output=True, text=True,
                          check=True).stdout


def test_make_run_installs_the_runtime_profile_only() -> None:
    plan = _make_dry_run("install")
    assert "scripts/install.sh --editable .venv" in plan
    assert "system-deps.sh test" not in plan and "[test]" not in plan and "libvirt,xenapi,test" not in plan


def test_make_test_adds_the_test_profile() -> None:
    plan = _make_dry_run(".venv/.installed-test")
    assert "./scripts/system-deps.sh test" in plan


def test_the_runtime_profile_names_no_test_server() -> None:
    script = (SCRIPTS / "system-deps.sh").read_text()
    runtime = script[:script.index('if [ "$profile" = test ]')]
    for package in ("postgresql", "qemu", "libvirt-daemon", "chromium"):
        assert package not in runtime.split("need=()", 1)[1], package


def test_system_deps_refuses_an_unknown_profile() -> None:
    done = subprocess.run(["bash", str(SCRIPTS / "system-deps.sh"), "everything"], capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr


def test_the_dockerfile_installs_as_make_does() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(r"^RUN [^\n]*\\\n && PYTHON=python3.11 \./scripts/install\.sh /opt/statelock/venv", dockerfile,
                     re.MULTILINE)
    assert "pip install" not in dockerfile.replace("scripts/install.sh", "")
    assert "COPY policies ./policies" in dockerfile and "COPY config ./config" in dockerfile
    assert "USER statelock" in dockerfile
