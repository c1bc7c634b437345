"""Nova's JSON views of driver instances: the server list, detail and version documents.

Pure functions; the driver dispatcher answers Nova's read routes with them so that
unchanged clients (openstacksdk, the openstack CLI) work against a bare hypervisor.
"""

from __future__ import annotations

from typing import Any

from drivers import Instance


def server_view(inst: Instance, base_url: str, detail: bool) -> dict[str, Any]:
    """An instance in Nova's server representation (list entry or detail)."""
    links = [{"rel": "self", "href": f"{base_url}/v2.1/servers/{inst.id}"},
             {"rel": "bookmark", "href": f"{base_url}/servers/{inst.id}"}]
    if not detail:
        return {"id": inst.id, "name": inst.name, "links": links}
    return {
        "id": inst.id, "name": inst.name, "status": inst.nova_status,
        "tenant_id": inst.project_id, "user_id": inst.user_id,
        "created": inst.created, "updated": inst.created, "links": links,
        "addresses": {}, "metadata": {}, "image": "", "flavor": {},
        "hostId": "", "accessIPv4": "", "accessIPv6": "", "key_name": None,
        "OS-EXT-STS:vm_state": inst.vm_state, "OS-EXT-STS:power_state": inst.nova_power_state,
        "OS-EXT-STS:task_state": None, "OS-EXT-SRV-ATTR:host": inst.host,
        "OS-EXT-SRV-ATTR:hypervisor_hostname": inst.host,
        "statelock:boot_blocked": inst.boot_blocked,
    }


def versions(base_url: str, one: bool) -> dict[str, Any]:
    """Nova's version documents (``GET /`` lists them, ``GET /v2.1`` shows one)."""
    doc = {"id": "v2.1", "status": "CURRENT", "version": "2.104", "min_version": "2.1",
           "updated": "2013-07-23T11:33:21Z", "links": [{"rel": "self", "href": f"{base_url}/v2.1/"}],
           "media-types": [{"base": "application/json",
                            "type": "application/vnd.openstack.compute+json;version=2.1"}]}
    return {"version": doc} if one else {"versions": [doc]}
