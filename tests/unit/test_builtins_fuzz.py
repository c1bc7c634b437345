"""Seeded random expressions over the Go-semantics host builtins, decided by OPA and by the engine.

Layouts and values are drawn from Go's layout elements and near-miss texts, each
instant formatted and parsed back in zones with odd offsets, and durations,
quantities, versions and ``time.add_date`` operands up to int64's limits. A seed
is a fixed table: a failure names the expression, so it can join a table.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest

from tests.support.rego_diff import compare_expressions

pytestmark = pytest.mark.integration

LAYOUT = ["2006", "06", "01", "1", "Jan", "January", "02", "2", "_2", "__2", "002", "15", "03", "3", "04", "4",
          "05", "5", "PM", "pm", "MST", "Z07:00", "Z0700", "Z07", "-07:00", "-0700", "-07", ".000", ".999", ",9",
          ".0", " ", "-", "/", ":", "T", "Mon", "Monday", "x"]
VALUE = ["2020", "20", "12", "1", "3", "Feb", "February", "29", "31", " 5", "  7", "060", "366", "23", "11", "59",
         "60", "PM", "AM", "pm", "EST", "UTC", "GMT+2", "Z", "+01:00", "-0530", "+05", ".123", ",5", ".", ":", " ",
         "-", "/", "T", "Tue", "Tuesday", "x", "0", "9", "+1", "-1", "99"]
DURATION = ["1", "0", "1.5", ".5", "5.", "h", "m", "s", "ms", "us", "µs", "ns", "d", "w", "y", "-", "+", "00",
            "9223372036854775807", "x", "."]
QUANTITY = ["1", "0", "1.5", ".5", "-", "+", "e", "E", "3", "k", "K", "i", "I", "b", "B", "m", "M", "g", "t", "p",
            "P", "Ei", "1e2", '"', " "]
VERSION = ["0", "1", "01", "v", "-", "+", ".", "a", "A", "alpha", "rc", "9223372036854775807", "x-1", "00", "10"]
ZONES = ["", "UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Australia/Lord_Howe", "Pacific/Chatham",
         "America/St_Johns", "Pacific/Apia", "Asia/Tehran"]
INT64 = (-(1 << 63), (1 << 63) - 1)


def _table(seed: int) -> tuple[list[str], dict[str, Any]]:
    rnd = random.Random(seed)
    exprs: list[str] = []
    rows: list[Any] = []
    for i in range(120):
        layout = json.dumps("".join(rnd.sample(LAYOUT, rnd.randint(1, 5))))
        value = json.dumps("".join(rnd.choice(VALUE) for _ in range(rnd.randint(1, 6))))
        instant = f"[{rnd.randint(*INT64)}, {json.dumps(rnd.choice(ZONES))}, {layout}]"
        exprs += [f"time.parse_ns({layout}, {value})", f"time.format({instant})",
                  f"time.parse_ns({layout}, time.format({instant}))",
                  f"time.diff([{rnd.randint(*INT64)}, {json.dumps(rnd.choice(ZONES))}], {rnd.randint(*INT64)})"]
        duration = "".join(rnd.choice(DURATION) for _ in range(rnd.randint(1, 6)))
        quantity = json.dumps("".join(rnd.choice(QUANTITY) for _ in range(rnd.randint(1, 5))))
        exprs += [f"time.parse_duration_ns({json.dumps(duration)})", f"units.parse({quantity})",
                  f"units.parse_bytes({quantity})"]
        version = "".join(rnd.choice(VERSION) for _ in range(rnd.randint(1, 4)))
        version += rnd.choice(["1.2.3", "0.0.0", "1.0", "2.10.1-rc.1", "1.2.3-alpha.1+b"])
        other = rnd.choice(["1.2.3", "1.2.3-alpha", "1.2.3-alpha.1", "1.2.3-1", "2.0.0", version])
        exprs += [f"semver.compare({json.dumps(version[rnd.randint(0, 3):])}, {json.dumps(other)})",
                  f"semver.is_valid({json.dumps(version[rnd.randint(0, 3):])})"]
        amounts = [rnd.choice([rnd.randint(-3, 3), rnd.randint(-400, 400), rnd.randint(*INT64)]) for _ in range(3)]
        rows.append([[rnd.randint(-10**17, 10**18), rnd.choice(ZONES)], *amounts])
        exprs.append(f"time.add_date(input.rows[{i}][0], input.rows[{i}][1], input.rows[{i}][2], input.rows[{i}][3])")
    return exprs, {"rows": rows}


@pytest.mark.parametrize("seed", [1, 2])
def test_random_expressions_agree_with_opa(seed: int) -> None:
    exprs, input_doc = _table(seed)
    assert compare_expressions(exprs, input_doc=input_doc) == []
