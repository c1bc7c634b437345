"""The adversarial corpus: raw HTTP requests and what Statelock must answer, read from YAML.

Each file under ``corpus/`` is a list of cases::

    - name: percent-encoded-action-segment
      raw: |-
        POST /v2.1/servers/$SID/%61ction HTTP/1.1
        $STD
        Content-Length: $LEN

        {"suspend": null}
      expect: {status: [409]}

``raw`` is text: its lines are joined with CRLF, the head ends at the first empty
line, and the rest is the body, sent as UTF-8. ``bytes`` instead is sent exactly
(a YAML double-quoted string with its escapes, one byte per character). Macros:

========== ================================================================
``$SID``    the server locked by an admin (``$SIDU`` uppercase, ``$SIDN`` no dashes)
``$OSID``   the server locked by its owner; ``$FREE`` an unlocked one
``$PROJ``   the owner's project; ``$OWNER``/``$ADMIN`` noauth tokens
``$STD``    Host, the owner's X-Auth-Token, JSON Content-Type, Connection: close
``$AUTH``   Host, the owner's X-Auth-Token, Connection: close
``$LEN``    byte length of the body that follows this head (up to ``$EOB`` if given)
``$PAD(n)`` ``n`` letters a; ``$HDRS(n)`` ``n`` filler header lines;
``$NEST(n)`` ``n`` nested JSON arrays; ``$GZIP(text)`` gzip of text (``bytes`` only)
========== ================================================================

``expect`` holds ``status`` (the statuses allowed for every response), optional
``responses`` (how many to read, default 1), ``by`` (``statelock``, ``upstream`` or
``any``, default ``statelock`` unless the status is 2xx), ``fault`` (the Nova fault
name of a Statelock answer), ``shape: plain`` (aiohttp's parser answers in plain
text), ``head: true`` (responses carry no body) and ``executed`` (calls nova_wsgi must
have made: positive controls).
"""

from __future__ import annotations

import gzip
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

CORPUS_DIR = Path(__file__).parent / "corpus"
_FUNC_RE = re.compile(r"\$(PAD|HDRS|NEST)\(([^)]*)\)")
_GZIP_RE = re.compile(r"\$GZIP\(([^)]*)\)")


@dataclass(frozen=True)
class Expect:
    """What a case must get back."""

    status: tuple[int, ...]
    responses: int = 1
    by: str = "statelock"
    fault: str | None = None
    shape: str = "json"
    head: bool = False
    executed: tuple[str, ...] = ()


@dataclass(frozen=True)
class Case:
    """One corpus case: ``template`` is filled in by ``render`` for a running stack."""

    name: str
    file: str
    template: str
    exact: bool
    expect: Expect
    tags: tuple[str, ...] = field(default_factory=tuple)

    def render(self, values: Mapping[str, str]) -> bytes:
        """The bytes to send, with macros expanded."""
        text = self.template
        for key in sorted(values, key=len, reverse=True):
            text = text.replace("$" + key, values[key])
        text = _FUNC_RE.sub(lambda m: _expand(m.group(1), m.group(2), self.exact), text)
        text = _GZIP_RE.sub(lambda m: gzip.compress(m.group(1).encode("latin-1"), mtime=0).decode("latin-1"),
                            text)
        if self.exact:
            return _fill_lengths(text.encode("latin-1"))
        head, _, body = text.partition("\n\n")
        data = head.replace("\n", "\r\n").encode("utf-8") + b"\r\n\r\n" + body.encode("utf-8")
        return _fill_lengths(data)


def _expand(func: str, arg: str, exact: bool) -> str:
    nl = "\r\n" if exact else "\n"
    if func == "PAD":
        return "a" * int(arg)
    if func == "HDRS":
        return nl.join(f"X-Pad-{i}: {'v' * 8}" for i in range(int(arg)))
    return "[" * int(arg) + "]" * int(arg)


def _fill_lengths(data: bytes) -> bytes:
    """Replace each ``$LEN`` with the length of the body after its head (to ``$EOB`` or the end)."""
    while (at := data.find(b"$LEN")) >= 0:
        head_end = data.find(b"\r\n\r\n", at)
        start = head_end + 4 if head_end >= 0 else len(data)
        end = data.find(b"$EOB", start)
        length = (end if end >= 0 else len(data)) - start
        data = data[:at] + str(length).encode() + data[at + 4:]
    return data.replace(b"$EOB", b"")


def _expect(raw: Mapping[str, Any]) -> Expect:
    status = raw["status"]
    statuses = tuple(status) if isinstance(status, list) else (int(status),)
    default_by = "upstream" if all(200 <= s < 300 for s in statuses) else "statelock"
    return Expect(
        status=statuses,
        responses=int(raw.get("responses", 1)),
        by=str(raw.get("by", default_by)),
        fault=raw.get("fault"),
        shape=str(raw.get("shape", "json")),
        head=bool(raw.get("head", False)),
        executed=tuple(raw.get("executed", ())),
    )


def load_corpus(directory: Path = CORPUS_DIR) -> list[Case]:
    """Every case of every ``*.yaml`` file, in file order; names are unique."""
    cases: list[Case] = []
    for path in sorted(directory.glob("*.yaml")):
        for entry in yaml.safe_load(path.read_text(encoding="utf-8")):
            exact = "bytes" in entry
            cases.append(Case(
                name=str(entry["name"]), file=path.stem,
                template=str(entry["bytes"] if exact else entry["raw"]).rstrip("\n") if not exact
                else str(entry["bytes"]),
                exact=exact, expect=_expect(entry["expect"]), tags=tuple(entry.get("tags", ())),
            ))
    names = [c.name for c in cases]
    duplicates = {n for n in names if names.count(n) > 1}
    if duplicates:
        raise ValueError(f"duplicate corpus case names: {sorted(duplicates)}")
    return cases
