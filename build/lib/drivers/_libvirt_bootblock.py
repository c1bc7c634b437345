"""Writing a boot block into a libvirt domain: its definitions and its managed-save image.

libvirt keeps a domain's XML in up to three places: the persistent definition
(the next boot's), the live one (a running domain's) and the one inside a
managed-save image, which a restore boots from and ``virDomainSetMetadata`` does
not reach. Statelock's qemu hook reads the XML libvirt is about to start from, so
a block goes into each place that exists. Calls here block and raise
``libvirt.libvirtError``; the driver translates it.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Any

import libvirt

from drivers._libvirt_metadata import (
    STATELOCK_NS,
    STATELOCK_PREFIX,
    DomainMetadata,
    parse_domain_xml,
    render_statelock,
    with_statelock,
)
from drivers.base import DriverError


def read_metadata(dom: Any) -> DomainMetadata:
    """The records in the domain's persistent definition (a transient one's live one).

    Raises ``DriverError`` when libvirt returns XML that does not parse.
    """
    # NOTE: the persistent (inactive) definition is the one the next boot uses;
    # for a transient domain libvirt returns the live one.
    try:
        return parse_domain_xml(str(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
    except ET.ParseError as exc:
        raise DriverError(f"libvirt returned unreadable domain XML: {exc}") from exc


def place(dom: Any, reason: str, lock_id: str | None) -> None:
    """Record a block (replacing one already there) and turn autostart off while it lasts."""
    metadata = read_metadata(dom)
    if metadata.boot_block_reason is not None:
        autostart = metadata.autostart_before_block
    else:
        autostart = bool(dom.isPersistent()) and bool(dom.autostart())
    # NOTE: the image first: a restore boots from it, so a failure in between
    # leaves the hypervisor refusing rather than allowing.
    _write_saved_image(dom, metadata, reason, autostart, lock_id)
    _write_definitions(dom, metadata, reason, autostart, lock_id)
    if autostart:
        dom.setAutostart(0)


def lift(dom: Any) -> None:
    """Remove the block wherever it is recorded, and give the domain its autostart back."""
    metadata = read_metadata(dom)
    if metadata.boot_block_reason is not None:
        _write_definitions(dom, metadata, None, False, None)
    # NOTE: also when the definition holds no block: an earlier lift may have
    # failed between the two writes.
    _write_saved_image(dom, metadata, None, False, None)
    # NOTE: autostart last, so a failure before it leaves the safer state.
    if metadata.boot_block_reason is not None and metadata.autostart_before_block \
            and dom.isPersistent():
        dom.setAutostart(1)


def _write_definitions(
    dom: Any, metadata: DomainMetadata, reason: str | None, autostart: bool, lock_id: str | None
) -> None:
    flags = 0
    if dom.isPersistent():
        flags |= libvirt.VIR_DOMAIN_AFFECT_CONFIG
    if dom.isActive():
        flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
    xml = render_statelock(metadata.statelock_owner, reason, autostart, lock_id)
    key = None if xml is None else STATELOCK_PREFIX
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, xml, key, STATELOCK_NS, flags)


def _write_saved_image(
    dom: Any, metadata: DomainMetadata, reason: str | None, autostart: bool, lock_id: str | None
) -> None:
    if dom.isActive() or not dom.hasManagedSaveImage(0):
        return
    try:
        # NOTE: SECURE, or the rewritten image would lose the guest's passwords.
        saved = str(dom.managedSaveGetXMLDesc(libvirt.VIR_DOMAIN_SAVE_IMAGE_XML_SECURE))
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_SUPPORT:
            return  # NOTE: test:///default simulates the image and keeps no XML in it
        raise
    try:
        if reason is None and parse_domain_xml(saved).boot_block_reason is None:
            return
        rewritten = with_statelock(saved, metadata.statelock_owner, reason, autostart, lock_id)
    except ET.ParseError as exc:
        raise DriverError(f"libvirt returned an unreadable managed-save XML: {exc}") from exc
    dom.managedSaveDefineXML(rewritten, 0)
