"""Statelock's (and Nova's) records in a libvirt domain's ``<metadata>``: parse and render.

libvirt keeps one element per namespace, so Statelock's records live in one
container element (written through ``virDomainSetMetadata`` with the prefix
``statelock``)::

    <statelock:instance xmlns:statelock="http://statelock.dev/xmlns/statelock/1.0">
      <statelock:owner project_id="demo" user_id="alice"/>
      <statelock:bootblock reason="billing: invoice 881" autostart="1"/>
    </statelock:instance>

A bare top-level ``<statelock:owner/>`` (a domain defined by hand) is read too, and
so is Nova's ``<nova:instance><nova:owner>`` with its ``<nova:creationTime>``.
``autostart`` remembers whether the domain autostarted before the block cleared it.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET

from drivers._config import Owner

STATELOCK_NS = "http://statelock.dev/xmlns/statelock/1.0"
STATELOCK_PREFIX = "statelock"
NOVA_NS = "http://openstack.org/xmlns/libvirt/nova/1.1"

_NOVA_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})$")


@dataclasses.dataclass(frozen=True)
class DomainMetadata:
    """What a domain's ``<metadata>`` says about ownership, its boot block and creation."""

    statelock_owner: Owner | None = None
    nova_owner: Owner | None = None
    boot_block_reason: str | None = None
    autostart_before_block: bool = False
    created: str | None = None

    @property
    def owner(self) -> Owner | None:
        """Statelock's owner record if there is one, else Nova's, else ``None``."""
        return self.statelock_owner or self.nova_owner


def _owner(element: ET.Element | None) -> Owner | None:
    if element is None:
        return None
    project_id = element.get("project_id", "")
    user_id = element.get("user_id", "")
    return Owner(project_id, user_id) if project_id and user_id else None


def _nova(element: ET.Element) -> tuple[Owner | None, str | None]:
    user = element.find(f"{{{NOVA_NS}}}owner/{{{NOVA_NS}}}user")
    project = element.find(f"{{{NOVA_NS}}}owner/{{{NOVA_NS}}}project")
    owner = None
    if user is not None and project is not None and user.get("uuid") and project.get("uuid"):
        owner = Owner(project_id=project.get("uuid", ""), user_id=user.get("uuid", ""))
    created = None
    match = _NOVA_TIME.match(element.findtext(f"{{{NOVA_NS}}}creationTime", "").strip())
    if match:
        created = f"{match.group(1)}T{match.group(2)}Z"
    return owner, created


def parse_domain_xml(domain_xml: str) -> DomainMetadata:
    """Read the records from a domain's full XML (``virDomainGetXMLDesc``).

    Missing or partial records read as ``None``; a malformed document raises
    ``xml.etree.ElementTree.ParseError``.
    """
    metadata = ET.fromstring(domain_xml).find("metadata")
    if metadata is None:
        return DomainMetadata()
    statelock_owner = nova_owner = None
    created = None
    bootblock: ET.Element | None = None
    for element in metadata:
        if element.tag == f"{{{STATELOCK_NS}}}instance":
            statelock_owner = _owner(element.find(f"{{{STATELOCK_NS}}}owner"))
            bootblock = element.find(f"{{{STATELOCK_NS}}}bootblock")
        elif element.tag == f"{{{STATELOCK_NS}}}owner":
            statelock_owner = _owner(element)
        elif element.tag == f"{{{NOVA_NS}}}instance":
            nova_owner, created = _nova(element)
    return DomainMetadata(
        statelock_owner=statelock_owner,
        nova_owner=nova_owner,
        boot_block_reason=None if bootblock is None else bootblock.get("reason", ""),
        autostart_before_block=bootblock is not None and bootblock.get("autostart") == "1",
        created=created,
    )


def render_statelock(
    owner: Owner | None, boot_block_reason: str | None, autostart_before_block: bool
) -> str | None:
    """The un-prefixed container XML for ``virDomainSetMetadata``, or ``None`` if empty.

    libvirt puts the element and its children into ``STATELOCK_NS`` itself.
    ``None`` means the element should be removed.
    """
    if owner is None and boot_block_reason is None:
        return None
    root = ET.Element("instance")
    if owner is not None:
        ET.SubElement(root, "owner", project_id=owner.project_id, user_id=owner.user_id)
    if boot_block_reason is not None:
        block = ET.SubElement(root, "bootblock", reason=boot_block_reason)
        if autostart_before_block:
            block.set("autostart", "1")
    return ET.tostring(root, encoding="unicode")
