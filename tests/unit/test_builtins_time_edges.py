"""Edge cases of the ``time.*`` host builtins against the real OPA: zone abbreviations and
offsets in parsing, Go's overflow checks in durations, far-range instants, and
``time.add_date`` carrying int64 wrap-around exactly as Go's ``time.Date`` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sidecar.policy.wasm.builtins import BuiltinError, EvalContext, load_all
from sidecar.policy.wasm.builtins.gozone import local_zone
from sidecar.policy.wasm.values import BigNumber
from tests.support.rego_diff import compare_expressions, opa_outcome

pytestmark = pytest.mark.integration

# Instants (ns, zone) and (years, months, days) for time.add_date, whose first operand is typed number.
INPUT: dict[str, Any] = {
    "y": [
        [1710000000000000000, "America/New_York"],
        [1710054000000000000, "America/New_York"],
        [1709967600000000000, "America/New_York"],
        [1730610000000000000, "America/New_York"],
        [1730613600000000000, "America/New_York"],
        [1711846800000000000, "Europe/Berlin"],
        [1580428800000000000, "America/New_York"],
        [0, "Pacific/Apia"],
        [1325152800000000000, "Pacific/Apia"],
        [1325239200000000000, "Pacific/Apia"],
        [0, "America/New_York"],
        [0, "UTC"],
        [0, "UTC"],
        [0, "UTC"],
        [0, "UTC"],
        [0, "UTC"],
        [0, "Europe/Berlin"],
        [0, "Europe/Berlin"],
        [0, "UTC"],
        [0, "UTC"],
        [0, "UTC"],
        [0, "UTC"],
        [0, "UTC"],
        [0, "UTC"],
    ],
    "x": [
        [0, 0, 1],
        [0, 0, 1],
        [0, 0, 1],
        [0, 0, -1],
        [0, 0, 1],
        [0, 0, -1],
        [0, 1, 0],
        [41, 11, 29],
        [0, 0, 1],
        [0, 0, -1],
        [9223372036854775807, 0, 0],
        [-9223372036854775808, 0, 0],
        [0, 9223372036854775807, 0],
        [0, 0, 9223372036854775807],
        [0, 0, -9223372036854775808],
        [9223372036854775807, 9223372036854775807, 9223372036854775807],
        [0, 9223372036854775807, 0],
        [0, -9223372036854775808, 0],
        [292277026596, 0, 0],
        [292277026597, 0, 0],
        [3000000000, 0, 0],
        [-292277022657, 0, 0],
        [0, 0, 106751991167300],
        [0, 0, -106751991167300],
    ],
}

PARSE = [
    "time.parse_ns(\"2006 2006\", \"2020 2021\")",
    "time.parse_ns(\"01 Jan\", \"02 Feb\")",
    "time.parse_ns(\"Jan 01\", \"Feb 03\")",
    "time.parse_ns(\"2006-01-02T15:04:05Z07:00\", \"2020-01-01T00:00:00z\")",
    "time.parse_ns(\"2006-01-02T15:04:05Z07:00\", \"2020-01-01T00:00:00+01:00extra\")",
    "time.parse_ns(\"2006-01-02T15:04:05 MST\", \"2020-01-01T00:00:00 UTCX\")",
    "time.parse_ns(\"2006-01-02T15:04:05 MST\", \"2020-01-01T00:00:00 ABCDT\")",
    "time.parse_ns(\"2006-01-02T15:04:05 MST\", \"2020-01-01T00:00:00 ABCDE\")",
    "time.parse_ns(\"2006-01-02T15:04:05 MST\", \"2020-01-01T00:00:00 WITA\")",
    "time.parse_ns(\"2006-01-02T15:04:05 MST\", \"2020-01-01T00:00:00 GMT-11\")",
    "time.parse_ns(\"2006-01-02T15:04:05 MST\", \"2020-01-01T00:00:00 GMT+24\")",
    "time.parse_ns(\"2006-01-02T15:04:05 MST -0700\", \"2020-01-01T00:00:00 EST -0500\")",
    "time.parse_ns(\"2006-01-02T15:04:05 -0700 MST\", \"2020-01-01T00:00:00 -0500 EST\")",
    "time.parse_ns(\"2006-01-02T15:04:05 -0700 Z07:00\", \"2020-01-01T00:00:00 -0500 Z\")",
    "time.parse_ns(\"2006-01-02T15:04:05 -07:00:00\", \"2020-01-01T00:00:00 -00:00:01\")",
    "time.parse_ns(\"2006-01-02T15:04:05 -07:00:00\", \"2020-01-01T00:00:00 -00:00:02\")",
    "time.parse_ns(\"2006-01-02T15:04:05 -07:00\", \"2020-01-01T00:00:00 +24:60\")",
    "time.parse_ns(\"2006-01-02T15:04:05 -07:00\", \"2020-01-01T00:00:00 +24:61\")",
    "time.parse_ns(\"2006-01-02T15:04:05 -07\", \"2020-01-01T00:00:00 +5\")",
    "time.parse_ns(\"15:04:05.000\", \"10:00:00.+12\")",
    "time.parse_ns(\"15:04:05.000\", \"10:00:00.-12\")",
    "time.parse_ns(\"15:04:05 .9\", \"10:00:00 .123456789012\")",
    "time.parse_ns(\"15:04:05\", \"10:00:00.123456789012\")",
    "time.parse_ns(\"15:04:05\", \"10:00:00.\")",
    "time.parse_ns(\"15:04:05,999\", \"10:00:00.5\")",
    "time.parse_ns(\"15:04:05.999\", \"10:00:00,5\")",
    "time.parse_ns(\"Monday\", \"monday\")",
    "time.parse_ns(\"Monday\", \"MONDAYx\")",
    "time.parse_ns(\"January\", \"JANUARY\")",
    "time.parse_ns(\"Jan\", \"janu\")",
    "time.parse_ns(\"2006-01-02 3PM\", \"2020-01-01 0PM\")",
    "time.parse_ns(\"2006-01-02 3PM\", \"2020-01-01 0AM\")",
    "time.parse_ns(\"2006-01-02 15PM\", \"2020-01-01 13PM\")",
    "time.parse_ns(\"2006-01-02 3\", \"2020-01-01 13\")",
    "time.parse_ns(\"2006 __2\", \"2020 366\")",
    "time.parse_ns(\"2006 __2\", \"2020 0\")",
    "time.parse_ns(\"2006 __2 Jan 2\", \"2020 32 Feb 1\")",
    "time.parse_ns(\"2006 __2 Jan 2\", \"2020 32 Feb 2\")",
    "time.parse_ns(\"06 002\", \"24 060\")",
    "time.parse_ns(\" 2006\", \"   2020\")",
    "time.parse_ns(\"2006 \", \"2020\")",
    "time.parse_ns(\"2006\", \" 2020\")",
    "time.parse_ns(\"2006-01-02\", \"2020-02-29\")",
    "time.parse_ns(\"2006-01-02\", \"1900-02-29\")",
    "time.parse_ns(\"2006-01-02\", \"2000-02-29\")",
    "time.parse_ns(\"_2\", \"  5\")",
    "time.parse_ns(\"_2\", \" 15\")",
    "time.parse_ns(\"__2\", \"  5\")",
    "time.parse_ns(\"2 Jan 2006 15:04:05.000000 -0700\", \"9 Mar 2024 01:59:59.999999 -0500\")",
    "time.parse_ns(\"2006-01-02T15:04:05.999999999Z07:00\", \"2262-04-11T23:47:16.854775807Z\")",
    "time.parse_ns(\"2006-01-02T15:04:05.999999999Z07:00\", \"2262-04-12T00:47:16.854775807+01:00\")",
    "time.parse_ns(\"2006-01-02T15:04:05.999999999Z07:00\", \"1677-09-20T23:12:43.145224192-01:00\")",
    "time.parse_ns(\"2006-01-02T15:04:05.999999999Z07:00\", \"1677-09-20T23:12:43.145224191-01:00\")",
]

DURATION = [
    "time.parse_duration_ns(\"1.5.5h\")",
    "time.parse_duration_ns(\"100000000000000000000d\")",
    "time.parse_duration_ns(\"0.5d\")",
    "time.parse_duration_ns(\"1e-5d\")",
    "time.parse_duration_ns(\".d\")",
    "time.parse_duration_ns(\"1..d\")",
    "time.parse_duration_ns(\"1.d\")",
    "time.parse_duration_ns(\"0.000000000000000001d\")",
    "time.parse_duration_ns(\"106751d23h47m16.854775807s\")",
    "time.parse_duration_ns(\"106752d\")",
    "time.parse_duration_ns(\"-106751d23h47m16.854775808s\")",
    "time.parse_duration_ns(\"3.3333333333333333333333333333w\")",
    "time.parse_duration_ns(\"1.1y\")",
    "time.parse_duration_ns(\"2562047.788015215h\")",
    "time.parse_duration_ns(\"0.000000001s\")",
    "time.parse_duration_ns(\"0.0000000001s\")",
    "time.parse_duration_ns(\"1.00000000000000000000000000000000000000000001s\")",
    "time.parse_duration_ns(\"18446744073709551616ns\")",
    "time.parse_duration_ns(\"9223372036854775808ns\")",
    "time.parse_duration_ns(\"-9223372036854775808ns\")",
    "time.parse_duration_ns(\"-9223372036854775809ns\")",
    "time.parse_duration_ns(\"1d\\u00b5s\")",
]

ZONES = [
    "time.format(1.5e18)",
    "time.format(1e18)",
    "time.format(123456789.0)",
    "time.format([1710054000000000000, \"America/New_York\", \"2006-01-02 15:04:05 MST -07:00\"])",
    "time.format([1730613600000000000, \"America/New_York\", \"2006-01-02 15:04:05 MST -07:00\"])",
    "time.format([0, \"Australia/Lord_Howe\", \"MST -07:00\"])",
    "time.format([1583020800000000000, \"Australia/Lord_Howe\", \"MST -07:00\"])",
    "time.format([1583020800000000000, \"Factory\", \"MST -07:00\"])",
    "time.format([1583020800000000000, \"posixrules\", \"MST -07:00\"])",
    "time.format([1583020800000000000, \"Etc/GMT-14\", \"MST -07:00\"])",
    "time.format([9223372036854775807, \"Pacific/Chatham\", \"2006-01-02 15:04:05.999999999 MST -07:00\"])",
    "time.format([-9223372036854775808, \"Pacific/Chatham\", \"2006-01-02 15:04:05.999999999 MST -07:00\"])",
    "time.format([-9223372036854775808, \"Africa/Monrovia\", \"MST Z07:00:00\"])",
    "time.format([-2208988800000000000, \"Africa/Monrovia\", \"MST Z07:00:00\"])",
    "time.format([9000000000000000000, \"America/Sao_Paulo\", \"MST Z07:00:00\"])",
    "time.format([9000000000000000000, \"America/New_York\", \"MST Z07:00:00\"])",
    "time.format([1583020800000000000, \"Local\", \"MST Z07:00:00\"])",
    "time.date([1583020800000000000, \"Asia/Jerusalem\"])",
    "time.clock([1583020800000000000, \"Antarctica/Troll\"])",
    "time.weekday([1583020800000000000, \"Pacific/Apia\"])",
    "time.diff([1710054000000000000, \"America/New_York\"], [1709967600000000000, \"America/New_York\"])",
    "time.diff([1710054000000000000, \"America/New_York\"], [1710050400000000000, \"America/New_York\"])",
    "time.diff([1730613600000000000, \"America/New_York\"], [1730610000000000000, \"America/New_York\"])",
    "time.diff(0, 9223372036854775807)",
    "time.diff(-9223372036854775808, 9223372036854775807)",
    "time.diff([0, \"Asia/Tokyo\"], [-1, \"America/New_York\"])",
]

ADD_DATE = [
    "time.add_date(input.y[0], input.x[0][0], input.x[0][1], input.x[0][2])",
    "time.add_date(input.y[1], input.x[1][0], input.x[1][1], input.x[1][2])",
    "time.add_date(input.y[2], input.x[2][0], input.x[2][1], input.x[2][2])",
    "time.add_date(input.y[3], input.x[3][0], input.x[3][1], input.x[3][2])",
    "time.add_date(input.y[4], input.x[4][0], input.x[4][1], input.x[4][2])",
    "time.add_date(input.y[5], input.x[5][0], input.x[5][1], input.x[5][2])",
    "time.add_date(input.y[6], input.x[6][0], input.x[6][1], input.x[6][2])",
    "time.add_date(input.y[7], input.x[7][0], input.x[7][1], input.x[7][2])",
    "time.add_date(input.y[8], input.x[8][0], input.x[8][1], input.x[8][2])",
    "time.add_date(input.y[9], input.x[9][0], input.x[9][1], input.x[9][2])",
    "time.add_date(input.y[10], input.x[10][0], input.x[10][1], input.x[10][2])",
    "time.add_date(input.y[11], input.x[11][0], input.x[11][1], input.x[11][2])",
    "time.add_date(input.y[12], input.x[12][0], input.x[12][1], input.x[12][2])",
    "time.add_date(input.y[13], input.x[13][0], input.x[13][1], input.x[13][2])",
    "time.add_date(input.y[14], input.x[14][0], input.x[14][1], input.x[14][2])",
    "time.add_date(input.y[15], input.x[15][0], input.x[15][1], input.x[15][2])",
    "time.add_date(input.y[16], input.x[16][0], input.x[16][1], input.x[16][2])",
    "time.add_date(input.y[17], input.x[17][0], input.x[17][1], input.x[17][2])",
    "time.add_date(input.y[18], input.x[18][0], input.x[18][1], input.x[18][2])",
    "time.add_date(input.y[19], input.x[19][0], input.x[19][1], input.x[19][2])",
    "time.add_date(input.y[20], input.x[20][0], input.x[20][1], input.x[20][2])",
    "time.add_date(input.y[21], input.x[21][0], input.x[21][1], input.x[21][2])",
    "time.add_date(input.y[22], input.x[22][0], input.x[22][1], input.x[22][2])",
    "time.add_date(input.y[23], input.x[23][0], input.x[23][1], input.x[23][2])",
]

TABLES = {"parse": PARSE, "duration": DURATION, "zones": ZONES, "add_date": ADD_DATE}


@pytest.mark.parametrize("table", sorted(TABLES))
def test_time_edge_cases_agree_with_opa(table: str) -> None:
    assert compare_expressions(TABLES[table], input_doc=INPUT) == []


def test_a_float_instant_needing_more_than_53_bits() -> None:
    assert compare_expressions(["time.format(1234567890123456789.0)"]) == []


LOCAL = [
    'time.format([1583020800000000000, "Local", "2006-01-02 15:04:05 MST -07:00"])',
    'time.format([1593561600000000000, "Local", "2006-01-02 15:04:05 MST -07:00"])',
    'time.clock([1593561600000000000, "Local"])', 'time.date([-9000000000000000000, "Local"])',
    'time.parse_ns("2006-01-02 15:04 MST", "2020-01-15 10:00 EST")',
    'time.parse_ns("2006-01-02 15:04 MST", "2020-07-15 10:00 EST")',
    'time.parse_ns("2006-01-02 15:04 MST", "2020-07-15 10:00 EDT")',
    'time.parse_ns("2006-01-02 15:04 MST", "2020-01-15 10:00 EDT")',
    'time.parse_ns("2006-01-02 15:04 MST", "1943-01-15 10:00 EWT")',
    'time.parse_ns("2006-01-02 15:04 MST", "1850-01-15 10:00 LMT")',
    'time.parse_ns("2006-01-02 15:04 MST", "2020-01-15 10:00 CET")',
    'time.parse_ns("2006-01-02 15:04 MST", "2020-07-15 10:00 CEST")',
    'time.parse_ns("2006-01-02 15:04 MST", "2020-07-15 10:00 GMT")',
    'time.parse_ns("2006-01-02 15:04 MST", "2020-07-15 10:00 BST")',
    'time.parse_ns("2006-01-02 15:04 MST", "2020-07-15 10:00 IST")',
    'time.parse_ns("2006-01-02 15:04 MST", "2020-01-15 10:00 IST")',
    'time.parse_ns("2006-01-02 15:04 -0700", "2020-01-15 10:00 -0500")',
    'time.parse_rfc3339_ns("2020-07-15T10:00:00-04:00")',
]


@pytest.fixture
def local_tz(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``TZ`` set for both OPA and this engine (Go's ``time.Local`` follows it)."""
    monkeypatch.setenv("TZ", request.param)
    local_zone.cache_clear()
    yield
    monkeypatch.undo()
    local_zone.cache_clear()


