"""The ``net.cidr_*`` host builtins against the real OPA: every expression must decide alike.

Each table is evaluated in one module by ``opa eval`` and by the embedded engine
(``tests.support.rego_diff``); OPA is the oracle, no expected value is written here.
Operands the type checker would refuse come through ``input``. A set-valued result
is compared through ``sort`` (OPA's Wasm writes a set's members in hash order, OPA
sorted) and its type through ``is_set``.
"""

from __future__ import annotations

import json
import random

import pytest

from sidecar.policy.wasm.builtins.net import EXPAND_LIMIT
from tests.support.rego_diff import compare_expressions, opa_outcome, wasm_outcome

pytestmark = pytest.mark.integration


def _set_valued(exprs: list[str]) -> list[str]:
    """Each expression as a sorted array, and once whether it is a set at all."""
    return [f"sort({e})" for e in exprs] + [f"is_set({e})" for e in exprs[:3]]

_TEXTS = [
    # IPv4: valid, leading zeros, out of range, short, long, stray characters
    "10.0.0.0/8", "10.1.2.3/8", "192.168.1.1/32", "0.0.0.0/0", "255.255.255.255/32", "1.2.3.4/33",
    "1.2.3.4/-1", "1.2.3.4/", "1.2.3.4", "01.2.3.4/8", "1.2.3.04/32", "0.0.0.0/00", "10.0.0.0/08",
    "256.1.1.1/8", "1.2.3/24", "1.2.3.4.5/24", "1..2.3/24", ".1.2.3/8", "1.2.3.4 /8", " 1.2.3.4/8",
    "1.2.3.4/8/9", "1.2.3.4/+8", "1.2.3.4/0x8", "1.2.3.4/99999999999", "", "/", "abc",
    # IPv6: compressed, mapped, embedded IPv4, zones, bad groups
    "::/0", "::/128", "::1/128", "2001:db8::/32", "2001:DB8::/32", "2001:db8::1/129", "fe80::1%eth0/64",
    "::ffff:1.2.3.4/120", "::ffff:1.2.3.4/96", "::ffff:1.2.3.4/95", "::ffff:0:0/96", "::1.2.3.4/128",
    "1:2:3:4:5:6:7:8/64", "1:2:3:4:5:6:7:8:9/64", "1:2:3:4:5:6:7::/64", "1::2::3/64", "12345::/16",
    "::ffff:01.2.3.4/128", "2001:db8:0:0:1:0:0:1/128", "2001:0db8::/32", ":1::/16", "1:/16", "1::/016",
    "1:2:3:4:5:6:1.2.3.4/128", "1:2:3:4:5:1.2.3.4/128", "::1.2.3/128", "ff02::1%/64", "::%1/64",
    "1.2.3.4%eth0/8",
]




def _random_addresses(seed: int, count: int) -> list[str]:
    """Near-miss address and CIDR texts: valid ones with a character changed, added or dropped."""
    rng = random.Random(seed)
    bases = ["10.20.30.40", "0.0.0.0", "255.255.255.255", "2001:db8::1", "::", "::ffff:1.2.3.4", "fe80::1:2",
             "1:2:3:4:5:6:7:8", "::1.2.3.4", "1::", "a:b::c:d"]
    alphabet = "0123456789abcdefABCDEFgx:./%"
    out = []
    for _ in range(count):
        text = rng.choice(bases)
        for _ in range(rng.randint(0, 2)):
            at = rng.randrange(len(text) + 1)
            action = rng.random()
            if action < 0.4:
                text = text[:at] + rng.choice(alphabet) + text[at:]
            elif action < 0.7:
                text = text[:at] + text[at + 1:]
            else:
                text = text[:at] + rng.choice(alphabet) + text[at + 1:]
        if rng.random() < 0.6:
            text += "/" + str(rng.choice([0, 7, 24, 32, 33, 64, 96, 120, 128, 129]))
        out.append(text)
    return out


_FUZZ = _random_addresses(seed=7, count=150)
# NOTE: near-miss texts get their own module: with all of them, the module's data outgrows the two
# memory pages WasmPolicy gives it (the import's minimum) and instantiation traps.
IS_VALID_FUZZ = [f"net.cidr_is_valid({json.dumps(t)})" for t in _FUZZ]
IS_VALID = [f"net.cidr_is_valid({json.dumps(t)})" for t in _TEXTS] + [
    "net.cidr_is_valid(input.number)", "net.cidr_is_valid(input.null)", "net.cidr_is_valid(input.list)",
    # NOTE: a number too big for a float is kept as text by the value layer; it is still no string.
    'net.cidr_is_valid([1e400, "a"][input.zero])',
]

_IPS = ["10.1.2.3", "11.0.0.1", "::ffff:10.1.2.3", "2001:db8::1", "2001:db9::1", "::1", "0.0.0.0",
        "10.1.2.3/32", "10.0.0.0/7", "10.0.0.0/8", "10.128.0.0/9", "2001:db8::/48", "2001:db8::/31",
        "::/80", "::ffff:0:0/96", "::ffff:10.0.0.0/104", "::ffff:10.0.0.0/100", "10.01.2.3", "nonsense",
        "fe80::1%eth0", "255.255.255.255", "::ffff:255.255.255.255", "::ffff:0.0.0.0/96"]
