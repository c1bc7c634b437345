"""Unit tests for sidecar.classify over the real config/actions.yaml.

The tables below are nova-api.md sections 2 to 5 written as data: every action key
of ``POST /servers/{id}/action``, every server endpoint, every URL form Nova accepts,
and every request form Statelock must refuse instead of forwarding.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from multidict import CIMultiDict

from sidecar.classify import (
    KINDS,
    Action,
    RouteTable,
    classify,
    effective_microversion,
    load_route_table,
    normalise_path,
    parse_json_body,
)
from sidecar.errors import BadRequest, ConfigError, NotFound
from tests.support.paths import ACTIONS

UUID = "7a1f0c1e-9d3b-4c2a-8f5e-0123456789ab"
PROJECT = "0123456789abcdef0123456789abcdef"
JSON = "application/json"


@pytest.fixture(scope="module")
def table() -> RouteTable:
    return load_route_table(ACTIONS)


def headers(content_type: str | None = JSON, **extra: str) -> CIMultiDict[str]:
    """Request headers as aiohttp hands them over (case-insensitive)."""
    out: CIMultiDict[str] = CIMultiDict()
    if content_type is not None:
        out["Content-Type"] = content_type
    for name, value in extra.items():
        out[name.replace("_", "-")] = value
    return out


def run(
    table: RouteTable,
    method: str,
    path: str,
    body: bytes = b"",
    hdrs: CIMultiDict[str] | None = None,
    max_json_depth: int = 32,
) -> Action:
    return classify(method, path, headers() if hdrs is None else hdrs, body, table, max_json_depth)


def action_body(key: str, value: Any) -> bytes:
    return json.dumps({key: value}).encode()


# --- section 2: the whole action catalogue -----------------------------------------------

# (body key, a representative value, expected kind, expected name, expected params)
ACTION_CATALOGUE: list[tuple[str, Any, str, str, dict[str, Any]]] = [
    ("reboot", {"type": "HARD"}, "state_change", "reboot", {"type": "HARD"}),
    ("os-start", None, "state_change", "os-start", {}),
    ("os-stop", None, "state_change", "os-stop", {}),
    ("resize", {"flavorRef": "2"}, "state_change", "resize", {"flavorRef": "2"}),
    ("confirmResize", None, "state_change", "confirmResize", {}),
    ("revertResize", None, "state_change", "revertResize", {}),
    ("rebuild", {"imageRef": "img-1", "adminPass": "s3cret", "name": "n"}, "state_change", "rebuild",
     {"imageRef": "img-1"}),
    ("createImage", {"name": "snap", "metadata": {"a": "b"}}, "state_change", "createImage", {"name": "snap"}),
    ("trigger_crash_dump", None, "state_change", "trigger_crash_dump", {}),
    ("lock", None, "lock", "lock", {}),
    ("unlock", None, "unlock", "unlock", {}),
    ("pause", None, "state_change", "pause", {}),
    ("unpause", None, "state_change", "unpause", {}),
    ("suspend", None, "state_change", "suspend", {}),
    ("resume", None, "state_change", "resume", {}),
    ("shelve", None, "state_change", "shelve", {}),
    ("shelveOffload", None, "state_change", "shelveOffload", {}),
    ("unshelve", {"availability_zone": "az1", "host": "c1"}, "state_change", "unshelve",
     {"availability_zone": "az1", "host": "c1"}),
    ("rescue", {"adminPass": "s3cret", "rescue_image_ref": "img-2"}, "state_change", "rescue",
     {"rescue_image_ref": "img-2"}),
    ("unrescue", None, "state_change", "unrescue", {}),
    ("changePassword", {"adminPass": "s3cret"}, "state_change", "changePassword", {}),
    ("createBackup", {"name": "b", "backup_type": "daily", "rotation": 2}, "state_change", "createBackup",
     {"backup_type": "daily", "rotation": 2}),
    ("forceDelete", None, "delete", "forceDelete", {}),
    ("restore", None, "state_change", "restore", {}),
    ("migrate", {"host": "c2"}, "state_change", "migrate", {"host": "c2"}),
    ("os-migrateLive", {"host": "c2", "block_migration": "auto", "disk_over_commit": False}, "state_change",
     "os-migrateLive", {"host": "c2", "block_migration": "auto"}),
    ("evacuate", {"host": "c3", "adminPass": "s3cret"}, "state_change", "evacuate", {"host": "c3"}),
    ("os-resetState", {"state": "active"}, "state_change", "os-resetState", {"state": "active"}),
    ("injectNetworkInfo", None, "state_change", "injectNetworkInfo", {}),
    ("resetNetwork", None, "state_change", "resetNetwork", {}),
    ("os-getConsoleOutput", {"length": 50}, "read", "os-getConsoleOutput", {}),
    ("os-getVNCConsole", {"type": "novnc"}, "read", "os-getVNCConsole", {}),
    ("os-getSPICEConsole", {"type": "spice-html5"}, "read", "os-getSPICEConsole", {}),
    ("os-getSerialConsole", {"type": "serial"}, "read", "os-getSerialConsole", {}),
    ("os-getRDPConsole", {"type": "rdp-html5"}, "read", "os-getRDPConsole", {}),
    ("addSecurityGroup", {"name": "web"}, "state_change", "addSecurityGroup", {"name": "web"}),
    ("removeSecurityGroup", {"name": "web"}, "state_change", "removeSecurityGroup", {"name": "web"}),
    ("addFloatingIp", {"address": "10.0.0.5"}, "state_change", "addFloatingIp", {"address": "10.0.0.5"}),
    ("removeFloatingIp", {"address": "10.0.0.5"}, "state_change", "removeFloatingIp", {"address": "10.0.0.5"}),
    ("addFixedIp", {"networkId": "net-1"}, "state_change", "addFixedIp", {"networkId": "net-1"}),
    ("removeFixedIp", {"address": "10.0.0.6"}, "state_change", "removeFixedIp", {"address": "10.0.0.6"}),
]
ACTION_KEYS = [row[0] for row in ACTION_CATALOGUE]
READ_ACTIONS = {"os-getConsoleOutput", "os-getVNCConsole", "os-getSPICEConsole", "os-getSerialConsole",
                "os-getRDPConsole"}


@pytest.mark.parametrize(("key", "value", "kind", "name", "params"), ACTION_CATALOGUE, ids=ACTION_KEYS)
def test_every_nova_action_key_is_classified(
    table: RouteTable, key: str, value: Any, kind: str, name: str, params: dict[str, Any]
) -> None:
    action = run(table, "POST", f"/v2.1/servers/{UUID}/action", action_body(key, value))
    assert (action.kind, action.name) == (kind, name)
    assert action.instance_id == UUID
    assert dict(action.params) == params
    assert action.body == {key: value}
    assert action.is_state_change is (kind != "read")


def test_action_table_matches_actions_yaml_both_ways() -> None:
    raw = yaml.safe_load(ACTIONS.read_text(encoding="utf-8"))
    assert set(raw["actions"]) == set(ACTION_KEYS)
    assert len(ACTION_KEYS) == len(set(ACTION_KEYS))


def test_read_actions_are_exactly_the_console_ones(table: RouteTable) -> None:
    assert {k for k, spec in table.actions.items() if spec.kind == "read"} == READ_ACTIONS


@pytest.mark.parametrize("key", ACTION_KEYS)
def test_params_never_carry_admin_pass(table: RouteTable, key: str) -> None:
    value = {"adminPass": "s3cret", "host": "c1", "name": "n", "type": "SOFT"}
    action = run(table, "POST", f"/v2.1/servers/{UUID}/action", action_body(key, value))
    assert "adminPass" not in action.params
    assert "s3cret" not in action.params.values()


@pytest.mark.parametrize(("key", "value", "params"), [
    ("resize", {"flavorRef": {"id": "2"}}, {}),
    ("migrate", {"host": ["c1", "c2"]}, {}),
    ("reboot", "HARD", {}),
    ("unshelve", None, {}),
    ("os-migrateLive", {"host": None, "block_migration": True}, {"host": None, "block_migration": True}),
])
def test_params_keep_only_listed_scalar_values(
    table: RouteTable, key: str, value: Any, params: dict[str, Any]
) -> None:
    action = run(table, "POST", f"/v2.1/servers/{UUID}/action", action_body(key, value))
    assert dict(action.params) == params


@pytest.mark.parametrize(("value", "params"), [
    (None, {}),
    ({}, {}),
    ({"locked_reason": "billing overdue"}, {"locked_reason": "billing overdue"}),
])
def test_lock_params_carry_locked_reason(table: RouteTable, value: Any, params: dict[str, Any]) -> None:
    action = run(table, "POST", f"/v2.1/servers/{UUID}/action", action_body("lock", value))
    assert action.kind == "lock"
    assert dict(action.params) == params


def test_unlock_does_not_pick_up_a_reason(table: RouteTable) -> None:
    action = run(table, "POST", f"/v2.1/servers/{UUID}/action", action_body("unlock", {"locked_reason": "x"}))
    assert action.kind == "unlock"
    assert dict(action.params) == {}


def test_escaped_action_key_is_read_decoded(table: RouteTable) -> None:
    action = run(table, "POST", f"/v2.1/servers/{UUID}/action", b'{"os-st\\u006fp": null}')
    assert action.name == "os-stop"


# --- section 3: server endpoints -------------------------------------------------------

# (method, route as in actions.yaml, body, expected kind, expected name)
SERVER_ROUTES: list[tuple[str, str, bytes, str, str]] = [
    ("POST", "", b'{"server": {"name": "vm"}}', "create", "create"),
    ("GET", "", b"", "read", "list"),
    ("GET", "detail", b"", "read", "list_detail"),
    ("GET", "{id}", b"", "read", "show"),
    ("PUT", "{id}", b'{"server": {"name": "new"}}', "state_change", "update"),
    ("DELETE", "{id}", b"", "delete", "delete"),
    ("POST", "{id}/action", b'{"os-stop": null}', "state_change", "os-stop"),
    ("GET", "{id}/metadata", b"", "read", "metadata_show"),
    ("POST", "{id}/metadata", b'{"metadata": {"k": "v"}}', "state_change", "metadata_update"),
    ("PUT", "{id}/metadata", b'{"metadata": {"k": "v"}}', "state_change", "metadata_update"),
    ("GET", "{id}/metadata/*", b"", "read", "metadata_show"),
    ("PUT", "{id}/metadata/*", b'{"meta": {"k": "v"}}', "state_change", "metadata_update"),
    ("DELETE", "{id}/metadata/*", b"", "state_change", "metadata_delete"),
    ("GET", "{id}/tags", b"", "read", "tags_show"),
    ("PUT", "{id}/tags", b'{"tags": ["a"]}', "state_change", "tags_update"),
    ("DELETE", "{id}/tags", b"", "state_change", "tags_delete"),
    ("GET", "{id}/tags/*", b"", "read", "tags_show"),
    ("PUT", "{id}/tags/*", b"", "state_change", "tags_update"),
    ("DELETE", "{id}/tags/*", b"", "state_change", "tags_delete"),
    ("GET", "{id}/os-volume_attachments", b"", "read", "volumes_show"),
    ("POST", "{id}/os-volume_attachments", b'{"volumeAttachment": {"volumeId": "v"}}', "state_change",
     "volume_attach"),
    ("GET", "{id}/os-volume_attachments/*", b"", "read", "volumes_show"),
    ("PUT", "{id}/os-volume_attachments/*", b'{"volumeAttachment": {"volumeId": "w"}}', "state_change",
     "volume_swap"),
    ("DELETE", "{id}/os-volume_attachments/*", b"", "state_change", "volume_detach"),
    ("GET", "{id}/os-interface", b"", "read", "interfaces_show"),
    ("POST", "{id}/os-interface", b'{"interfaceAttachment": {"port_id": "p"}}', "state_change",
     "interface_attach"),
    ("GET", "{id}/os-interface/*", b"", "read", "interfaces_show"),
    ("DELETE", "{id}/os-interface/*", b"", "state_change", "interface_detach"),
    ("GET", "{id}/migrations", b"", "read", "migrations_show"),
    ("GET", "{id}/migrations/*", b"", "read", "migrations_show"),
    ("DELETE", "{id}/migrations/*", b"", "state_change", "migration_abort"),
    ("POST", "{id}/migrations/*/action", b'{"force_complete": null}', "state_change",
     "migration_force_complete"),
    ("GET", "{id}/os-server-password", b"", "read", "password_show"),
    ("DELETE", "{id}/os-server-password", b"", "state_change", "password_clear"),
    ("POST", "{id}/remote-consoles", b'{"remote_console": {"protocol": "vnc"}}', "read",
     "remote_console_create"),
    ("GET", "{id}/shares", b"", "read", "shares_show"),
    ("POST", "{id}/shares", b'{"share": {"share_id": "s"}}', "state_change", "share_attach"),
    ("GET", "{id}/shares/*", b"", "read", "shares_show"),
    ("DELETE", "{id}/shares/*", b"", "state_change", "share_detach"),
    ("GET", "{id}/ips", b"", "read", "ips_show"),
    ("GET", "{id}/ips/*", b"", "read", "ips_show"),
    ("GET", "{id}/diagnostics", b"", "read", "diagnostics"),
    ("GET", "{id}/topology", b"", "read", "topology"),
    ("GET", "{id}/os-instance-actions", b"", "read", "instance_actions"),
    ("GET", "{id}/os-instance-actions/*", b"", "read", "instance_actions"),
    ("GET", "{id}/os-security-groups", b"", "read", "security_groups_show"),
    ("GET", "{id}/os-virtual-interfaces", b"", "read", "virtual_interfaces"),
]


def concrete(route: str) -> str:
    suffix = route.replace("{id}", UUID).replace("*", "x1")
    return "/v2.1/servers" + (f"/{suffix}" if suffix else "")


@pytest.mark.parametrize(("method", "route", "body", "kind", "name"), SERVER_ROUTES,
                         ids=[f"{r[0]} {r[1] or '/'}" for r in SERVER_ROUTES])
def test_every_server_endpoint_is_classified(
    table: RouteTable, method: str, route: str, body: bytes, kind: str, name: str
) -> None:
    action = run(table, method, concrete(route), body)
    assert (action.kind, action.name) == (kind, name)
    assert action.instance_id == (UUID if route.startswith("{id}") else None)
    assert action.method == method


def test_server_route_table_matches_actions_yaml_both_ways() -> None:
    raw = yaml.safe_load(ACTIONS.read_text(encoding="utf-8"))
    in_yaml = {(r["method"].upper(), r["path"]) for r in raw["server_routes"]}
    assert in_yaml == {(m, route) for m, route, *_ in SERVER_ROUTES}


@pytest.mark.parametrize(("method", "path", "body", "kind", "name"), [
    ("POST", "/v2.1/os-server-groups", b'{"server_group": {"name": "g"}}', "state_change", "os-server-groups"),
    ("DELETE", "/v2.1/os-server-groups/g1", b"", "state_change", "os-server-groups"),
    ("POST", "/v2.1/os-server-external-events", b'{"events": []}', "state_change", "os-server-external-events"),
    ("PUT", "/v2.1/os-quota-sets/p1", b'{"quota_set": {}}', "state_change", "os-quota-sets"),
    ("POST", "/v2.1/os-keypairs", b'{"keypair": {"name": "k"}}', "state_change", "os-keypairs"),
    ("DELETE", f"/v2.1/{PROJECT}/os-keypairs/k", b"", "state_change", "os-keypairs"),
    ("GET", "/v2.1/flavors/detail", b"", "read", "flavors"),
    ("GET", "/v2.1/os-hypervisors", b"", "read", "os-hypervisors"),
    ("HEAD", "/v2.1/limits", b"", "read", "limits"),
])
def test_other_resources_have_no_instance(
    table: RouteTable, method: str, path: str, body: bytes, kind: str, name: str
) -> None:
    action = run(table, method, path, body)
    assert (action.kind, action.name, action.instance_id) == (kind, name, None)


def test_other_resource_write_body_is_parsed(table: RouteTable) -> None:
    action = run(table, "POST", "/v2.1/os-keypairs", b'{"keypair": {"name": "k"}}')
    assert action.body == {"keypair": {"name": "k"}}
    with pytest.raises(BadRequest) as info:
        run(table, "POST", "/v2.1/os-keypairs", b'{"keypair": 1, "keypair": 2}')
    assert info.value.status == 400
    with pytest.raises(BadRequest) as info:
        run(table, "POST", "/v2.1/os-keypairs", b"{}", headers("application/xml"))
    assert info.value.status == 415


@pytest.mark.parametrize("verb", ["reboot", "shutdown", "startup"])
def test_host_power_actions_by_get_are_state_changes(table: RouteTable, verb: str) -> None:
    action = run(table, "GET", f"/v2.1/os-hosts/compute1/{verb}")
    assert action.kind == "state_change"


# --- section 4: URL forms -----------------------------------------------------------------

# (raw path, canonical path, legacy /v2, project in path)
URL_FORMS: list[tuple[str, str, bool, str | None]] = [
    (f"/v2.1/servers/{UUID}/action", f"/v2.1/servers/{UUID}/action", False, None),
    (f"/v2/servers/{UUID}/action", f"/v2/servers/{UUID}/action", True, None),
    (f"/v2.1/{PROJECT}/servers/{UUID}/action", f"/v2.1/{PROJECT}/servers/{UUID}/action", False, PROJECT),
    (f"/v2.1/0123-abcd/servers/{UUID}/action", f"/v2.1/0123-abcd/servers/{UUID}/action", False, "0123-abcd"),
    (f"/v2/{PROJECT}/servers/{UUID}/action", f"/v2/{PROJECT}/servers/{UUID}/action", True, PROJECT),
    (f"/compute/v2.1/servers/{UUID}/action", f"/compute/v2.1/servers/{UUID}/action", False, None),
    (f"/compute/v2/{PROJECT}/servers/{UUID}/action", f"/compute/v2/{PROJECT}/servers/{UUID}/action", True,
     PROJECT),
    (f"//v2.1//servers//{UUID}//action", f"/v2.1/servers/{UUID}/action", False, None),
    (f"/v2.1///servers/{UUID}/action", f"/v2.1/servers/{UUID}/action", False, None),
    (f"/v2.1/%73ervers/{UUID}/%61ction", f"/v2.1/servers/{UUID}/action", False, None),
    (f"/v2.1/servers/{UUID.replace('-', '%2D')}/action", f"/v2.1/servers/{UUID}/action", False, None),
    (f"/%76%32%2E%31/servers/{UUID}/action", f"/v2.1/servers/{UUID}/action", False, None),
    (f"/v2.1/servers%2F{UUID}%2faction", f"/v2.1/servers/{UUID}/action", False, None),
    (f"/v2.1/servers/{UUID.upper()}/action", f"/v2.1/servers/{UUID.upper()}/action", False, None),
    (f"/v2.1/servers/{UUID.replace('-', '')}/action", f"/v2.1/servers/{UUID.replace('-', '')}/action", False,
     None),
    (f"/v2.1/servers/urn:uuid:{UUID}/action", f"/v2.1/servers/urn:uuid:{UUID}/action", False, None),
    (f"/v2.1/os-volumes_boot/{UUID}/action", f"/v2.1/os-volumes_boot/{UUID}/action", False, None),
]


@pytest.mark.parametrize(("raw", "canonical", "legacy", "project"), URL_FORMS, ids=[r[0] for r in URL_FORMS])
def test_every_url_form_nova_accepts_classifies_the_same(
    table: RouteTable, raw: str, canonical: str, legacy: bool, project: str | None
) -> None:
    action = run(table, "POST", raw, b'{"os-stop": null}')
    assert (action.kind, action.name, action.instance_id) == ("state_change", "os-stop", UUID)
    assert action.path == canonical
    assert action.legacy_v2 is legacy
    assert action.project_in_path == project


@pytest.mark.parametrize(("raw", "forward"), [
    (f"/v2.1/servers/{UUID}/action", f"/v2.1/servers/{UUID}/action"),
    (f"/v2.1/servers/{UUID.upper()}/action", f"/v2.1/servers/{UUID.upper()}/action"),
    ("/v2.1/servers/detail?locked=true&name=a%20b", "/v2.1/servers/detail?locked=true&name=a%20b"),
    (f"//v2.1//servers//{UUID}", f"/v2.1/servers/{UUID}"),
    (f"/v2.1/%73ervers/{UUID}?x=%41", f"/v2.1/servers/{UUID}?x=%41"),
    (f"/v2.1/servers/{UUID}/metadata/k%3Av", f"/v2.1/servers/{UUID}/metadata/k:v"),
    ("/v2.1/servers?", "/v2.1/servers"),
])
def test_forward_path_is_raw_unless_decoding_was_needed(table: RouteTable, raw: str, forward: str) -> None:
    assert run(table, "GET", raw).forward_path == forward


@pytest.mark.parametrize("raw", [
    f"/v2.1/servers/./{UUID}/action",
    f"/v2.1/servers/{UUID}/../{UUID}/action",
    f"/v2.1/servers/%2e/{UUID}/action",
    f"/v2.1/servers/{UUID}/%2E%2E/{UUID}/action",
    f"/v2.1/servers/{UUID}/action/.",
    "/v2.1/servers/%FF/action",
    "/v2.1/servers/%C3%28/action",
    f"/v2.1/servers/{UUID}%00/action",
    f"/v2.1/servers/{UUID}\\action",
    f"/v2.1/servers/{UUID}%5Caction",
    f"/v2.1/servers/%7B{UUID}%7D/action",
    f"/v2.1/servers/{UUID}/action%0A",
    f"/v2.1/servers/{UUID}/ac%25tion",
    f"v2.1/servers/{UUID}/action",
])
def test_ambiguous_paths_are_bad_requests(table: RouteTable, raw: str) -> None:
    with pytest.raises(BadRequest) as info:
        run(table, "POST", raw, b'{"os-stop": null}')
    assert info.value.status == 400


@pytest.mark.parametrize("raw", [
    f"/v2.1/servers/{UUID}/action/",
    f"/v2.1/servers/{UUID}/",
    "/v2.1/servers/",
    f"/v2.1/{PROJECT}/servers/{UUID}/action/",
])
def test_trailing_slash_on_a_write_is_not_found(table: RouteTable, raw: str) -> None:
    with pytest.raises(NotFound) as info:
        run(table, "POST", raw, b'{"os-stop": null}')
    assert info.value.status == 404


def test_trailing_slash_on_a_read_is_still_a_read(table: RouteTable) -> None:
    action = run(table, "GET", f"/v2.1/servers/{UUID}/")
    assert (action.kind, action.name, action.instance_id) == ("read", "show", UUID)


@pytest.mark.parametrize(("method", "raw"), [
    ("POST", "/v2.1/servers/not-a-uuid/action"),
    ("POST", "/v2.1/servers/detail/action"),
    ("DELETE", "/v2.1/servers/12345"),
    ("PUT", f"/v2.1/servers/{UUID}x/metadata"),
])
def test_writes_to_a_non_uuid_server_are_not_found(table: RouteTable, method: str, raw: str) -> None:
    with pytest.raises(NotFound, match="could not be found"):
        run(table, method, raw, b'{"os-stop": null}' if method != "DELETE" else b"")


def test_reads_of_a_non_uuid_server_are_reads_without_instance(table: RouteTable) -> None:
    action = run(table, "GET", "/v2.1/servers/not-a-uuid")
    assert (action.kind, action.name, action.instance_id) == ("read", "show", None)


@pytest.mark.parametrize(("method", "raw", "kind", "name"), [
    ("GET", f"/v2.1/servers/{UUID}/frobnicate", "read", "unknown_route"),
    ("POST", f"/v2.1/servers/{UUID}/frobnicate", "unknown", "unknown_route"),
    ("PATCH", f"/v2.1/servers/{UUID}", "unknown", "unknown_route"),
    ("HEAD", f"/v2.1/servers/{UUID}", "read", "unknown_route"),
    ("POST", f"/v2.1/servers/{UUID}/Action", "unknown", "unknown_route"),
    ("POST", f"/v2.1/servers/{UUID}/action.json", "unknown", "unknown_route"),
    ("POST", f"/v2.1/servers/{UUID}/action;x=1", "unknown", "unknown_route"),
    ("POST", f"/v2.1/servers/{UUID}/consoles", "unknown", "unknown_route"),
    ("POST", f"/v2.1/Servers/{UUID}/action", "unknown", "unknown_route"),
    ("POST", f"/v2.1/ABCDEF/servers/{UUID}/action", "unknown", "unknown_route"),
    ("POST", f"/v2.1/{PROJECT}/{PROJECT}/servers/{UUID}/action", "unknown", "unknown_route"),
    ("GET", "/v2.1/os-frobs", "read", "unknown_route"),
    ("DELETE", "/v2.1/os-frobs/1", "unknown", "unknown_route"),
    ("POST", f"/servers/{UUID}/action", "unknown", "unversioned"),
    ("POST", f"/v3/servers/{UUID}/action", "unknown", "unversioned"),
    ("GET", "/", "read", "unversioned"),
    ("GET", "/v2.1", "read", "version_document"),
    ("GET", f"/v2.1/{PROJECT}", "read", "version_document"),
    ("POST", "/v2.1/", "unknown", "version_document"),
])
def test_unknown_routes_are_reads_for_get_and_unknown_otherwise(
    table: RouteTable, method: str, raw: str, kind: str, name: str
) -> None:
    action = run(table, method, raw, b'{"os-stop": null}' if method == "POST" else b"")
    assert (action.kind, action.name, action.instance_id) == (kind, name, None)
    assert not action.is_state_change


@pytest.mark.parametrize("header", ["X-HTTP-Method-Override", "x-http-method", "X-Method-Override"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_method_override_headers_are_refused(table: RouteTable, header: str, method: str) -> None:
    hdrs = headers()
    hdrs[header] = "DELETE"
    with pytest.raises(BadRequest, match="override") as info:
        run(table, method, f"/v2.1/servers/{UUID}", b"" if method == "GET" else b'{"server": {}}', hdrs)
    assert info.value.status == 400


@pytest.mark.parametrize("method", ["GET", "HEAD", "DELETE"])
def test_body_on_get_head_delete_is_refused(table: RouteTable, method: str) -> None:
    with pytest.raises(BadRequest, match="must not carry a body"):
        run(table, method, f"/v2.1/servers/{UUID}", b"{}")


# --- section 4: bodies -----------------------------------------------------------------------

BAD_BODIES: list[tuple[str, bytes]] = [
    ("two actions", b'{"suspend": null, "resume": null}'),
    ("no action", b"{}"),
    ("empty", b""),
    ("duplicate top-level key", b'{"reboot": {"type": "SOFT"}, "reboot": {"type": "HARD"}}'),
    ("duplicate nested key", b'{"reboot": {"type": "SOFT", "type": "HARD"}}'),
    ("duplicate deep key", b'{"createImage": {"name": "a", "metadata": {"x": [{"k": 1, "k": 2}]}}}'),
    ("escaped duplicate key", b'{"reboot": {"type": "SOFT", "\\u0074ype": "HARD"}}'),
    ("unknown action", b'{"no-such-action": null}'),
    ("wrong-case key", b'{"OS-STOP": null}'),
    ("wrong-case key 2", b'{"Suspend": null}'),
    ("migration key on server action", b'{"force_complete": null}'),
    ("byte order mark", b'\xef\xbb\xbf{"suspend": null}'),
    ("non-UTF-8", b'{"suspend": "\xff"}'),
    ("latin-1 key", b'{"r\xe9boot": null}'),
    ("not JSON", b"not json"),
    ("truncated JSON", b'{"suspend": '),
    ("array", b'[{"suspend": null}]'),
    ("empty array", b"[]"),
    ("string", b'"suspend"'),
    ("number", b"1"),
    ("null", b"null"),
    ("true", b"true"),
]


@pytest.mark.parametrize("body", [b for _, b in BAD_BODIES], ids=[n for n, _ in BAD_BODIES])
def test_ambiguous_or_malformed_action_bodies_are_bad_requests(table: RouteTable, body: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        run(table, "POST", f"/v2.1/servers/{UUID}/action", body)
    assert info.value.status == 400


@pytest.mark.parametrize(("body", "message"), [
    (b'{"no-such-action": null}', "There is no such action: no-such-action"),
    (b'{"OS-STOP": null}', "There is no such action: OS-STOP"),
    (b'{"a": 1, "b": 2}', "Malformed request body"),
])
def test_refusal_messages_follow_nova(table: RouteTable, body: bytes, message: str) -> None:
    with pytest.raises(BadRequest) as info:
        run(table, "POST", f"/v2.1/servers/{UUID}/action", body)
    assert info.value.message == message


def test_migration_action_keys_are_their_own_table(table: RouteTable) -> None:
    path = f"/v2.1/servers/{UUID}/migrations/7/action"
    with pytest.raises(BadRequest, match="no such action: os-stop"):
        run(table, "POST", path, b'{"os-stop": null}')


@pytest.mark.parametrize("content_type", [
    None,
    "",
    "application/json",
    "application/json; charset=UTF-8",
    "application/json;charset=latin-1",
    "text/plain",
    "text/plain; charset=utf-8",
    "application/vnd.openstack.compute+json",
    "application/vnd.openstack.compute+json; version=2.1",
])
def test_content_types_nova_parses_as_json_are_accepted(table: RouteTable, content_type: str | None) -> None:
    action = run(table, "POST", f"/v2.1/servers/{UUID}/action", b'{"os-stop": null}', headers(content_type))
    assert action.name == "os-stop"


@pytest.mark.parametrize("content_type", [
    "APPLICATION/JSON",
    "Application/Json",
    "application/xml",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=x",
    "text/json",
    "application/json-patch+json",
    "*/*",
])
def test_other_content_types_are_415(table: RouteTable, content_type: str) -> None:
    with pytest.raises(BadRequest, match="Unsupported Content-Type") as info:
        run(table, "POST", f"/v2.1/servers/{UUID}/action", b'{"os-stop": null}', headers(content_type))
    assert info.value.status == 415


def nested(levels: int) -> bytes:
    """A body whose value tree is ``levels`` deep (the leaf ``1`` counts as a level)."""
    inner = "1"
    for _ in range(levels - 1):
        inner = '{"a": ' + inner + "}"
    return inner.encode()


def test_json_depth_limit_is_exact() -> None:
    assert parse_json_body(nested(5), JSON, max_depth=5) is not None
    with pytest.raises(BadRequest, match="deeper than 5"):
        parse_json_body(nested(6), JSON, max_depth=5)


def test_json_deeper_than_default_limit_is_refused_by_classify(table: RouteTable) -> None:
    body = b'{"createImage": {"name": "x", "metadata": ' + nested(31) + b"}}"
    with pytest.raises(BadRequest, match="deeper than 32"):
        run(table, "POST", f"/v2.1/servers/{UUID}/action", body)
    shallow = b'{"createImage": {"name": "x", "metadata": ' + nested(29) + b"}}"
    assert run(table, "POST", f"/v2.1/servers/{UUID}/action", shallow).name == "createImage"


def test_json_deep_enough_to_exhaust_the_parser_is_a_bad_request(table: RouteTable) -> None:
    body = b"[" * 200_000 + b"]" * 200_000
    with pytest.raises(BadRequest) as info:
        run(table, "POST", f"/v2.1/servers/{UUID}/action", body)
    assert info.value.status == 400


def test_parse_json_body_returns_none_for_an_empty_body() -> None:
    assert parse_json_body(b"", "", max_depth=32) is None


# --- section 5: microversions ---------------------------------------------------------------

MICROVERSIONS: list[tuple[dict[str, str], tuple[int, int]]] = [
    ({}, (2, 1)),
    ({"OpenStack-API-Version": "compute 2.73"}, (2, 73)),
    ({"openstack-api-version": "COMPUTE 2.5"}, (2, 5)),
    ({"OpenStack-API-Version": "compute 2.10, compute 2.73"}, (2, 73)),
    ({"OpenStack-API-Version": "compute 2.73,compute 2.10"}, (2, 10)),
    ({"OpenStack-API-Version": "compute 2.73, volume 3.0"}, (2, 73)),
    ({"OpenStack-API-Version": "compute latest"}, (2, 104)),
    ({"OpenStack-API-Version": "compute 2.104"}, (2, 104)),
    ({"OpenStack-API-Version": "compute 2.0, compute 2.1"}, (2, 1)),
    ({"OpenStack-API-Version": "compute 2.60", "X-OpenStack-Nova-API-Version": "2.10"}, (2, 60)),
    ({"OpenStack-API-Version": "compute 2.60", "X-OpenStack-Nova-API-Version": "garbage"}, (2, 60)),
    ({"OpenStack-API-Version": "volume 3.0", "X-OpenStack-Nova-API-Version": "2.10"}, (2, 10)),
    ({"OpenStack-API-Version": "compute", "X-OpenStack-Nova-API-Version": "2.11"}, (2, 11)),
    ({"OpenStack-API-Version": "volume 3.0"}, (2, 1)),
    ({"X-OpenStack-Nova-API-Version": "2.20"}, (2, 20)),
    ({"X-OpenStack-Nova-API-Version": "2.10, 2.73"}, (2, 73)),
    ({"X-OpenStack-Nova-API-Version": "2.10,2.73"}, (2, 73)),
    ({"X-OpenStack-Nova-API-Version": "latest"}, (2, 104)),
]


@pytest.mark.parametrize(("hdrs", "expected"), MICROVERSIONS, ids=[str(h) for h, _ in MICROVERSIONS])
def test_effective_microversion(table: RouteTable, hdrs: dict[str, str], expected: tuple[int, int]) -> None:
    assert effective_microversion(CIMultiDict(hdrs), table) == expected
    action = run(table, "GET", f"/v2.1/servers/{UUID}", hdrs=CIMultiDict(hdrs))
    assert action.microversion == expected


@pytest.mark.parametrize("value", ["2.07", "2", "2.", ".1", "02.1", "2.1.1", "abc", "2.x", "v2.1", "-2.1", "2,1"])
@pytest.mark.parametrize("header", ["OpenStack-API-Version", "X-OpenStack-Nova-API-Version"])
def test_invalid_microversion_is_400(table: RouteTable, header: str, value: str) -> None:
    text = f"compute {value}" if header == "OpenStack-API-Version" else value
    if header == "X-OpenStack-Nova-API-Version" and "," in value:
        text = "2.1, garbage"
    with pytest.raises(BadRequest, match="invalid format") as info:
        run(table, "GET", f"/v2.1/servers/{UUID}", hdrs=CIMultiDict({header: text}))
    assert info.value.status == 400


@pytest.mark.parametrize("value", ["2.999", "2.105", "3.0", "1.0", "2.0", "1.99"])
def test_out_of_range_microversion_is_406(table: RouteTable, value: str) -> None:
    with pytest.raises(BadRequest, match=re.escape(f"Version {value} is not supported")) as info:
        effective_microversion(CIMultiDict({"OpenStack-API-Version": f"compute {value}"}), table)
    assert info.value.status == 406
    assert "Minimum is 2.1 and maximum is 2.104" in info.value.message


@pytest.mark.parametrize("hdrs", [
    {"OpenStack-API-Version": "compute 2.73"},
    {"X-OpenStack-Nova-API-Version": "2.73"},
    {"OpenStack-API-Version": "compute 2.999"},
    {"OpenStack-API-Version": "compute 2.07"},
])
def test_legacy_v2_ignores_microversion_headers(table: RouteTable, hdrs: dict[str, str]) -> None:
    action = run(table, "POST", f"/v2/servers/{UUID}/action", b'{"os-stop": null}', CIMultiDict(hdrs))
    assert action.legacy_v2
    assert action.microversion == (2, 1)


def test_at_least_compares_the_effective_microversion(table: RouteTable) -> None:
    action = run(table, "GET", f"/v2.1/servers/{UUID}", hdrs=CIMultiDict({"OpenStack-API-Version": "compute 2.73"}))
    assert action.at_least(2, 73)
    assert action.at_least(2, 9)
    assert not action.at_least(2, 74)


# --- helpers and the table loader ------------------------------------------------------------

@pytest.mark.parametrize(("raw", "canonical", "query", "changed"), [
    ("/v2.1/servers", "/v2.1/servers", "", False),
    ("/v2.1/servers?a=1&b=%20", "/v2.1/servers", "a=1&b=%20", False),
    ("/v2.1//servers", "/v2.1/servers", "", True),
    ("/v2.1/%73ervers", "/v2.1/servers", "", True),
])
def test_normalise_path(raw: str, canonical: str, query: str, changed: bool) -> None:
    assert normalise_path(raw) == (canonical, query, changed)


def test_route_table_loads_kinds_and_versions(table: RouteTable) -> None:
    assert (table.min_version, table.max_version) == ((2, 1), (2, 104))
    assert {spec.kind for spec in table.actions.values()} <= set(KINDS)
    assert table.server_collections == {"servers", "os-volumes_boot"}
    assert table.migration_actions["force_complete"].name == "migration_force_complete"


@pytest.mark.parametrize(("text", "match"), [
    ("- a list", "must hold a mapping"),
    ("microversion: {min: '2.1', max: '2.104'}\n", "malformed"),
    ("{unclosed", "cannot load"),
    ("microversion: {min: '2.1', max: '2.104'}\nserver_collections: [servers]\n"
     "server_routes: [{path: '', method: GET, kind: nonsense, name: x}]\nactions: {}\n", "is not a kind"),
    ("microversion: {min: '2.1', max: '2.104'}\nserver_collections: [servers]\nserver_routes: []\n"
     "actions: {reboot: {kind: nonsense}}\n", "reboot.kind"),
    ("microversion: {min: 'two', max: '2.104'}\nserver_collections: [servers]\nserver_routes: []\n"
     "actions: {}\n", "malformed"),
])
def test_bad_route_tables_are_config_errors(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "actions.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=match):
        load_route_table(path)


def test_missing_route_table_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot load"):
        load_route_table(tmp_path / "absent.yaml")
