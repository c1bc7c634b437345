"""Deciding one corpus input with the embedded Wasm engine and with a real OPA server, exactly.

Both engines get the same input text, byte for byte (``encode``). Their answers are
reduced to a ``Verdict``: a value, undefined, or an error (a conflict or another
one). Numbers are compared as exact decimals (``canonical``), so ``2e+308`` and
OPA's ``2000...0`` are the same number while ``0.30000000000000004`` and ``0.3`` are
not, and nothing is rounded through a float on the way.

A policy the embedded engine refuses (``UnsupportedBuiltin``) blocks the acceptance
test only when the builtin is one the issue requires (``required_by_issue``).
"""

from __future__ import annotations

import decimal
import http.client
import json
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

from sidecar.errors import PolicyError
from sidecar.policy.wasm import values
from sidecar.policy.wasm.runtime import WasmPolicy
from tests.support.opa_server import LOOPBACK, OpaServer, run_opa

__all__ = ["CORPUS", "NO_INPUT", "OpaRest", "Verdict", "canonical", "encode", "parse_exact", "required_by_issue",
           "string_builtins", "wasm_verdict"]

CORPUS = Path(__file__).resolve().parent / "policies"

# NOTE: the issue's builtin families; a policy refused for one of these fails the test.
REQUIRED_PREFIXES = ("time.", "strings.", "regex.", "net.cidr_", "semver.")


class _NoInput:
    """The marker of a query without any input document (``input`` undefined)."""

    def __repr__(self) -> str:
        return "NO_INPUT"


NO_INPUT = _NoInput()