_NETS = ["10.0.0.0/8", "0.0.0.0/0", "2001:db8::/32", "::/0", "::/80", "::ffff:0:0/96", "::ffff:10.0.0.0/104",
         "::ffff:0:0/80", "255.255.255.255/32", "::/1"]

CONTAINS_MATCHES = _set_valued([
    f"net.cidr_contains_matches({json.dumps(['0.0.0.0/0', '::/0', '::ffff:0:0/96'])}, {json.dumps(t)})"
    for t in _FUZZ if "/" not in t
] + [
    f"net.cidr_contains_matches({json.dumps(n)}, {json.dumps(ip)})" for n in _NETS for ip in _IPS[:10]
] + [
    f"net.cidr_contains_matches({json.dumps(_NETS)}, {json.dumps(_IPS)})",
    f"net.cidr_contains_matches({json.dumps(_NETS)}, {{{', '.join(json.dumps(i) for i in _IPS)}}})",
    'net.cidr_contains_matches({"a": "10.0.0.0/8", "b": ["2001:db8::/32", "x"]}, {"h1": "10.1.2.3", '
    '"h2": ["2001:db8::5", 7], "h3": "::ffff:10.9.9.9"})',
    'net.cidr_contains_matches({["10.0.0.0/8", "tag"], "192.168.0.0/16"}, ["192.168.1.1", ["10.2.2.2", {}]])',
    'net.cidr_contains_matches([], ["bad"])',
    'net.cidr_contains_matches(["10.0.0.0/8"], [])',
    'net.cidr_contains_matches("10.0.0.0/8", "10.0.0.0/8")',
    'net.cidr_contains_matches("10.0.0.0", "10.0.0.1")',
    'net.cidr_contains_matches("10.0.0.0/8", "bad")',
    'net.cidr_contains_matches(["10.0.0.0/8", "bad"], "10.1.1.1")',
    'net.cidr_contains_matches(["10.0.0.0/8"], ["10.1.1.1", "bad"])',
    "net.cidr_contains_matches(input.nets, input.ips)",
    "net.cidr_contains_matches(input.number, input.ips)",
    "net.cidr_contains_matches(input.nets, input.number)",
    "net.cidr_contains_matches(input.bad_elements, input.ips)",
    "net.cidr_contains_matches(input.empty_arrays, input.ips)",
    "net.cidr_contains_matches(input.nets, input.bad_elements)",
    "net.cidr_contains_matches(input.keyed, input.ips)",
    'net.cidr_contains_matches([1e400, "a"][input.zero], "1.2.3.4")',
    'net.cidr_contains_matches(["10.0.0.0/8"], [[1e400, "a"][input.zero]])',
])

_EXPANDS = ["192.168.1.0/30", "192.168.1.1/30", "10.0.0.0/24", "10.0.0.0/32", "255.255.255.0/24",
            "255.255.255.254/31", "0.0.0.0/30", "2001:db8::/126", "2001:db8::/120", "::/126", "::/128",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fff0/124", "::ffff:1.2.3.0/124", "::ffff:1.2.3.4/128",
            "::fffe:ffff:fffc/126", "fe80::/125", "1.2.3.4/33", "01.2.3.4/30", "x",
            "::ffff:255.255.255.252/126"]
EXPAND = [
    *_set_valued([f"net.cidr_expand({json.dumps(c)})" for c in _EXPANDS]
                 + ["net.cidr_expand(input.number)", 'net.cidr_expand("10.0.0.0/22")']),
    # NOTE: counted, not sorted: the Wasm library's sort takes minutes over 65536 members.
    'count(net.cidr_expand("10.0.0.0/16"))', 'net.cidr_expand("10.0.0.0/16")["10.0.255.255"]',
]