@pytest.mark.parametrize("local_tz", ["America/New_York", ":Europe/Berlin", "Europe/Dublin", "",
                                      "Bogus/Zone"], indirect=True)
@pytest.mark.usefixtures("local_tz")
def test_local_zone_follows_tz_as_in_go() -> None:
    assert compare_expressions(LOCAL) == []


# Number texts a float can't carry, and what each builtin gets when values keeps them (BigNumber).
NUMBER_TEXTS = [
    ("time.format", "1234567890123456789.0"), ("time.format", "12345678901234567891.0"),
    ("time.format", "1.5e18"), ("time.format", "1e400"), ("time.format", "0.10000000000000000001"),
    ("time.format", "9223372036854775807.0"), ("time.format", "922337203685477580.75e1"),
]
INT_TEXTS = ["1e3", "2.0", "2.000", "1.000000000000000000", "-3.0", "1.5", "1E0", "100000000000000000.0"]


def _opa_value(expr: str) -> Any:
    outcome = opa_outcome({"t.rego": f"package t\nc := {expr}\n"}, "t")
    assert outcome.kind == "value", outcome.error
    return outcome.value.get("c", "undefined")


def _ours(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return fn(EvalContext(now_ns=0), *args)
    except BuiltinError:
        return "undefined"


@pytest.mark.parametrize(("name", "text"), NUMBER_TEXTS)
def test_a_number_kept_as_text_is_read_as_opa_reads_it(name: str, text: str) -> None:
    assert _ours(load_all()[name], BigNumber(text)) == _opa_value(f"{name}({text})")


@pytest.mark.parametrize("text", INT_TEXTS)
def test_an_integer_operand_kept_as_text_is_read_as_opa_reads_it(text: str) -> None:
    ours = _ours(load_all()["time.add_date"], 0, 0, 0, BigNumber(text))
    assert ours == _opa_value(f"time.add_date(0, 0, 0, {text})")
