"""The digest and HMAC host builtins (OPA's topdown/crypto.go): ``crypto.md5``... ``crypto.hmac.equal``.

Strings are hashed as their UTF-8 bytes, as Go hashes a string; digests come back
as lowercase hex. A non-string operand is a builtin error (the call is undefined).
The x509, key and JWT builtins are not here: their semantics are too wide to match.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from sidecar.policy.wasm.builtins._text import is_string
from sidecar.policy.wasm.builtins.registry import BuiltinError, EvalContext, register
from sidecar.policy.wasm.values import type_name

__all__: list[str] = []


def _bytes(value: Any, position: int) -> bytes:
    if not is_string(value):
        raise BuiltinError(f"operand {position} must be string but got {type_name(value)}")
    # NOTE: a lone surrogate can't come from OPA's JSON reader; "surrogatepass" only keeps this total.
    return value.encode("utf-8", "surrogatepass")


def _digest(name: str, algorithm: str) -> None:
    def digest(_ctx: EvalContext, text: Any) -> str:
        return hashlib.new(algorithm, _bytes(text, 1)).hexdigest()

    digest.__doc__ = f"The {algorithm} digest of the string's UTF-8 bytes, as hex; BuiltinError for a non-string."
    register(name)(digest)


def _hmac(name: str, algorithm: str) -> None:
    def mac(_ctx: EvalContext, message: Any, key: Any) -> str:
        return hmac.new(_bytes(key, 2), _bytes(message, 1), algorithm).hexdigest()

    mac.__doc__ = f"HMAC-{algorithm} of ``message`` under ``key`` (UTF-8 bytes), as hex; BuiltinError for a non-string."
    register(name)(mac)


for _name, _algorithm in (("crypto.md5", "md5"), ("crypto.sha1", "sha1"), ("crypto.sha256", "sha256")):
    _digest(_name, _algorithm)
for _name, _algorithm in (("crypto.hmac.md5", "md5"), ("crypto.hmac.sha1", "sha1"),
                          ("crypto.hmac.sha256", "sha256"), ("crypto.hmac.sha512", "sha512")):
    _hmac(_name, _algorithm)


@register("crypto.hmac.equal")
def hmac_equal(_ctx: EvalContext, mac1: Any, mac2: Any) -> bool:
    """Whether the two strings are byte-equal, compared in constant time; BuiltinError for a non-string."""
    return hmac.compare_digest(_bytes(mac1, 1), _bytes(mac2, 2))
