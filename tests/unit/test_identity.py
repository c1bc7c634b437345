"""Unit tests for sidecar.identity: noauth tokens and trusted headers -> Subject."""

from __future__ import annotations

import pytest
from multidict import CIMultiDict

from sidecar.errors import Unauthorized
from sidecar.identity import (
    HeaderIdentifier,
    Subject,
    subject_from_headers,
    subject_from_noauth,
    subject_from_trusted_headers,
)


@pytest.mark.parametrize(("token", "expected"), [
    ("alice:demo", Subject("alice", "demo", ("member", "reader"))),
    ("alice:demo:member", Subject("alice", "demo", ("member",))),
    ("alice:demo:reader,member", Subject("alice", "demo", ("member", "reader"))),
    ("alice:demo: reader , member ,reader", Subject("alice", "demo", ("member", "reader"))),
    ("alice:demo:", Subject("alice", "demo", ())),
    ("billing-svc:service:billing", Subject("billing-svc", "service", ("billing",))),
    ("alice:demo:admin", Subject("alice", "demo", ("admin",), is_admin=True)),
    ("admin:admin", Subject("admin", "admin", ("admin", "member", "reader"), is_admin=True)),
    ("admin:demo:reader", Subject("admin", "demo", ("admin", "reader"), is_admin=True)),
    ("admin:demo:admin,reader", Subject("admin", "demo", ("admin", "reader"), is_admin=True)),
])
def test_noauth_tokens(token: str, expected: Subject) -> None:
    assert subject_from_noauth(token) == expected


def test_noauth_admin_user_gets_the_configured_admin_role() -> None:
    subject = subject_from_noauth("admin:demo", admin_role="cloud-admin")
    assert subject.has_role("cloud-admin")
    assert not subject.has_role("admin")
    assert subject_from_noauth("alice:demo", admin_role="cloud-admin").roles == ("member", "reader")


@pytest.mark.parametrize("token", [None, "", "alice", ":demo", "alice:", ":", "alice:demo:member:extra", "a:b:c:d"])
def test_bad_noauth_tokens_are_unauthorized(token: str | None) -> None:
    with pytest.raises(Unauthorized) as info:
        subject_from_noauth(token)
    assert info.value.status == 401
    if token:
        assert token not in info.value.message


@pytest.mark.parametrize(("hdrs", "expected"), [
    ({"X-User-Id": "u1", "X-Project-Id": "p1", "X-Roles": "member,reader"},
     Subject("u1", "p1", ("member", "reader"))),
    ({"x-user-id": " u1 ", "x-project-id": "p1", "x-roles": "admin, member,"},
     Subject("u1", "p1", ("admin", "member"), is_admin=True)),
    ({"X-User-Id": "u1", "X-Project-Id": "p1"}, Subject("u1", "p1", ())),
    ({"X-User-Id": "admin", "X-Project-Id": "p1"}, Subject("admin", "p1", ())),
])
def test_trusted_headers(hdrs: dict[str, str], expected: Subject) -> None:
    assert subject_from_trusted_headers(CIMultiDict(hdrs)) == expected


@pytest.mark.parametrize("hdrs", [
    {},
    {"X-User-Id": "u1"},
    {"X-Project-Id": "p1"},
    {"X-User-Id": "  ", "X-Project-Id": "p1"},
    {"X-User-Id": "u1", "X-Project-Id": ""},
    {"X-Auth-Token": "alice:demo"},
])
def test_trusted_headers_without_identity_are_unauthorized(hdrs: dict[str, str]) -> None:
    with pytest.raises(Unauthorized):
        subject_from_trusted_headers(CIMultiDict(hdrs))


@pytest.mark.parametrize(("mode", "hdrs", "expected"), [
    ("noauth", {"X-Auth-Token": "alice:demo"}, Subject("alice", "demo", ("member", "reader"))),
    ("noauth", {"x-auth-token": "admin:admin:reader"}, Subject("admin", "admin", ("admin", "reader"), is_admin=True)),
    ("trusted-headers", {"X-User-Id": "u", "X-Project-Id": "p", "X-Roles": "member"}, Subject("u", "p", ("member",))),
])
def test_subject_from_headers_dispatches_on_mode(mode: str, hdrs: dict[str, str], expected: Subject) -> None:
    assert subject_from_headers(mode, CIMultiDict(hdrs)) == expected


@pytest.mark.parametrize(("mode", "hdrs"), [
    ("noauth", {"X-User-Id": "u", "X-Project-Id": "p"}),
    ("trusted-headers", {"X-Auth-Token": "alice:demo"}),
])
def test_each_mode_ignores_the_other_modes_headers(mode: str, hdrs: dict[str, str]) -> None:
    with pytest.raises(Unauthorized):
        subject_from_headers(mode, CIMultiDict(hdrs))


def test_subject_as_input_and_has_role() -> None:
    subject = Subject("alice", "demo", ("member", "reader"))
    assert subject.as_input() == {"user_id": "alice", "project_id": "demo", "roles": ["member", "reader"],
                                  "domain_id": None, "is_admin": False, "system_scope": None}
    assert subject.has_role("member")
    assert not subject.has_role("admin")


@pytest.mark.parametrize(("mode", "hdrs", "expected"), [
    ("noauth", {"X-Auth-Token": "admin:demo"},
     Subject("admin", "demo", ("cloud-admin", "member", "reader"), is_admin=True)),
    ("trusted-headers", {"X-User-Id": "u", "X-Project-Id": "p", "X-Roles": "cloud-admin"},
     Subject("u", "p", ("cloud-admin",), is_admin=True)),
])
async def test_header_identifier_identifies_by_mode(mode: str, hdrs: dict[str, str], expected: Subject) -> None:
    identifier = HeaderIdentifier(mode, admin_role="cloud-admin")
    await identifier.start()
    assert await identifier.identify(CIMultiDict(hdrs)) == expected
    with pytest.raises(Unauthorized):
        await identifier.identify(CIMultiDict())
    await identifier.close()
