"""Unknown requests: state changes are always refused; unknown reads by ``classifier.unknown_reads``.

``forward`` (the default) passes a GET, HEAD or OPTIONS to a route the table does
not list on to Nova as a read; ``deny`` only passes a GET of a listed route. The
classifier side is tested directly; the end-to-end side needs the config key.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from multidict import CIMultiDict

from sidecar.classify import RouteTable, classify, load_route_table
from sidecar.config import ClassifierConfig
from tests.adversarial.harness import live_stack
from tests.support.paths import ACTIONS

SID = "7a1f0c1e-9d3b-4c2a-8f5e-0123456789ab"
# (method, path, kind with unknown_reads=forward, kind with unknown_reads=deny)
TABLE = [
    ("GET", f"/v2.1/servers/{SID}", "read", "read"),
    ("GET", "/v2.1/servers/detail", "read", "read"),
    ("GET", "/v2.1/flavors", "read", "read"),
    ("GET", "/v2.1/", "read", "read"),
    ("GET", "/", "read", "read"),
    ("GET", f"/v2.1/servers/{SID}/no-such-thing", "read", "unknown"),
    ("GET", "/v2.1/no-such-resource", "read", "unknown"),
    ("GET", f"/servers/{SID}", "read", "unknown"),
    ("HEAD", f"/v2.1/servers/{SID}", "read", "unknown"),
    ("OPTIONS", f"/v2.1/servers/{SID}", "read", "unknown"),
    ("OPTIONS", "/v2.1/flavors", "read", "unknown"),
    ("POST", f"/v2.1/servers/{SID}/no-such-thing", "unknown", "unknown"),
    ("PATCH", f"/v2.1/servers/{SID}", "unknown", "unknown"),
    ("DELETE", "/v2.1/no-such-resource", "unknown", "unknown"),
    ("PURGE", f"/v2.1/servers/{SID}", "unknown", "unknown"),
    ("POST", f"/servers/{SID}/action", "unknown", "unknown"),
]


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return load_route_table(ACTIONS)


@pytest.mark.parametrize(("method", "path", "forward", "deny"), TABLE)
def test_unknown_reads_setting(table: RouteTable, method: str, path: str, forward: str, deny: str) -> None:
    headers: CIMultiDict[str] = CIMultiDict()
    assert classify(method, path, headers, b"", table).kind == forward
    assert classify(method, path, headers, b"", table, unknown_reads="forward").kind == forward
    assert classify(method, path, headers, b"", table, unknown_reads="deny").kind == deny


def test_unknown_reads_rejects_other_values(table: RouteTable) -> None:
    with pytest.raises(ValueError, match="unknown_reads"):
        classify("GET", "/", CIMultiDict(), b"", table, unknown_reads="allow")


def test_unknown_state_changes_are_refused_end_to_end(tmp_path: Path) -> None:
    with live_stack(tmp_path) as stack:
        for method, path in [("POST", f"/v2.1/servers/{stack.free}/no-such-thing"),
                             ("PATCH", f"/v2.1/servers/{stack.free}"), ("DELETE", "/v2.1/no-such-resource")]:
            resp = stack.request(method, path, body=b"{}" if method != "DELETE" else b"")
            assert resp.status == 404 and not resp.from_upstream
            assert resp.json()["itemNotFound"]["code"] == 404
        assert stack.nova.executions == []


def test_unknown_reads_forwarded_by_default(tmp_path: Path) -> None:
    with live_stack(tmp_path) as stack:
        resp = stack.request("GET", f"/v2.1/servers/{stack.free}/no-such-thing")
        assert resp.status == 404 and resp.from_upstream


@pytest.mark.skipif("unknown_reads" not in {f.name for f in dataclasses.fields(ClassifierConfig)},
                    reason="classifier.unknown_reads is not wired into the config yet")
def test_unknown_reads_denied_when_configured(tmp_path: Path) -> None:
    with live_stack(tmp_path, classifier={"unknown_reads": "deny"}) as stack:
        resp = stack.request("GET", f"/v2.1/servers/{stack.free}/no-such-thing")
        assert resp.status == 404 and not resp.from_upstream
        assert resp.json()["itemNotFound"]["code"] == 404
        head = stack.request("GET", f"/v2.1/servers/{stack.free}")
        assert head.status == 200 and head.from_upstream
        assert [e.name for e in stack.nova.executions] == ["servers.show"]
