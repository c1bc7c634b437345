"""Console sessions: a random id in an HttpOnly cookie, everything else in this process's memory.

The cookie carries only a random id (256 bits); the credential the subject logged in
with (a noauth token, a Keystone token) stays in the ``SessionStore``, keyed by the
id's SHA-256, and is never shown, logged or put in a page. A session ends at logout,
at ``expires_at`` (the Keystone token's expiry, or ``console.session_ttl_s``,
whichever is sooner), or when the store is full and it is the oldest. Sessions live
in one process: behind a balancer, the console needs sticky sessions (its data, the
decision index, is shared by every replica).

CSRF: every session has a token that each of its forms carries (``csrf``); the login
form, which comes before any session, is checked against a cookie of its own
(double submit, SameSite=Strict).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sidecar.identity import Subject

COOKIE = "statelock_session"
LOGIN_COOKIE = "statelock_login"
PATH = "/statelock/ui/"


@dataclass
class Session:
    """One logged-in subject."""

    token: str
    subject: Subject
    csrf: str
    expires_at: float

    def __repr__(self) -> str:  # NOTE: a session in a traceback must not show its credential.
        return f"Session(user={self.subject.user_id!r}, expires_at={self.expires_at:.0f})"


def new_secret() -> str:
    """A random URL-safe secret of 256 bits."""
    return secrets.token_urlsafe(32)


def same_secret(given: str | None, expected: str | None) -> bool:
    """True when both are present and equal (compared in constant time)."""
    return bool(given) and bool(expected) and hmac.compare_digest(str(given), str(expected))


def _key(cookie: str) -> str:
    return hashlib.sha256(cookie.encode("utf-8", "surrogateescape")).hexdigest()


class SessionStore:
    """The console's sessions (see the module docstring)."""

    def __init__(self, ttl_s: float, max_sessions: int, clock: Callable[[], float] = time.time) -> None:
        self._ttl = ttl_s
        self._max = max_sessions
        self._clock = clock
        self._items: OrderedDict[str, Session] = OrderedDict()

    def create(self, token: str, subject: Subject, token_expires_at: float | None = None) -> tuple[str, Session]:
        """A new session; returns the cookie value and the session."""
        now = self._clock()
        expires = now + self._ttl if token_expires_at is None else min(now + self._ttl, token_expires_at)
        cookie = new_secret()
        session = Session(token, subject, new_secret(), expires)
        self._items[_key(cookie)] = session
        while len(self._items) > self._max:
            self._items.popitem(last=False)
        return cookie, session

    def get(self, cookie: str | None) -> Session | None:
        """The live session of a cookie value; None (and the session dropped) once it expired."""
        if not cookie:
            return None
        key = _key(cookie)
        session = self._items.get(key)
        if session is None:
            return None
        if session.expires_at <= self._clock():
            del self._items[key]
            return None
        return session

    def end(self, cookie: str | None) -> bool:
        """End a session; True if there was one."""
        return bool(cookie) and self._items.pop(_key(str(cookie)), None) is not None

    def max_age(self, session: Session) -> int:
        """Seconds the cookie should live: until the session expires."""
        return max(1, math.ceil(session.expires_at - self._clock()))

    def __len__(self) -> int:
        return len(self._items)


def cookie_options(secure: bool, max_age: int | None) -> dict[str, Any]:
    """The attributes of the console's cookies: HttpOnly, SameSite=Strict, the console's path, Secure over TLS."""
    options: dict[str, Any] = {"httponly": True, "samesite": "Strict", "path": PATH, "secure": secure}
    if max_age is not None:
        options["max_age"] = max_age
    return options
