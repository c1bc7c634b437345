"""docs/config.md is the schema's own reference, and the systemd unit is hardened."""

from __future__ import annotations

import configparser
import dataclasses
import typing

import pytest

from sidecar.cli import main
from sidecar.config import Config
from sidecar.config.reference import markdown
from tests.support.paths import ROOT


def _keys(cls: type[object], prefix: str = "") -> list[str]:
    out = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            out += _keys(tp, f"{prefix}{f.name}.")
        else:
            out.append(f"{prefix}{f.name}")
    return out


def test_docs_config_md_is_fresh() -> None:
    assert (ROOT / "docs" / "config.md").read_text() == markdown(), \
        "docs/config.md is stale: statelock check-config --explain --markdown > docs/config.md"


def test_the_reference_names_every_key_with_help() -> None:
    page = markdown()
    for key in _keys(Config):
        [row] = [line for line in page.splitlines() if line.startswith(f"| `{key}` |")]
        assert row.split("|")[3].strip(), f"{key} has no help text"


def test_check_config_prints_the_reference(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check-config", "--explain", "--markdown"]) == 0
    assert capsys.readouterr().out == markdown()


def test_the_systemd_unit_runs_serve_hardened_as_its_own_user() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]
    unit.read(ROOT / "deploy" / "statelock.service")
    svc = unit["Service"]
    assert svc["User"] == "statelock" and svc["Group"] == "statelock"
    assert svc["ExecStart"].endswith("statelock serve --config /etc/statelock/statelock.yaml")
    assert "check-config" in svc["ExecStartPre"]
    for key, value in (("NoNewPrivileges", "yes"), ("ProtectSystem", "strict"), ("ProtectHome", "yes"),
                       ("PrivateTmp", "yes"), ("UMask", "0027"), ("KillSignal", "SIGTERM")):
        assert svc[key] == value, key
    assert int(svc["TimeoutStopSec"]) > Config().shutdown_timeout_s
    assert svc["CapabilityBoundingSet"] == ""


@pytest.mark.parametrize(("argv", "usage"), [
    (["locks", "add", "--target", "t", "--reason", "r", "--bogus"], "usage: statelock locks add"),
    (["audit", "query", "x.jsonl", "--nope"], "usage: statelock audit query"),
    (["check-config", "--nope"], "usage: statelock check-config"),
    (["serve", "--config", "x", "--nope"], "usage: statelock serve"),
])
def test_a_wrong_flag_shows_the_usage_of_its_own_command(
    argv: list[str], usage: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(usage) and "unrecognized arguments: --" in err


@pytest.mark.parametrize(("argv", "expected"), [
    (["suspend-lock", "--help"], ["--reason REASON", "why, shown to the owner", "the instance (server UUID)"]),
    (["unlock-resume", "--help"], ["Lift every suspend-lock of the instance", "the instance (server UUID)"]),
    (["locks", "add", "--help"], ["--force", "what --target names"]),
])
def test_every_lock_command_argument_has_help(argv: list[str], expected: list[str],
                                              capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(argv)
    out = " ".join(capsys.readouterr().out.split())
    for text in expected:
        assert " ".join(text.split()) in out, text
