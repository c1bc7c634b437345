"""The console's templates and static files ship in the wheel (``[tool.setuptools.package-data]``)."""

from __future__ import annotations

import fnmatch
import tomllib

from tests.support.paths import ROOT

UI = ROOT / "sidecar" / "handlers" / "ui"


def test_every_template_and_asset_is_package_data() -> None:
    patterns = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"][
        "sidecar.handlers.ui"]
    files = [p.relative_to(UI).as_posix() for sub in ("templates", "static") for p in (UI / sub).iterdir()]
    assert files and not [f for f in files if not any(fnmatch.fnmatch(f, pat) for pat in patterns)]
