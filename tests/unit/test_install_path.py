"""`make run`, `make test` and the Dockerfile install through one path, and `make run` needs no test servers."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

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


def test_opa_is_built_one_way_for_make_and_the_image() -> None:
    makefile = (ROOT / "Makefile").read_text()
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "./scripts/build-opa.sh $(OPA_VERSION) $(TOOLS)" in makefile
    version = re.search(r"^OPA_VERSION := (v[\d.]+)$", makefile, re.MULTILINE)
    assert version is not None
    assert f"RUN /build-opa.sh {version.group(1)} /opt/opa/bin" in dockerfile
    assert "COPY --from=opa /opt/opa/bin/opa /usr/local/bin/opa" in dockerfile


def test_make_run_gets_opa_first() -> None:
    assert re.search(r"^run: install opa$", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_build_opa_fails_loudly_without_go(tmp_path: Path) -> None:
    # NOTE: a PATH holding only bash and the coreutils the script uses, so `go` is not found.
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "mkdir", "dirname"):
        found = shutil.which(tool)
        assert found is not None
        (bindir / tool).symlink_to(found)
    done = subprocess.run([str(bindir / "bash"), str(SCRIPTS / "build-opa.sh"), "v1.22.2", str(tmp_path / "out")],
                          capture_output=True, text=True, env={"PATH": str(bindir)})
    assert done.returncode == 1 and "building OPA needs Go" in done.stderr