_EXACT = decimal.Context(prec=100_000, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


# --- input text ---------------------------------------------------------------------


def encode(doc: Any, ascii_only: bool = False) -> bytes | None:
    """The JSON text of ``doc`` (None for NO_INPUT); a ``Decimal`` is written as its own digits.

    ``ascii_only`` writes non-ASCII characters as ``\\u`` escapes (surrogate pairs
    beyond the BMP), so both engines' JSON readers get both forms.
    """
    if doc is NO_INPUT:
        return None
    return _text(doc, ascii_only).encode()


def _text(value: Any, ascii_only: bool, sort_keys: bool = False) -> str:
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ",".join(_text(v, ascii_only, sort_keys) for v in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items()) if sort_keys else value.items()
        return "{" + ",".join(f"{_text(str(k), ascii_only)}:{_text(v, ascii_only, sort_keys)}"
                              for k, v in items) + "}"
    if isinstance(value, str) and not ascii_only and not _encodable(value):
        ascii_only = True
    return json.dumps(value, ensure_ascii=ascii_only, allow_nan=False)


def _encodable(value: str) -> bool:
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


# --- verdicts -----------------------------------------------------------------------


def _number(text: str) -> Decimal:
    return Decimal(text)


def _exact(value: Any) -> Any:
    """``value`` (parsed with Decimal numbers) with every number in one normal form."""
    if isinstance(value, Decimal):
        normal = _EXACT.normalize(value)
        return Decimal(0) if normal.is_zero() else normal
    if isinstance(value, list):
        return [_exact(v) for v in value]
    if isinstance(value, dict):
        return {k: _exact(v) for k, v in value.items()}
    return value


def _parse(raw: bytes | str) -> Any:
    return json.loads(raw, parse_float=_number, parse_int=_number)


def parse_exact(text: str) -> Any:
    """JSON text (a verdict's canonical value) read with every number a Decimal."""
    return _parse(text)


def canonical(value: Any) -> str:
    """The JSON text two equal values (parsed with Decimal numbers) share: keys sorted, numbers normalised."""
    return _text(_exact(value), ascii_only=False, sort_keys=True)


@dataclass(frozen=True)
class Verdict:
    """One engine's answer: ``kind`` value/undefined/error, the canonical ``value``, the error text.

    Two verdicts are the same decision when ``kind``, ``value`` and ``conflict`` are
    equal; the error texts of the two engines differ and are only shown.
    """

    kind: Literal["value", "undefined", "error"]
    value: str = ""
    conflict: bool = False
    error: str = ""

    def same_decision(self, other: Verdict) -> bool:
        return (self.kind, self.value, self.conflict) == (other.kind, other.value, other.conflict)

    def __str__(self) -> str:
        if self.kind == "value":
            return f"value {self.value[:600]}"
        if self.kind == "error":
            return f"{'conflict' if self.conflict else 'error'}: {self.error[:300]}"
        return "undefined"


def _result_verdict(results: Any) -> Verdict:
    if not results:
        return Verdict("undefined")
    return Verdict("value", canonical(results[0]["result"]))


def wasm_verdict(policy: WasmPolicy, entrypoint_id: int, input_json: bytes | None) -> Verdict:
    """What the embedded engine decides for ``input_json`` (None: no input), read as ``evaluate`` reads it.

    ``evaluate`` takes a document and writes it with ``json.dumps``; this gives the
    module the very text OPA gets, and reads the result with exact numbers.
    """
    try:
        text = policy.evaluate_raw(entrypoint_id, input_json, values_out=True)
        results = values.result_json(text, loads=_parse, number=_number)
    except PolicyError as exc:
        # NOTE: the Wasm library aborts with "var assignment conflict"/"object insert conflict".
        return Verdict("error", conflict=exc.message.endswith("conflict"), error=exc.message)
    except values.ValueSyntaxError as exc:
        return Verdict("error", error=f"the result is not a JSON value: {exc}")
    return _result_verdict(results)


class OpaRest:
    """``POST /v1/data/<path>`` on one keep-alive connection, the body's text sent as given."""

    def __init__(self, server: OpaServer) -> None:
        self._port = server.port
        self._conn: http.client.HTTPConnection | None = None

    def verdict(self, path: str, input_json: bytes | None) -> Verdict:
        """OPA's decision at ``data.<path>`` (``corpus/rbac/allow``) for ``input_json`` (None: no input).

        200 without ``result`` is undefined; any other status is an error, a
        conflict when OPA says ``eval_conflict_error``.
        """
        body = b"{}" if input_json is None else b'{"input":' + input_json + b"}"
        try:
            status, raw = self._post(path, body)
        except (http.client.HTTPException, OSError):
            self.close()  # NOTE: a keep-alive connection OPA closed; one fresh try
            status, raw = self._post(path, body)
        doc = _parse(raw) if raw else {}
        if status != 200:
            codes = {e.get("code") for e in doc.get("errors", [])}
            return Verdict("error", conflict="eval_conflict_error" in codes,
                           error=f"{status} {json.dumps(doc.get('errors') or doc, default=str)}")
        return _result_verdict([doc] if "result" in doc else [])

    def _post(self, path: str, body: bytes) -> tuple[int, bytes]:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(LOOPBACK, self._port, timeout=10)
        self._conn.request("POST", f"/v1/data/{path}", body=body, headers={"Content-Type": "application/json"})
        resp = self._conn.getresponse()
        return resp.status, resp.read()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


# --- refused builtins ---------------------------------------------------------------


def string_builtins() -> frozenset[str]:
    """The builtins OPA files under "strings" (``sprintf``, ``concat``, ``trim``...), from ``opa capabilities``."""
    done = run_opa("capabilities", "--current")
    if done.returncode != 0:
        raise RuntimeError(f"opa capabilities failed: {done.stderr}")
    caps: Mapping[str, Any] = json.loads(done.stdout)
    return frozenset(b["name"] for b in caps["builtins"] if "strings" in (b.get("categories") or ()))


def required_by_issue(name: str, strings: frozenset[str]) -> bool:
    """True for a builtin of the families the issue requires (time, sprintf, strings, regex, net.cidr_*, semver)."""
    return name.startswith(REQUIRED_PREFIXES) or name in strings
