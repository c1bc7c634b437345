"""Identity: request headers -> Subject.

``subject_from_headers`` is pure. It raises ``Unauthorized`` when the headers do not
carry an identity in the configured mode; it never looks at anything but headers,
and never returns or logs the token itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from sidecar.errors import Unauthorized


@dataclass(frozen=True)
class Subject:
    """Who is asking: a user in a project with roles.

    ``domain_id``, ``is_admin`` and ``system_scope`` come from Keystone tokens
    (contract v1 extension): the token's domain (its project's, or the domain it
    is scoped to), Nova's ``context_is_admin`` (the admin role), and ``"all"`` for
    a system-scoped token. Other identity modes leave the defaults.
    """

    user_id: str
    project_id: str
    roles: tuple[str, ...]
    domain_id: str | None = None
    is_admin: bool = False
    system_scope: str | None = None

    def has_role(self, role: str) -> bool:
        return role in self.roles

    def as_input(self) -> dict[str, Any]:
        """The subject as the policy input and the decision record show it."""
        return {"user_id": self.user_id, "project_id": self.project_id, "roles": list(self.roles),
                "domain_id": self.domain_id, "is_admin": self.is_admin, "system_scope": self.system_scope}


def _roles(text: str) -> tuple[str, ...]:
    return tuple(sorted({r.strip() for r in text.split(",") if r.strip()}))


def subject_from_noauth(token: str | None, admin_role: str = "admin") -> Subject:
    """Nova's noauth2 convention: ``X-Auth-Token: user:project[:role1,role2]``.

    The user ``admin`` gets the admin role (as noauth2 does); everyone gets
    ``member`` and ``reader`` unless roles are given explicitly.
    """
    if not token:
        raise Unauthorized("The request you have made requires authentication.")
    parts = token.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise Unauthorized("The request you have made requires authentication.")
    user, project = parts[0], parts[1]
    roles = _roles(parts[2]) if len(parts) == 3 else ("member", "reader")
    if user == "admin" and admin_role not in roles:
        roles = tuple(sorted({*roles, admin_role}))
    return Subject(user, project, roles, is_admin=admin_role in roles)


def subject_from_trusted_headers(headers: Mapping[str, str], admin_role: str = "admin") -> Subject:
    """Headers set by an authenticating layer in front: X-User-Id, X-Project-Id, X-Roles."""
    user = headers.get("X-User-Id", "").strip()
    project = headers.get("X-Project-Id", "").strip()
    if not user or not project:
        raise Unauthorized("The request you have made requires authentication.")
    roles = _roles(headers.get("X-Roles", ""))
    return Subject(user, project, roles, is_admin=admin_role in roles)


def subject_from_headers(mode: str, headers: Mapping[str, str], admin_role: str = "admin") -> Subject:
    """The Subject for a request in the given identity mode; Unauthorized if none."""
    if mode == "noauth":
        return subject_from_noauth(headers.get("X-Auth-Token"), admin_role)
    return subject_from_trusted_headers(headers, admin_role)


class Identifier(Protocol):
    """Turns a request's headers into a Subject; raises Unauthorized (401) or a 503 error.

    Implementations that call out (Keystone) cache and must never log tokens.
    """

    async def start(self) -> None:
        """Open sessions."""

    async def close(self) -> None:
        """Close them."""

    async def identify(self, headers: Mapping[str, str]) -> Subject:
        """The Subject of a request."""


class HeaderIdentifier:
    """``noauth`` and ``trusted-headers``: identity read from the headers alone."""

    def __init__(self, mode: str, admin_role: str = "admin") -> None:
        self.mode = mode
        self.admin_role = admin_role

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def identify(self, headers: Mapping[str, str]) -> Subject:
        return subject_from_headers(self.mode, headers, self.admin_role)
