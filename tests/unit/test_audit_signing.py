"""The checkpoint signing key (sidecar.audit.signing) and ``statelock audit public-key``."""

from __future__ import annotations

import argparse
import os
import stat
from pathlib import Path

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from sidecar.audit.signing import key_id, load_or_create, load_public, public_pem, sign, signature_ok
from sidecar.cli.audit import add_audit_commands, run_audit_command
from sidecar.errors import AuditError


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="statelock")
    add_audit_commands(parser.add_subparsers(dest="command"))
    return run_audit_command(parser.parse_args(argv))


@pytest.mark.parametrize("umask", [0o000, 0o022])
def test_a_missing_key_is_made_0600_whatever_the_umask(tmp_path: Path, umask: int) -> None:
    path = tmp_path / "keys" / "audit.key"
    old = os.umask(umask)
    try:
        key = load_or_create(path)
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert key_id(load_or_create(path).public_key()) == key_id(key.public_key())
    assert [p.name for p in path.parent.iterdir()] == ["audit.key"]


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o644, 0o660, 0o606])
def test_a_key_that_group_or_others_may_read_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "audit.key"
    load_or_create(path)
    path.chmod(mode)
    with pytest.raises(AuditError) as refused:
        load_or_create(path)
    assert str(path) in refused.value.message
    assert f"chmod 600 {path}" in refused.value.message
    assert f"mode {mode:04o}" in refused.value.message


@pytest.mark.parametrize(("content", "message"), [
    (b"not a key", "not an unencrypted PEM private key"),
    (ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
     "not an Ed25519 key"),
], ids=["garbage", "ec-key"])
def test_a_key_file_that_is_no_ed25519_key_is_refused(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "audit.key"
    path.write_bytes(content)
    path.chmod(0o600)
    with pytest.raises(AuditError, match=message):
        load_or_create(path)


def test_a_key_that_cannot_be_created_names_the_path(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(AuditError, match=f"audit.signing_key {blocker}/audit.key: cannot create it"):
        load_or_create(blocker / "audit.key")


def test_signatures_verify_with_the_public_key_only(tmp_path: Path) -> None:
    key = load_or_create(tmp_path / "audit.key")
    (tmp_path / "audit.pub").write_text(public_pem(key.public_key()))
    public = load_public(tmp_path / "audit.pub")
    assert key_id(public) == key_id(key.public_key())
    assert key_id(load_public(tmp_path / "audit.key")) == key_id(public)
    signature = sign(key, b"head")
    assert signature_ok(public, signature, b"head")
    assert not signature_ok(public, signature, b"head!")
    assert not signature_ok(public, sign(Ed25519PrivateKey.generate(), b"head"), b"head")
    assert not signature_ok(public, "not base64 !", b"head")
    assert not signature_ok(public, None, b"head")


def test_public_key_command_prints_pem_from_the_key_or_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    log_path = tmp_path / "decisions.jsonl"
    key = load_or_create(tmp_path / "decisions.jsonl-signing.key")
    assert _run(["audit", "public-key", str(tmp_path / "decisions.jsonl-signing.key")]) == 0
    out, err = capsys.readouterr()
    assert out == public_pem(key.public_key())
    assert err.strip() == f"key id {key_id(key.public_key())}"
    config = tmp_path / "statelock.yaml"
    config.write_text(yaml.safe_dump({"backend": {"upstream_url": "http://127.0.0.1:1"},
                                      "audit": {"path": str(log_path)}}))
    assert _run(["audit", "public-key", "--config", str(config)]) == 0
    assert capsys.readouterr().out == public_pem(key.public_key())
    elsewhere = tmp_path / "elsewhere.key"
    other = load_or_create(elsewhere)
    config.write_text(yaml.safe_dump({"backend": {"upstream_url": "http://127.0.0.1:1"},
                                      "audit": {"path": str(log_path), "signing_key": str(elsewhere)}}))
    assert _run(["audit", "public-key", "-c", str(config)]) == 0
    assert capsys.readouterr().out == public_pem(other.public_key())


@pytest.mark.parametrize(("argv", "message"), [
    ([], "give the KEY file or --config FILE"),
    (["{tmp}/missing.key"], "no signing key at {tmp}/missing.key"),
    (["{tmp}/garbage.key"], "is not a PEM key"),
])
def test_public_key_command_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str,
) -> None:
    (tmp_path / "garbage.key").write_text("-----BEGIN PUBLIC KEY-----\nxx\n-----END PUBLIC KEY-----\n")
    assert _run(["audit", "public-key", *(a.format(tmp=tmp_path) for a in argv)]) == 2
    assert message.format(tmp=tmp_path) in capsys.readouterr().err
