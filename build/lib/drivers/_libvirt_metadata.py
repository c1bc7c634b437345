"""Statelock's (and Nova's) records in a libvirt domain's ``<metadata>``: parse and render.

libvirt keeps one element per namespace, so Statelock's records live in one
container element (written through ``virDomainSetMetadata`` with the prefix
``statelock``)::

    <statelock:instance xmlns:statelock="http://statelock.dev/xmlns/statelock/1.0">
      <statelock:owner project_id="demo" user_id="alice"/>
      <statelock:bootblock reason="billing: invoice 881" lock_id="lk-..." autostart="1"/>
    </statelock:instance>

A bare top-level ``<statelock:owner/>`` (a domain defined by hand) is read too, and
so is Nova's ``<nova:instance><nova:owner>`` with its ``<nova:creationTime>``.
``autostart`` remembers whether the domain autostarted before the block cleared it;
``lock_id`` names the Statelock lock behind the block (records written before it
existed have none). Statelock's qemu hook (``drivers.libvirt_hook``) reads the
bootblock element to refuse the start; the namespace is the hook's.
"""

from __future__ import annotations

import dataclasses
import re
import xml.etree.ElementTree as ET

from drivers._config import Owner
from drivers.libvirt_hook.verdict import STATELOCK_NS

__all__ = ["NOVA_NS", "STATELOCK_NS", "STATELOCK_PREFIX", "DomainMetadata", "parse_domain_xml",
           "render_statelock", "with_statelock"]

STATELOCK_PREFIX = "statelock"
NOVA_NS = "http://openstack.org/xmlns/libvirt/nova/1.1"
_QEMU_NS = "http://libvirt.org/schemas/domain/qemu/1.0"

# NOTE: ElementTree's prefix registry is process-wide; these fixed pairs only make a
# rewritten domain XML (see with_statelock) keep the prefixes libvirt and Nova use.
for _prefix, _uri in ((STATELOCK_PREFIX, STATELOCK_NS), ("nova", NOVA_NS), ("qemu", _QEMU_NS)):
    ET.register_namespace(_prefix, _uri)

_NOVA_TIME = re.compile(r"^(\d{4}-\d{2}-\d{2}) (\d{2}:\d{2}:\d{2})$")


@dataclasses.dataclass(frozen=True)
class DomainMetadata:
    """What a domain's ``<metadata>`` says about ownership, its boot block and creation."""

    statelock_owner: Owner | None = None
    nova_owner: Owner | None = None
    boot_block_reason: str | None = None
    boot_block_lock_id: str | None = None
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
        boot_block_lock_id=None if bootblock is None else bootblock.get("lock_id") or None,
        autostart_before_block=bootblock is not None and bootblock.get("autostart") == "1",
        created=created,
    )


def _container(
    owner: Owner | None,
    boot_block_reason: str | None,
    autostart_before_block: bool,
    lock_id: str | None,
    namespace: str,
) -> ET.Element | None:
    if owner is None and boot_block_reason is None:
        return None
    ns = f"{{{namespace}}}" if namespace else ""
    root = ET.Element(f"{ns}instance")
    if owner is not None:
        ET.SubElement(root, f"{ns}owner", project_id=owner.project_id, user_id=owner.user_id)
    if boot_block_reason is not None:
        block = ET.SubElement(root, f"{ns}bootblock", reason=boot_block_reason)
        if lock_id:
            block.set("lock_id", lock_id)
        if autostart_before_block:
            block.set("autostart", "1")
    return root


def render_statelock(
    owner: Owner | None,
    boot_block_reason: str | None,
    autostart_before_block: bool,
    lock_id: str | None = None,
) -> str | None:
    """The un-prefixed container XML for ``virDomainSetMetadata``, or ``None`` if empty.

    libvirt puts the element and its children into ``STATELOCK_NS`` itself.
    ``None`` means the element should be removed. ``lock_id`` is recorded with a
    boot block only.
    """
    root = _container(owner, boot_block_reason, autostart_before_block, lock_id, "")
    return None if root is None else ET.tostring(root, encoding="unicode")


def with_statelock(
    domain_xml: str,
    owner: Owner | None,
    boot_block_reason: str | None,
    autostart_before_block: bool,
    lock_id: str | None = None,
) -> str:
    """``domain_xml`` with its Statelock container replaced by these records (or removed).

    For the domain XML kept in a managed-save image, which a restore boots from and
    ``virDomainSetMetadata`` does not reach. Everything else is kept; namespace
    prefixes other than Statelock's, Nova's and QEMU's may be renamed (libvirt
    reads them by namespace). Raises ``xml.etree.ElementTree.ParseError`` for
    malformed input.
    """
    root = ET.fromstring(domain_xml)
    metadata = root.find("metadata")
    if metadata is None:
        metadata = ET.SubElement(root, "metadata")
    for old in metadata.findall(f"{{{STATELOCK_NS}}}instance"):
        metadata.remove(old)
    container = _container(owner, boot_block_reason, autostart_before_block, lock_id, STATELOCK_NS)
    if container is not None:
        metadata.append(container)
    return ET.tostring(root, encoding="unicode")
