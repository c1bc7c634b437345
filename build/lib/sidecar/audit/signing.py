"""The Ed25519 key that signs checkpoints: made on first start, kept private, printed public.

The private key is a PEM (PKCS #8, unencrypted) file of mode 0600. ``load_or_create``
makes it when it is absent (written to a temporary name and linked into place, so two
processes starting at once end up with one key) and refuses one that group or others
may access: whoever can read it can sign checkpoints. A key is named by its
``key_id``, ``ed25519:`` and the first 16 hex digits of the SHA-256 of its raw public
bytes; every checkpoint carries the id of the key that signed it.

Verification needs only the public key (``load_public``), so a log can be checked
on a machine that never held the private one.
"""

from __future__ import annotations

import base64
import hashlib
import os
import stat
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sidecar.audit.files import fsync_dir
from sidecar.errors import AuditError

KEY_MODE = 0o600


def key_id(public: Ed25519PublicKey) -> str:
    """The short name of a public key, as checkpoints carry it."""
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "ed25519:" + hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    """A public key as PEM (SubjectPublicKeyInfo), the form ``--public-key`` reads."""
    return public.public_bytes(serialization.Encoding.PEM,
                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def sign(key: Ed25519PrivateKey, data: bytes) -> str:
    """The signature of ``data``, base64."""
    return base64.b64encode(key.sign(data)).decode()


def signature_ok(public: Ed25519PublicKey, signature: object, data: bytes) -> bool:
    """True if ``signature`` (base64) is ``public``'s signature of ``data``."""
    if not isinstance(signature, str):
        return False
    try:
        public.verify(base64.b64decode(signature, validate=True), data)
    except (InvalidSignature, ValueError):
        return False
    return True


def load_or_create(path: str | Path) -> Ed25519PrivateKey:
    """The signing key at ``path``, made (mode 0600) if there is none.

    Raises AuditError naming the path and the fix when the key may be read by group or
    others, can't be read or written, or is not an Ed25519 private key.
    """
    p = Path(path)
    if not p.exists():
        _create(p)
    try:
        mode = stat.S_IMODE(p.stat().st_mode)
        if mode & 0o077:
            raise AuditError(f"audit.signing_key {p} may be read by group or others (mode {mode:04o}): "
                             f"anyone who reads it can sign checkpoints. Run: chmod 600 {p}")
        data = p.read_bytes()
    except OSError as exc:
        raise AuditError(f"audit.signing_key {p}: cannot read it: {exc.strerror or exc}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise AuditError(f"audit.signing_key {p} is not an unencrypted PEM private key ({exc}); "
                         "move it aside to have a new one made") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditError(f"audit.signing_key {p} is not an Ed25519 key; move it aside to have a new "
                         "one made")
    return key


def load_public(path: str | Path) -> Ed25519PublicKey:
    """The public key in ``path``: a public PEM, or the private key's PEM (its public half).

    Raises AuditError naming the file if it can't be read or holds no Ed25519 key.
    """
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise AuditError(f"cannot read the key {p}: {exc.strerror or exc}") from exc
    try:
        if b"PRIVATE KEY" in data:
            private = serialization.load_pem_private_key(data, password=None)
            if isinstance(private, Ed25519PrivateKey):
                return private.public_key()
        else:
            public = serialization.load_pem_public_key(data)
            if isinstance(public, Ed25519PublicKey):
                return public
    except (ValueError, TypeError) as exc:
        raise AuditError(f"{p} is not a PEM key ({exc})") from None
    raise AuditError(f"{p} is not an Ed25519 key")


def _create(path: Path) -> None:
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, KEY_MODE)
        try:
            os.fchmod(fd, KEY_MODE)
            os.write(fd, pem)
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass  # NOTE: another process made one first; it is the one both use.
        finally:
            os.unlink(tmp)
        fsync_dir(path.parent)
    except OSError as exc:
        raise AuditError(f"audit.signing_key {path}: cannot create it: {exc.strerror or exc} "
                         "(make its directory writable, or set audit.signing_key)") from exc
