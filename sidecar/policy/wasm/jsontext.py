"""JSON text into and out of OPA's Wasm library, made to mean what it means to OPA.

Found by the differential corpus (``tests/integration/test_engine_differential.py``):

- the library's JSON reader decodes an escaped UTF-16 surrogate pair wrongly
  (``"\\ud840\\udc00"`` becomes U+10000, not U+20000) and refuses a lone escaped
  surrogate, which Go's decoder reads as U+FFFD: ``input_text`` writes those
  escapes as UTF-8 before the module reads them;
- the library writes a string's bytes as they are, so a string that is not UTF-8
  (``base64.decode`` can make one) is not JSON: ``utf8_text`` reads each invalid
  byte as U+FFFD, as Go's encoder writes it.
"""

from __future__ import annotations

import codecs
import re

__all__ = ["input_text", "utf8_text"]

# NOTE: the last alternative consumes every other escape (``\\\\`` included), so a
# backslash that is itself escaped never starts a match.
_ESCAPE = re.compile(rb"\\u(d[89ab][0-9a-f]{2})\\u(d[c-f][0-9a-f]{2})|\\u(d[89a-f][0-9a-f]{2})|\\.", re.IGNORECASE)
_REPLACEMENT = "\ufffd".encode()


def _utf8(match: re.Match[bytes]) -> bytes:
    high, low, lone = match.groups()
    if high is not None:
        return chr(0x10000 + ((int(high, 16) - 0xD800) << 10) + (int(low, 16) - 0xDC00)).encode()
    if lone is not None:
        return _REPLACEMENT
    return match.group(0)


def input_text(raw: bytes) -> bytes:
    """``raw`` JSON with each escaped UTF-16 surrogate written as UTF-8 (a lone one as U+FFFD, as Go reads it).

    The same document to OPA; ``raw`` itself when it holds no such escape.
    """
    if b"\\ud" not in raw and b"\\uD" not in raw:
        return raw
    return _ESCAPE.sub(_utf8, raw)


def _one_byte_at_a_time(error: UnicodeError) -> tuple[str, int]:
    if not isinstance(error, UnicodeDecodeError):
        raise error
    return "\ufffd", error.start + 1


# NOTE: Go's encoder replaces each invalid byte, Python's "replace" a whole invalid sequence.
codecs.register_error("statelock-go-utf8", _one_byte_at_a_time)


def utf8_text(raw: bytes) -> str:
    """``raw`` as text, each byte that is not part of valid UTF-8 read as U+FFFD (what Go's JSON encoder writes)."""
    return raw.decode("utf-8", "statelock-go-utf8")
