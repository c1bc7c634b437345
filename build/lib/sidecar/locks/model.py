"""The lock record and helpers to show it to the policy and to people."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sidecar.identity import Subject
from sidecar.vocab import LockKind, LockListState, LockScope, LockSource, LockState


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
    suspend is under way, ``failed`` when it did not complete (the lock still applies),
    ``lifted`` once it was lifted: the row stays as history, with who lifted it
    (``lifted_by``: user and project, no roles), when, and the decision that did;
    ``placed_decision_id`` is the decision that placed it (None for rows older than that).
    ``source`` says how it was placed: ``nova`` (Nova's lock action), ``api``, ``suspend-lock``.
    """

    id: str
    kind: LockKind
    scope: LockScope
    target: str
    reason: str
    owner: Subject
    created_at: datetime
    expires_at: datetime | None = None
    state: LockState = "active"
    source: LockSource = "api"
    note: str = ""
    lifted_at: datetime | None = None
    lifted_by: Subject | None = None
    lifted_decision_id: str | None = None
    placed_decision_id: str | None = None

    @property
    def lifted(self) -> bool:
        """True once the lock was lifted (it no longer applies, whatever its expiry)."""
        return self.state == "lifted"

    def expired(self, now: datetime) -> bool:
        """True when the lock was not lifted and its expiry has passed at ``now``."""
        return not self.lifted and self.expires_at is not None and now >= self.expires_at

    def in_force(self, now: datetime) -> bool:
        """True while the lock applies: not lifted, not expired (pending and failed apply too)."""
        return not self.lifted and (self.expires_at is None or now < self.expires_at)

    def list_state(self, now: datetime) -> LockListState:
        """Which listing the lock is in at ``now``: ``active``, ``expired`` or ``lifted``."""
        if self.lifted:
            return "lifted"
        return "expired" if self.expired(now) else "active"

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
        """The lock as the lock API shows it at ``now``.

        ``state`` is ``lifted`` for a lifted lock, ``expired`` for an expired one, else
        the row's state (``active``, ``pending``, ``failed``); exactly one of the
        booleans ``active``, ``expired`` and ``lifted`` is true.
        """
        listed = self.list_state(now)
        out = self.as_input()
        out.update(state=self.state if listed == "active" else listed, source=self.source, note=self.note,
                   active=listed == "active", expired=listed == "expired", lifted=listed == "lifted",
                   lifted_at=rfc3339(self.lifted_at),
                   lifted_by=None if self.lifted_by is None else {
                       "user_id": self.lifted_by.user_id, "project_id": self.lifted_by.project_id},
                   lifted_decision_id=self.lifted_decision_id,
                   placed_decision_id=self.placed_decision_id)
        return out


@dataclass(frozen=True)
class LockFilter:
    """Filters for listing locks; None means any.

    ``state``: ``active`` (in force: not lifted, not expired), ``expired`` (not lifted,
    expired), ``lifted``, or ``all``.
    """

    scope: str | None = None
    target: str | None = None
    kind: str | None = None
    owner: str | None = None
    state: LockListState = "all"


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
