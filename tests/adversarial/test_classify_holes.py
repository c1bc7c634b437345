"""The classifier fixes the corpus and the fuzzer led to, as pure tables (no server needed).

Each row is a request Nova's stack would read differently from the classifier
before the fix; the classifier must now refuse it (BadRequest) or read it as Nova does.
"""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from sidecar.classify import (
    LimitExceeded,
    RouteTable,
    check_headers,
    check_query,
    classify,
    effective_microversion,
    load_route_table,
    parse_json_body,
)
from sidecar.errors import BadRequest
from tests.support.paths import ACTIONS

SID = "7a1f0c1e-9d3b-4c2a-8f5e-0123456789ab"


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return load_route_table(ACTIONS)


@pytest.mark.parametrize("query", [
    "_method=DELETE", "_method=delete", "%5Fmethod=DELETE", "%5fmethod=DELETE", "_%6Dethod=DELETE",
    "a=1;_method=DELETE", "a=1&_method=DELETE", "_method", "_method=", "+_method=DELETE",
    "_METHOD=DELETE", "x=1#&_method=DELETE",
])
def test_method_override_in_query_is_refused(table: RouteTable, query: str) -> None:
    with pytest.raises(BadRequest, match="_method"):
        check_query(query)
    with pytest.raises(BadRequest, match="_method"):
        classify("GET", f"/v2.1/servers/{SID}?{query}", CIMultiDict(), b"", table)


@pytest.mark.parametrize("query", ["", "x=1", "name=my_method", "%255Fmethod=DELETE", "a_method=1",
                                   "sort_key=display_name&sort_dir=asc"])
def test_other_queries_pass(table: RouteTable, query: str) -> None:
    check_query(query)
    assert classify("GET", f"/v2.1/servers/{SID}?{query}", CIMultiDict(), b"", table).kind == "read"


@pytest.mark.parametrize("headers", [
    [("OpenStack_API_Version", "compute 2.73")],
    [("X_OpenStack_Nova_API_Version", "2.73")],
    [("X_Auth_Token", "admin:admin")],
    [("Content_Type", "application/xml")],
    [("X-HTTP-Method-Override", "DELETE")],
    [("x-method-override", "GET")],
    [("Content-Type", "application/json"), ("Content-Type", "application/xml")],
    [("X-Auth-Token", "a:b"), ("X-Auth-Token", "admin:admin")],
    [("Connection", "OpenStack-API-Version")],
    [("Connection", "close, X-Auth-Token")],
    [("Connection", "Content-Type")],
])
def test_headers_read_differently_upstream_are_refused(headers: list[tuple[str, str]]) -> None:
    with pytest.raises(BadRequest):
        check_headers(CIMultiDict(headers))


@pytest.mark.parametrize("headers", [
    [("Connection", "keep-alive")], [("Connection", "close")], [("Connection", "Upgrade"), ("Upgrade", "x")],
    [("OpenStack-API-Version", "compute 2.1"), ("OpenStack-API-Version", "compute 2.73")],
    [("X-Auth-Token", "a:b"), ("Content-Type", "application/json")],
])
def test_ordinary_headers_pass(headers: list[tuple[str, str]]) -> None:
    check_headers(CIMultiDict(headers))


@pytest.mark.parametrize(("headers", "version"), [
    ([("OpenStack-API-Version", "compute 2.1"), ("OpenStack-API-Version", "compute 2.73")], (2, 73)),
    ([("OpenStack-API-Version", "compute 2.73"), ("OpenStack-API-Version", "volume 3.0")], (2, 73)),
    ([("X-OpenStack-Nova-API-Version", "2.10"), ("X-OpenStack-Nova-API-Version", "2.26")], (2, 26)),
])
def test_repeated_microversion_lines_are_joined_as_the_wsgi_server_does(
        table: RouteTable, headers: list[tuple[str, str]], version: tuple[int, int]) -> None:
    assert effective_microversion(CIMultiDict(headers), table) == version


@pytest.mark.parametrize("body", [b'{"suspend": NaN}', b'{"suspend": Infinity}', b'{"suspend": -Infinity}',
                                  b'{"createBackup": {"rotation": 1e999}}', b'{"x": [1, -1e400]}'])
def test_non_finite_numbers_are_refused_not_failed_closed(body: bytes) -> None:
    with pytest.raises(BadRequest, match="Malformed request body"):
        parse_json_body(body, "application/json", 32)


def test_finite_numbers_pass() -> None:
    assert parse_json_body(b'{"a": [1.5, -2e10, 0]}', "", 32) == {"a": [1.5, -2e10, 0]}


def test_json_depth_is_a_counted_limit() -> None:
    with pytest.raises(LimitExceeded) as info:
        parse_json_body(b"[" * 40 + b"]" * 40, "", 32)
    assert info.value.code == "limit_json_depth" and info.value.status == 400