_MERGES: list[list[str]] = [
    [], ["10.0.0.0/8"], ["10.0.0.0/24", "10.0.1.0/24"], ["10.0.0.0/24", "10.0.2.0/24"],
    ["10.0.0.0/24", "10.0.0.0/24"], ["10.0.0.0/8", "10.1.0.0/16"], ["10.1.0.0/16", "10.0.0.0/8"],
    ["192.168.1.0/25", "192.168.1.128/25", "192.168.2.0/24", "192.168.3.0/24"],
    ["1.2.3.0/25", "1.2.3.128/25", "1.2.4.0/24"], ["10.0.0.1/32", "10.0.0.2/32", "10.0.0.3/32"],
    ["10.0.0.0/32", "10.0.0.1/32", "10.0.0.2/31", "10.0.0.4/30", "10.0.0.8/29"],
    ["10.0.0.5/32", "10.0.0.6/31", "10.0.0.8/30"], ["10.1.2.3"], ["10.1.2.3", "10.1.2.3"],
    ["10.1.2.3", "10.0.0.0/8"], ["172.16.5.4", "192.168.7.7"], ["172.16.5.4", "172.17.0.0/16"],
    ["192.168.7.7", "192.168.7.0/24"], ["224.0.0.1", "224.0.1.0/24"], ["::ffff:10.1.2.3"],
    ["0.0.0.0/0", "10.0.0.0/8"], ["0.0.0.0/1", "128.0.0.0/1"], ["255.255.255.255/32", "255.255.255.254/32"],
    ["0.0.0.0/32", "0.0.0.1/32"], ["10.0.0.0/8", "2001:db8::/32"], ["2001:db8::/33", "2001:db8:8000::/33"],
    ["2001:db8::/48", "2001:db8:1::/48", "2001:db8:2::/47"], ["::1/128", "::/128"], ["::2/127", "::4/126"],
    ["::/0", "2001:db8::/32"], ["0.0.0.0/0", "::/0"], ["::ffff:1.2.3.0/120"],
    ["::ffff:1.2.3.0/120", "1.2.3.0/24"], ["2001:db8::1"],
    ["10.0.0.0/8", "x"], ["1.2.3.4/33"], ["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128",
                                            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"],
    ["10.0.0.0/24", "10.0.1.0/24", "10.0.3.0/24", "10.0.2.0/25", "10.0.2.128/25"],
    ["1.0.0.0/24", "1.0.1.0/24", "1.0.2.0/24"], ["fe80::/65", "fe80:0:0:0:8000::/65", "fe80:0:0:1::/64"],
    ["::/127", "::2/128"], ["0.0.0.1/32", "0.0.0.2/31", "0.0.0.4/30"],
]


def _random_merges(seed: int, count: int) -> list[list[str]]:
    """Lists of IPv4 networks, bare addresses and IPv6 networks close enough to merge often."""
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        items = []
        for _ in range(rng.randint(2, 7)):
            kind = rng.random()
            if kind < 0.55:
                prefix = rng.randint(22, 32)
                items.append(f"10.0.{rng.randint(0, 7)}.{rng.randint(0, 255)}/{prefix}")
            elif kind < 0.7:
                items.append(f"{rng.choice([10, 150, 200])}.0.{rng.randint(0, 3)}.{rng.randint(0, 255)}")
            else:
                items.append(f"2001:db8::{rng.randint(0, 64):x}/{rng.randint(120, 128)}")
        out.append(items)
    return out


_MERGES += _random_merges(seed=1, count=60)
MERGE = _set_valued([f"net.cidr_merge({json.dumps(m)})" for m in _MERGES] + [
    f"net.cidr_merge({{{', '.join(json.dumps(c) for c in m)}}})" for m in _MERGES if m
] + [
    "net.cidr_merge(input.number)", "net.cidr_merge(input.with_number)", "net.cidr_merge(input.object)",
    'net.cidr_merge([[1e400, "10.0.0.0/8"][input.zero]])',
])

INPUT = {
    "number": 7, "null": None, "zero": 0, "list": ["10.0.0.0/8"],
    "nets": ["10.0.0.0/8", ["2001:db8::/32", "label"]], "ips": ["10.1.1.1", "2001:db8::1"],
    "bad_elements": [1, "10.0.0.0/8"], "empty_arrays": [[], "10.0.0.0/8"],
    "keyed": {"x": "10.0.0.0/8", "y": ["::/0"]}, "with_number": ["10.0.0.0/8", 1],
    "object": {"a": "10.0.0.0/8"},
}


@pytest.mark.parametrize("name, exprs", [
    ("net.cidr_is_valid", IS_VALID),
    ("net.cidr_is_valid near misses", IS_VALID_FUZZ),
    ("net.cidr_contains_matches", CONTAINS_MATCHES),
    ("net.cidr_expand", EXPAND),
    ("net.cidr_merge", MERGE),
])
def test_net_builtins_agree_with_opa(name: str, exprs: list[str]) -> None:
    assert compare_expressions(exprs, input_doc=INPUT) == []


@pytest.mark.parametrize("addrs", [
    ["::ffff:1.2.3.0/120", "::ffff:1.2.4.0/120"],
    ["::ffff:1.2.3.0/120", "::ffff:1.2.3.0/120"],
    ["::ffff:0:0/96", "0.0.0.0/1"],
    ["::ffff:0:0/95", "10.0.0.0/8"],
    ["1::/64", "1:0:0:1::/64"],
])
def test_cidr_merge_fails_where_opa_panics(addrs: list[str]) -> None:
    module = {"t.rego": f"package t\nx := net.cidr_merge({json.dumps(addrs)})\n"}
    assert opa_outcome(module, "t").kind == "error"
    assert wasm_outcome(module, "t").kind == "error"


def test_cidr_expand_past_the_limit_is_an_evaluation_error() -> None:
    module = {"t.rego": 'package t\nx := count(net.cidr_expand("10.0.0.0/15"))\n'}
    outcome = wasm_outcome(module, "t")
    assert outcome.kind == "error" and f"expands at most {EXPAND_LIMIT}" in outcome.error
