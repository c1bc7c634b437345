"""Statelock's records in a libvirt domain's metadata (drivers/_libvirt_metadata.py): lock ids, images.

How libvirt stores what ``render_statelock`` returns is covered on libvirt itself
(tests/integration/test_libvirt_driver.py and test_qemu_guest.py).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from drivers._config import Owner
from drivers._libvirt_metadata import (
    NOVA_NS,
    STATELOCK_NS,
    DomainMetadata,
    parse_domain_xml,
    render_statelock,
    with_statelock,
)

ALICE = Owner("demo", "alice")


def domain(metadata: str | None) -> str:
    inner = "" if metadata is None else f"<metadata>{metadata}</metadata>"
    return f"<domain type='kvm'><name>vm</name>{inner}<devices><serial type='pty'/></devices></domain>"


def container(body: str) -> str:
    return f'<statelock:instance xmlns:statelock="{STATELOCK_NS}">{body}</statelock:instance>'


PARSED = [
    ("a block with its lock id",
     container('<statelock:bootblock reason="hold" lock_id="lk-1" autostart="1"/>'),
     DomainMetadata(boot_block_reason="hold", boot_block_lock_id="lk-1", autostart_before_block=True)),
    ("a record written before lock ids", container('<statelock:bootblock reason="hold"/>'),
     DomainMetadata(boot_block_reason="hold")),
    ("an empty lock id", container('<statelock:bootblock reason="hold" lock_id=""/>'),
     DomainMetadata(boot_block_reason="hold")),
    ("no block", container('<statelock:owner project_id="demo" user_id="alice"/>'),
     DomainMetadata(statelock_owner=ALICE)),
]


@pytest.mark.parametrize(("metadata", "expected"), [(m, e) for _, m, e in PARSED],
                         ids=[name for name, _, _ in PARSED])
def test_parse_reads_the_lock_id(metadata: str, expected: DomainMetadata) -> None:
    assert parse_domain_xml(domain(metadata)) == expected


@pytest.mark.parametrize(("args", "xml"), [
    ((ALICE, "hold", False, "lk-1"),
     '<instance><owner project_id="demo" user_id="alice" /><bootblock reason="hold" lock_id="lk-1" />'
     "</instance>"),
    ((None, "hold", True, None), '<instance><bootblock reason="hold" autostart="1" /></instance>'),
    ((ALICE, None, False, "lk-1"), '<instance><owner project_id="demo" user_id="alice" /></instance>'),
    ((None, None, False, "lk-1"), None),
], ids=["block with lock id", "old-style block", "lock id without a block is dropped", "nothing"])
def test_render_statelock(args: tuple[Owner | None, str | None, bool, str | None], xml: str | None) -> None:
    assert render_statelock(*args) == xml


NOVA = (f'<nova:instance xmlns:nova="{NOVA_NS}"><nova:owner><nova:user uuid="u-1"/>'
        '<nova:project uuid="p-1"/></nova:owner></nova:instance>')


@pytest.mark.parametrize(("before", "tags", "nova_owner"), [
    (None, ["name", "devices", "metadata"], None),
    ("", ["name", "metadata", "devices"], None),
    (NOVA, ["name", "metadata", "devices"], Owner("p-1", "u-1")),
    (NOVA + container('<statelock:bootblock reason="old" lock_id="lk-0"/>'),
     ["name", "metadata", "devices"], Owner("p-1", "u-1")),
], ids=["no metadata", "empty metadata", "Nova's only", "an older block"])
def test_with_statelock_puts_the_block_into_a_saved_domain_xml(
    before: str | None, tags: list[str], nova_owner: Owner | None
) -> None:
    rewritten = with_statelock(domain(before), ALICE, "hold", False, "lk-1")
    parsed = parse_domain_xml(rewritten)
    assert (parsed.boot_block_reason, parsed.boot_block_lock_id, parsed.statelock_owner) == (
        "hold", "lk-1", ALICE)
    assert parsed.nova_owner == nova_owner
    root = ET.fromstring(rewritten)
    assert [e.tag for e in root] == tags
    assert root.find("devices/serial") is not None
    assert len(root.findall(f"metadata/{{{STATELOCK_NS}}}instance")) == 1

    lifted = with_statelock(rewritten, ALICE, None, False)
    assert parse_domain_xml(lifted) == DomainMetadata(statelock_owner=ALICE, nova_owner=nova_owner)
    assert "xmlns:statelock=" in lifted and "ns0:" not in lifted


def test_with_statelock_removes_the_container_when_nothing_is_left() -> None:
    lifted = with_statelock(domain(NOVA + container('<statelock:bootblock reason="x"/>')), None,
                            None, False)
    assert ET.fromstring(lifted).find(f"metadata/{{{STATELOCK_NS}}}instance") is None
    assert parse_domain_xml(lifted).nova_owner == Owner("p-1", "u-1")


def test_with_statelock_refuses_malformed_xml() -> None:
    with pytest.raises(ET.ParseError):
        with_statelock("<domain><metadata>", ALICE, "hold", False)
