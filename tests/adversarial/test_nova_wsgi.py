"""The test upstream reads requests as nova-api.md section 4 says Nova does ([H] facts).

If one of these fails, nova_wsgi no longer models Nova, and the differential tests
above it would compare Statelock with the wrong thing.
"""

from __future__ import annotations

import json
import urllib.request

import pytest

from tests.support.nova_wsgi import NovaWSGI, call, canonical_server_id, environ_for, serve

PROJECT = "0123456789abcdef0123456789abcdef"
SID = "7a1f0c1e-9d3b-4c2a-8f5e-0123456789ab"


@pytest.fixture
def nova() -> NovaWSGI:
    upstream = NovaWSGI()
    upstream.add_server(PROJECT, server_id=SID)
    return upstream


def run(nova: NovaWSGI, method: str, target: str, body: bytes = b"",
        headers: list[tuple[str, str]] | None = None) -> tuple[int, list[str]]:
    hdrs = list(headers or []) + ([("Content-Length", str(len(body)))] if body else [])
    nova.clear()
    status = call(nova, environ_for(method, target, hdrs, body))
    return status, [e.name for e in nova.executions]


@pytest.mark.parametrize(("method", "target", "body", "headers", "status", "executed"), [
    ("POST", f"/v2.1/servers/{SID}/action", b'{"suspend": null}', [], 202, ["suspend"]),
    ("POST", f"//v2.1//servers//{SID}//action", b'{"suspend": null}', [], 202, ["suspend"]),
    ("POST", f"/v2.1/servers/{SID}/%61ction", b'{"suspend": null}', [], 202, ["suspend"]),
    ("POST", f"/v2.1/{PROJECT}/servers/{SID}/action", b'{"pause": null}', [], 202, ["pause"]),
    ("POST", f"/v2.1/{PROJECT.upper()}/servers/{SID}/action", b'{"pause": null}', [], 404, []),
    ("POST", f"/v2/servers/{SID}/action", b'{"pause": null}', [], 202, ["pause"]),
    ("POST", f"/v2.1/servers/{SID}/action/", b'{"pause": null}', [], 404, []),
    ("POST", f"/v2.1/servers/{SID}/Action", b'{"pause": null}', [], 404, []),
    ("POST", f"/v2.1/servers/{SID}/action.json", b'{"pause": null}', [], 404, []),
    ("POST", f"/v2.1/servers/{SID}/action;x", b'{"pause": null}', [], 404, []),
    ("POST", f"/servers/{SID}/action", b'{"pause": null}', [], 200, []),
    ("POST", f"/servers/{SID}/action", b'{"pause": null}', [("Content-Type", "application/json;version=2.1")],
     200, []),
    ("POST", f"/v2.1/servers/{SID}/action", b'{"reboot": {"type": "SOFT"}, "os-stop": null}', [], 400, []),
    ("POST", f"/v2.1/servers/{SID}/action", b'{"os-stop": null, "os-stop": 1}', [], 202, ["os-stop"]),
    ("POST", f"/v2.1/servers/{SID}/action", b'{"os-st\\u006fp": null}', [], 202, ["os-stop"]),
    ("POST", f"/v2.1/servers/{SID}/action", b'\xef\xbb\xbf{"os-stop": null}', [], 400, []),
    ("POST", f"/v2.1/servers/{SID}/action", b'["os-stop"]', [], 404, []),
    ("POST", f"/v2.1/servers/{SID}/action", b'{"OS-STOP": null}', [], 400, []),
    ("POST", f"/v2.1/servers/{SID}/action", b'{"os-stop": null}', [("Content-Type", "text/plain")], 202,
     ["os-stop"]),
    ("POST", f"/v2.1/servers/{SID}/action", b'{"os-stop": null}', [("Content-Type", "APPLICATION/JSON")],
     415, []),
    ("POST", f"/v2.1/servers/{SID}/action", b'{"trigger_crash_dump": null}', [], 404, []),
    ("POST", f"/v2.1/servers/{SID}/action", b'{"trigger_crash_dump": null}',
     [("OpenStack-API-Version", "compute 2.10, compute 2.17")], 202, ["trigger_crash_dump"]),
    ("POST", f"/v2/servers/{SID}/action", b'{"trigger_crash_dump": null}',
     [("OpenStack-API-Version", "compute 2.17")], 404, []),
    ("GET", f"/v2.1/servers/{SID}", b"", [("OpenStack-API-Version", "compute 2.07")], 400, []),
    ("GET", f"/v2.1/servers/{SID}", b"", [("OpenStack-API-Version", "compute 2.999")], 406, []),
    ("POST", f"/v2.1/servers/{SID}/action", b'{"resetNetwork": null}', [], 410, []),
    ("POST", f"/v2.1/servers/{SID}", b'{"os-stop": null}', [("X-HTTP-Method-Override", "DELETE")], 404, []),
    ("HEAD", f"/v2.1/servers/{SID}", b"", [], 404, []),
    ("GET", f"/v2.1/servers/{SID}?_method=DELETE", b"", [], 202, ["servers.delete"]),
    ("POST", f"/v2.1/servers/{SID}?_method=DELETE", b"{}", [], 400, []),
    ("GET", f"/v2.1/servers/{SID.upper()}", b"", [], 200, ["servers.show"]),
    ("GET", "/v2.1/servers/not-a-uuid", b"", [], 404, []),
])
def test_nova_reads_requests_as_the_reference_says(
        nova: NovaWSGI, method: str, target: str, body: bytes, headers: list[tuple[str, str]],
        status: int, executed: list[str]) -> None:
    assert run(nova, method, target, body, headers) == (status, executed)


def test_body_over_nova_size_limit_is_413(nova: NovaWSGI) -> None:
    assert run(nova, "POST", f"/v2.1/servers/{SID}/action", b" " * 114689)[0] == 413


@pytest.mark.parametrize(("text", "canonical"), [
    (SID, SID), (SID.upper(), SID), (SID.replace("-", ""), SID), ("{" + SID + "}", SID),
    (f"urn:uuid:{SID}", SID), (SID + " ", None), ("detail", None), (SID[:-1], None),
])
def test_canonical_server_id_follows_is_uuid_like(text: str, canonical: str | None) -> None:
    assert canonical_server_id(text) == canonical


def test_served_over_wsgiref_decodes_path_info_like_nova_servers(nova: NovaWSGI) -> None:
    with serve(nova) as url:
        req = urllib.request.Request(f"{url}/v2.1/servers/{SID}/%61ction", data=b'{"suspend": null}',
                                     method="POST", headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            assert resp.status == 202
            assert resp.headers["X-Nova-Wsgi"] == "1"
        with urllib.request.urlopen(f"{url}/v2.1/servers/{SID}", timeout=10) as resp:
            assert json.loads(resp.read())["server"]["id"] == SID
    assert [e.name for e in nova.executions] == ["suspend", "servers.show"]
