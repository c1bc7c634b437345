"""The lock record and helpers to show it to the policy and to people."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sidecar.identity import Subject

LOCK_KINDS = ("state", "boot", "delete")
LOCK_SCOPES = ("instance", "project", "host")
LOCK_STATES = ("active", "pending", "failed")


def new_lock_id() -> str:
    """A fresh lock id (``lk-`` and 32 hex digits)."""
    return "lk-" + uuid.uuid4().hex


def rfc3339(when: datetime | None) -> str | None:
    """UTC RFC 3339 with a Z, or None."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def parse_rfc3339(text: str) -> datetime:
    """Parse RFC 3339 (``Z`` or an offset); raises ValueError; naive times are refused."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if when.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone")
    return when.astimezone(UTC)


@dataclass(frozen=True)
class Lock:
    """One row of the lock table.

    ``state`` is ``active`` for an ordinary lock, ``pending`` while a suspend-lock's
    suspend is under way, ``failed`` when it did not complete (the lock still applies).
    ``source`` says how it was placed: ``nova`` (Nova's lock action), ``api``, ``suspend-lock``.
    """

    id: str
    kind: str
    scope: str
    target: str
    reason: str
    owner: Subject
    created_at: datetime
    expires_at: datetime | None = None
    state: str = "active"
    source: str = "api"
    note: str = ""

    def in_force(self, now: datetime) -> bool:
        """True while the lock applies: it has not expired (pending and failed apply too)."""
        return self.expires_at is None or now < self.expires_at

    def as_input(self) -> dict[str, Any]:
        """The lock as the policy input shows it (small and flat)."""
        return {
            "id": self.id,
            "kind": self.kind,
            "scope": self.scope,
            "target": self.target,
            "reason": self.reason,
            "owner": self.owner.as_input(),
            "created_at": rfc3339(self.created_at),
            "expires_at": rfc3339(self.expires_at),
        }

    def as_json(self, now: datetime) -> dict[str, Any]:
        """The lock as the lock API shows it."""
        out = self.as_input()
        out.update(state=self.state, source=self.source, note=self.note,
                   active=self.in_force(now), expired=not self.in_force(now))
        return out


@dataclass(frozen=True)
class LockFilter:
    """Filters for listing locks; None means any."""

    scope: str | None = None
    target: str | None = None
    kind: str | None = None
    owner: str | None = None
    active: bool | None = None


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}@{host}" if parts.username else host
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))
