"""Hypothesis strategies: valid Nova requests on a locked server, then mutated.

A request starts as one of ``BASES`` (every state-changing server route and action
of nova-api.md sections 2 and 3, plus reads) aimed at the locked server, and is
then bent: the path (percent-encoding, doubled or dotted segments, case, prefixes,
project ids, id spellings, matrix and format suffixes), the query (``_method`` in
its spellings), the method, the microversion and Content-Type headers, extra
headers (Connection options, method overrides, ``_`` names, repeats) and the body
(duplicate keys, escapes, look-alikes, encodings, nesting, garbage). Each draw is
a small index so that generation stays cheap: the fuzzer runs 100,000 of them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import quote

from hypothesis import strategies as st

PROJECT = "0123456789abcdef0123456789abcdef"
OWNER = f"alice:{PROJECT}"


@dataclass(frozen=True)
class RawRequest:
    """One request as written on the wire (before any server parses it)."""

    method: str
    target: str
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def to_bytes(self) -> bytes:
        """HTTP/1.1 bytes with ``Connection: close`` and an exact Content-Length."""
        lines = [f"{self.method} {self.target} HTTP/1.1", "Host: statelock"]
        lines += [f"{k}: {v}" for k, v in self.headers]
        lines += ["Connection: close", f"Content-Length: {len(self.body)}"]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + self.body


@dataclass(frozen=True)
class Base:
    method: str
    route: str  # below /servers/{id}; "" is the server itself
    body: Any = None
    microversion: str | None = None


_ACTION_ARGS: dict[str, Any] = {
    "reboot": {"type": "HARD"}, "os-start": None, "os-stop": None, "resize": {"flavorRef": "2"},
    "confirmResize": None, "revertResize": None, "rebuild": {"imageRef": "img"},
    "createImage": {"name": "s"}, "trigger_crash_dump": None, "pause": None, "unpause": None,
    "suspend": None, "resume": None, "shelve": None, "shelveOffload": None, "unshelve": None,
    "rescue": None, "unrescue": None, "changePassword": {"adminPass": "x"},
    "createBackup": {"name": "b", "backup_type": "daily", "rotation": 1}, "forceDelete": None,
    "restore": None, "migrate": None, "os-migrateLive": {"host": None, "block_migration": "auto"},
    "evacuate": {}, "os-resetState": {"state": "active"}, "injectNetworkInfo": None,
    "resetNetwork": None, "addSecurityGroup": {"name": "g"}, "removeSecurityGroup": {"name": "g"},
    "addFloatingIp": {"address": "1.2.3.4"}, "removeFloatingIp": {"address": "1.2.3.4"},
    "addFixedIp": {"networkId": "n"}, "removeFixedIp": {"address": "1.2.3.4"},
    "os-getConsoleOutput": {"length": 5}, "os-getVNCConsole": {"type": "novnc"},
}
ACTION_KEYS = tuple(_ACTION_ARGS)
# Keys that are not actions, or are near one.
KEY_NOISE = ("Suspend", "SUSPEND", "\u0455uspend", "os-st\u043ep", "suspend ", "hibernate", "lock", "unlock",
             "os-getSerialConsole", "force_complete")

BASES: tuple[Base, ...] = (
    *(Base("POST", "/action", {key: arg}) for key, arg in _ACTION_ARGS.items()),
    Base("DELETE", ""),
    Base("PUT", "", {"server": {"name": "n"}}),
    Base("GET", ""),
    Base("POST", "/metadata", {"metadata": {"a": "b"}}),
    Base("PUT", "/metadata", {"metadata": {"a": "b"}}),
    Base("PUT", "/metadata/a", {"meta": {"a": "b"}}),
    Base("DELETE", "/metadata/a"),
    Base("PUT", "/tags", {"tags": ["t"]}, "2.26"),
    Base("DELETE", "/tags", None, "2.26"),
    Base("PUT", "/tags/t", None, "2.26"),
    Base("DELETE", "/tags/t", None, "2.26"),
    Base("POST", "/os-volume_attachments", {"volumeAttachment": {"volumeId": "v"}}),
    Base("PUT", "/os-volume_attachments/v", {"volumeAttachment": {"volumeId": "w"}}),
    Base("DELETE", "/os-volume_attachments/v"),
    Base("POST", "/os-interface", {"interfaceAttachment": {}}),
    Base("DELETE", "/os-interface/p"),
    Base("DELETE", "/migrations/1", None, "2.24"),
    Base("POST", "/migrations/1/action", {"force_complete": None}, "2.22"),
    Base("DELETE", "/os-server-password"),
    Base("POST", "/shares", {"share": {"share_id": "s"}}, "2.97"),
    Base("DELETE", "/shares/s", None, "2.97"),
    Base("POST", "/remote-consoles", {"remote_console": {"protocol": "vnc", "type": "novnc"}}, "2.6"),
    Base("GET", "/metadata"),
    Base("GET", "/os-instance-actions"),
)

PREFIXES = ("/v2.1",) * 12 + ("/v2", "/compute/v2.1", f"/v2.1/{PROJECT}", f"/v2/{PROJECT}",
            "", "/V2.1", f"/v2.1/{PROJECT.upper()}", "/v2.1/-", "//v2.1", "/v2.1/", "/compute//v2")
COLLECTIONS = ("servers",) * 12 + ("os-volumes_boot", "Servers", "%73ervers", "servers;x")
ID_FORMS = ("plain",) * 12 + ("free", "free", "upper", "nodash", "urn", "braces", "free", "random", "detail",
            "trailing_dot_json", "encoded_first")
QUERIES = ("",) * 24 + ("x=1", "_method=DELETE", "_method=delete", "%5Fmethod=DELETE",
           "_%6Dethod=DELETE", "a=1;_method=DELETE", "_method=POST", "_method=PUT", "_method=GET",
           "name=a_method", "%255Fmethod=DELETE", "_method", "+_method=DELETE", "x=1#_method=DELETE")
METHODS = ("keep",) * 24 + ("GET", "HEAD", "OPTIONS", "DELETE", "PUT", "POST", "PATCH", "lower", "PURGE")
MICROVERSIONS: tuple[tuple[tuple[str, str], ...], ...] = (
    *((),) * 12, (("OpenStack-API-Version", "compute 2.73"),), (("OpenStack-API-Version", "compute latest"),),
    (("X-OpenStack-Nova-API-Version", "2.90"),),
    (("OpenStack-API-Version", "compute 2.1"), ("OpenStack-API-Version", "compute 2.97")),
    (("OpenStack-API-Version", "compute 2.97, compute 2.1"),),
    (("OpenStack-API-Version", "volume 3.0"), ("X-OpenStack-Nova-API-Version", "2.26")),
    (("OpenStack_API_Version", "compute 2.97"),),
    (("OpenStack-API-Version", "compute 2.07"),), (("OpenStack-API-Version", "compute 2.999"),),
    (("OpenStack-API-Version", "compute 2.26"), ("Connection", "OpenStack-API-Version")),
)
CONTENT_TYPES = ("application/json",) * 12 + (None, "text/plain", "",
                 "application/json; charset=utf-8", "application/vnd.openstack.compute+json",
                 "application/json;version=2.1/x", "APPLICATION/JSON", "application/xml",
                 "application/x-www-form-urlencoded", "application/json ")
EXTRA_HEADERS: tuple[tuple[tuple[str, str], ...], ...] = (
    *((),) * 24, (("X-HTTP-Method-Override", "DELETE"),), (("X-Method-Override", "GET"),),
    (("X_HTTP_Method_Override", "DELETE"),), (("Connection", "X-Auth-Token"),),
    (("Accept", "application/json;version=2.1/x"),), (("X-Auth-Token", OWNER),),
    (("Content_Type", "application/xml"),), (("Connection", "keep-alive"),),
    (("Content-Type", "application/json"),),
)
BODY_OPS = ("keep",) * 24 + (
    "dup_same", "dup_other_first", "dup_other_last", "two_keys", "escape_key", "escape_all",
    "lookalike", "key_case", "bom", "utf16", "latin1", "garbage", "second_doc", "nest_value",
    "empty", "null", "array", "whitespace", "nan", "replace_key", "no_body",
)


def _server_id(form: str, locked: str, free: str, index: int) -> str:
    return {
        "plain": locked, "upper": locked.upper(), "nodash": locked.replace("-", ""),
        "urn": f"urn:uuid:{locked}", "braces": "{" + locked + "}", "free": free,
        "random": f"{index:08x}-0000-4000-8000-000000000000", "detail": "detail",
        "trailing_dot_json": locked + ".json", "encoded_first": "%" + f"{ord(locked[0]):02X}" + locked[1:],
    }[form]


def _mutate_path(path: str, ops: list[tuple[int, int]]) -> str:
    for op, pos in ops:
        if not path:
            break
        i = pos % len(path)
        ch = path[i]
        if op == 0 and ch not in "%":
            path = path[:i] + f"%{ord(ch):02X}" + path[i + 1:]
        elif op == 1 and ch == "/":
            path = path[:i] + "//" + path[i + 1:]
        elif op == 2 and ch == "/":
            path = path[:i] + "/%2F" + path[i + 1:]
        elif op == 3:
            path = path + "/"
        elif op == 4 and ch == "/":
            path = path[:i] + "/./" + path[i + 1:]
        elif op == 5 and ch == "/":
            path = path[:i] + "/x/../" + path[i + 1:]
        elif op == 6:
            path = path[:i] + ch.swapcase() + path[i + 1:]
        elif op == 7 and ch not in "%":
            path = path[:i] + f"%25{ord(ch):02X}" + path[i + 1:]
        elif op == 8:
            path = path + ";p=1"
        elif op == 9 and ch == "/":
            path = path[:i] + "%2f" + path[i + 1:]
    return path


def _escape(text: str, every: bool, salt: int) -> str:
    out = []
    for n, ch in enumerate(text):
        out.append(f"\\u{ord(ch):04x}" if every or (n + salt) % 3 == 0 else ch)
    return "".join(out)


def _body(doc: Any, op: str, salt: int, keys: tuple[str, ...]) -> bytes:
    if doc is None and op in ("keep", "no_body"):
        return b""
    if not isinstance(doc, dict):
        doc = {"server": doc}
    key, value = next(iter(doc.items()))
    other = keys[salt % len(keys)]
    text = json.dumps(doc)
    vtext = json.dumps(value)
    match op:
        case "dup_same":
            text = f'{{"{key}": {vtext}, "{key}": {vtext}}}'
        case "dup_other_first":
            text = f'{{"{other}": null, "{key}": {vtext}, "{other}": null}}'
        case "dup_other_last":
            text = f'{{"{key}": {vtext}, "{key}": null, "{other}": {{}}}}'
        case "two_keys":
            text = f'{{"{other}": null, "{key}": {vtext}}}'
        case "escape_key":
            text = f'{{"{_escape(key, False, salt)}": {vtext}}}'
        case "escape_all":
            text = f'{{"{_escape(key, True, salt)}": {vtext}}}'
        case "lookalike":
            text = json.dumps({key.replace("s", "\u0455").replace("o", "\u043e"): value}, ensure_ascii=salt % 2 == 0)
        case "key_case":
            text = json.dumps({key.capitalize() if salt % 2 else key.upper(): value})
        case "bom":
            return b"\xef\xbb\xbf" + text.encode()
        case "utf16":
            return text.encode("utf-16")
        case "latin1":
            return json.dumps({key: {"name": "café"}}, ensure_ascii=False).encode("latin-1", "replace")
        case "garbage":
            text += "x"
        case "second_doc":
            text += json.dumps({other: None})
        case "nest_value":
            text = json.dumps({key: {key: value}})
        case "empty":
            text = "{}"
        case "null":
            text = "null"
        case "array":
            text = json.dumps([key])
        case "whitespace":
            text = "\r\n \t" + text.replace(":", " :\n") + " \n"
        case "nan":
            text = f'{{"{key}": NaN}}'
        case "replace_key":
            text = json.dumps({other: value})
        case "no_body":
            return b""
    return text.encode("utf-8")


@dataclass(frozen=True)
class _Draw:
    """The choices one example is made of (small indexes, so generation stays cheap)."""

    base: Base
    key_swap: int
    key: str
    id_form: str
    id_salt: int
    prefix: str
    collection: str
    path_ops: tuple[tuple[int, int], ...]
    query: str
    method_op: str
    microversion: tuple[tuple[str, str], ...]
    content_type: str | None
    extra: tuple[tuple[str, str], ...]
    body_op: str
    salt: int


def _assemble(d: _Draw, locked: str, free: str, keys: tuple[str, ...]) -> RawRequest:
    base = d.base
    body_doc = {d.key: None} if base.route == "/action" and d.key_swap == 0 else base.body
    sid = _server_id(d.id_form, locked, free, d.id_salt)
    path = _mutate_path(f"{d.prefix}/{d.collection}/{sid}{base.route}", list(d.path_ops))
    target = path + ("?" + d.query if d.query else "")
    method = {"keep": base.method, "lower": base.method.lower()}.get(d.method_op, d.method_op)
    headers: list[tuple[str, str]] = [("X-Auth-Token", OWNER)]
    if base.microversion:
        headers.append(("OpenStack-API-Version", f"compute {base.microversion}"))
    if d.microversion:
        headers = [h for h in headers if h[0] != "OpenStack-API-Version"] + list(d.microversion)
    if d.content_type is not None:
        headers.append(("Content-Type", d.content_type))
    headers.extend(d.extra)
    body = _body(body_doc, d.body_op, d.salt, keys)
    return RawRequest(method, quote(target, safe="/:@!$&'()*+,;=-._~%?#[]"), tuple(headers), body)


def _draws(locked: str, free: str, keys: tuple[str, ...], noise: tuple[str, ...]) -> st.SearchStrategy[_Draw]:
    bases = [b for b in BASES if b.route != "/action" or next(iter(b.body)) in keys]
    return st.builds(
        _Draw,
        base=st.sampled_from(bases),
        key_swap=st.integers(0, 9),
        key=st.sampled_from(keys + noise),
        id_form=st.sampled_from(ID_FORMS),
        id_salt=st.integers(0, 2**32 - 1),
        prefix=st.sampled_from(PREFIXES),
        collection=st.sampled_from(COLLECTIONS),
        path_ops=st.lists(st.tuples(st.integers(0, 30), st.integers(0, 200)), max_size=2).map(tuple),
        query=st.sampled_from(QUERIES),
        method_op=st.sampled_from(METHODS),
        microversion=st.sampled_from(MICROVERSIONS),
        content_type=st.sampled_from(CONTENT_TYPES),
        extra=st.sampled_from(EXTRA_HEADERS),
        body_op=st.sampled_from(BODY_OPS),
        salt=st.integers(0, 1000),
    )


def raw_requests(locked: str, free: str, keys: tuple[str, ...] = ACTION_KEYS,
                 noise: tuple[str, ...] = KEY_NOISE) -> st.SearchStrategy[RawRequest]:
    """Mutated Nova requests aimed (mostly) at ``locked``; action keys from ``keys`` and ``noise``."""
    return _draws(locked, free, keys, noise).map(lambda d: _assemble(d, locked, free, keys))


# Axes along which ``request_batches`` enumerates every value around one drawn request.
AXES: dict[str, tuple[Any, ...]] = {
    "query": tuple(dict.fromkeys(QUERIES)), "method_op": tuple(dict.fromkeys(METHODS)),
    "microversion": tuple(dict.fromkeys(MICROVERSIONS)), "content_type": tuple(dict.fromkeys(CONTENT_TYPES)),
    "extra": tuple(dict.fromkeys(EXTRA_HEADERS)), "body_op": tuple(dict.fromkeys(BODY_OPS)),
    "prefix": tuple(dict.fromkeys(PREFIXES)), "collection": tuple(dict.fromkeys(COLLECTIONS)),
    "id_form": tuple(dict.fromkeys(ID_FORMS)), "base": BASES,
}


def request_batches(locked: str, free: str, keys: tuple[str, ...] = ACTION_KEYS,
                    noise: tuple[str, ...] = KEY_NOISE) -> st.SearchStrategy[list[RawRequest]]:
    """A drawn request and its neighbours: every value of one drawn axis, the rest fixed.

    Hypothesis picks the point and the axis; the batch walks the axis. It keeps the
    search guided while making ~15 requests per draw, so 100,000 requests fit in CI.
    """
    bases = tuple(b for b in BASES if b.route != "/action" or next(iter(b.body)) in keys)
    axes = {**AXES, "base": bases}

    def expand(pair: tuple[_Draw, str]) -> list[RawRequest]:
        d, axis = pair
        return [_assemble(replace(d, **{axis: value}), locked, free, keys) for value in axes[axis]]

    return st.tuples(_draws(locked, free, keys, noise), st.sampled_from(sorted(axes))).map(expand)
