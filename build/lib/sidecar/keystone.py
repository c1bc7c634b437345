"""Identity from Keystone: ``X-Auth-Token`` validated with ``GET /v3/auth/tokens``.

``KeystoneIdentifier.identify(headers)`` returns the ``Subject`` of a valid token,
or raises:

* ``TokenRejected`` (401, keystonemiddleware's body and its
  ``WWW-Authenticate: Keystone uri="..."`` header) when the token is missing or
  Keystone says it is invalid, expired or revoked;
* ``IdentityUnavailable`` (503) when Keystone can't be asked: down, slower than
  ``timeout_s``, answering 5xx, or refusing Statelock's own service credentials.

Validations are authorised by the service user's token (``KeystoneServiceAuth``,
keystoneauth1 in a worker thread, cached by its plugin) and sent with aiohttp, so
many concurrent validations need no threads. A valid token is cached for
``token_cache_time`` or until it expires, whichever is sooner, in a bounded LRU;
like keystonemiddleware, a revoked token therefore stops working within
``token_cache_time``. A rejected token is cached for ``negative_cache_time`` in a
separate LRU, so a flood of garbage can't evict valid entries. Concurrent
requests with the same uncached token share one validation. Cache keys are
SHA-256 digests; a token is never stored, logged or put in an error.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import ssl
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp

from sidecar.config import KeystoneConfig
from sidecar.errors import IdentityUnavailable, Unauthorized
from sidecar.identity import Subject
from sidecar.service_auth import KeystoneServiceAuth, v3_url

log = logging.getLogger(__name__)

MESSAGE = "The request you have made requires authentication."


class TokenRejected(Unauthorized):
    """401 as keystonemiddleware sends it; ``headers`` carry the WWW-Authenticate challenge."""

    def __init__(self, www_authenticate_uri: str) -> None:
        super().__init__(MESSAGE)
        self.headers: tuple[tuple[str, str], ...] = (
            ("WWW-Authenticate", f'Keystone uri="{www_authenticate_uri}"'),)


@dataclass(frozen=True)
class _Entry:
    subject: Subject | None
    until: float


class _Lru:
    """A size-bounded map of digest -> entry, least recently used dropped first."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._items: OrderedDict[str, _Entry] = OrderedDict()

    def get(self, key: str, now: float) -> _Entry | None:
        entry = self._items.get(key)
        if entry is None:
            return None
        if entry.until <= now:
            del self._items[key]
            return None
        self._items.move_to_end(key)
        return entry

    def put(self, key: str, entry: _Entry) -> None:
        self._items[key] = entry
        self._items.move_to_end(key)
        while len(self._items) > self._size:
            self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)


def subject_from_token(doc: Mapping[str, Any], admin_role: str = "admin") -> tuple[Subject, datetime]:
    """The Subject and expiry of a ``GET /v3/auth/tokens`` body; ValueError if malformed.

    Role names are lower-cased, as oslo.policy compares them. ``is_admin`` is Nova's
    ``context_is_admin`` (``role:admin``, whatever the scope). ``domain_id`` is the
    project's domain, or the domain a domain-scoped token is scoped to.
    """
    try:
        token = doc["token"]
        user_id = str(token["user"]["id"])
        project = token.get("project") or {}
        domain = token.get("domain") or {}
        project_id = str(project.get("id") or "")
        domain_id = (project.get("domain") or {}).get("id") or domain.get("id")
        system = token.get("system") or {}
        system_scope = "all" if system.get("all") is True else None
        roles = tuple(sorted({str(r["name"]).lower() for r in token.get("roles") or []}))
        expires = datetime.fromisoformat(str(token["expires_at"]).replace("Z", "+00:00"))
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"not a token document: {type(exc).__name__}") from exc
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=UTC)
    subject = Subject(user_id, project_id, roles, domain_id=str(domain_id) if domain_id else None,
                      is_admin=admin_role.lower() in roles, system_scope=system_scope)
    return subject, expires


def digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


class KeystoneIdentifier:
    """The ``keystone`` identity mode (see module docstring)."""

    def __init__(self, cfg: KeystoneConfig, admin_role: str = "admin",
                 clock: Callable[[], float] = time.monotonic) -> None:
        assert cfg.auth_url is not None
        self._cfg = cfg
        self._admin_role = admin_role
        self._clock = clock
        self._url = v3_url(cfg.auth_url) + "/auth/tokens?nocatalog"
        self._challenge = cfg.www_authenticate_uri or cfg.auth_url
        self._forward_reads = cfg.reads_when_keystone_down == "forward"
        self.service = KeystoneServiceAuth(cfg)
        self._valid = _Lru(cfg.token_cache_size)
        self._rejected = _Lru(cfg.token_cache_size)
        self._inflight: dict[str, asyncio.Task[Subject]] = {}
        self._session: aiohttp.ClientSession | None = None

    async def start(self) -> None:
        await self.service.start()
        ssl_ctx: ssl.SSLContext | bool = True
        if self._cfg.insecure:
            ssl_ctx = False
        elif self._cfg.cafile:
            ssl_ctx = ssl.create_default_context(cafile=self._cfg.cafile)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=50, ssl=ssl_ctx),
            timeout=aiohttp.ClientTimeout(total=self._cfg.timeout_s),
            cookie_jar=aiohttp.DummyCookieJar())

    async def close(self) -> None:
        for task in list(self._inflight.values()):
            task.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None
        await self.service.close()

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise IdentityUnavailable("The identity client is not started.", self._forward_reads)
        return self._session

    async def identify(self, headers: Mapping[str, str]) -> Subject:
        """The Subject of the request's ``X-Auth-Token`` (see module docstring for errors)."""
        token = headers.get("X-Auth-Token", "").strip()
        if not token or not token.isascii() or not token.isprintable():
            # NOTE: Keystone's tokens (Fernet, JWS) are printable ASCII; anything else is not one.
            raise TokenRejected(self._challenge)
        key = digest(token)
        now = self._clock()
        entry = self._valid.get(key, now) or self._rejected.get(key, now)
        if entry is not None:
            if entry.subject is None:
                raise TokenRejected(self._challenge)
            return entry.subject
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(self._validate(token, key), name="statelock-keystone-validate")
            self._inflight[key] = task
            task.add_done_callback(lambda t: self._settled(key, t))
        try:
            # NOTE: shielded: a caller that goes away does not cancel the validation others wait for.
            return await asyncio.shield(task)
        except IdentityUnavailable as exc:
            exc.forward_reads = self._forward_reads
            raise

    def _settled(self, key: str, task: asyncio.Task[Subject]) -> None:
        self._inflight.pop(key, None)
        if not task.cancelled():
            task.exception()  # NOTE: retrieved, so an error nobody awaited any more is not reported as lost

    async def _validate(self, token: str, key: str) -> Subject:
        service_token = await self.service.token()
        status, doc = await self._ask(token, service_token)
        if status == 401:
            # NOTE: the service token itself was refused (expired or revoked): fetch a new one once.
            self.service.invalidate()
            status, doc = await self._ask(token, await self.service.token())
        if status in (400, 404):
            if self._cfg.negative_cache_time > 0:
                self._rejected.put(key, _Entry(None, self._clock() + self._cfg.negative_cache_time))
            log.info("keystone rejected a token (%d)", status)
            raise TokenRejected(self._challenge)
        if status in (401, 403):
            log.error("keystone refused to validate tokens for Statelock's service user %s (%d): "
                      "it needs the service or admin role", self._cfg.username, status)
            raise IdentityUnavailable("The identity service refused Statelock's credentials.")
        if status != 200:
            log.warning("keystone answered %d to a token validation", status)
            raise IdentityUnavailable("The identity service is unavailable.")
        try:
            subject, expires = subject_from_token(doc, self._admin_role)
        except ValueError as exc:
            log.warning("keystone returned a malformed token document: %s", exc)
            raise IdentityUnavailable("The identity service returned a malformed answer.") from exc
        ttl = min(float(self._cfg.token_cache_time), (expires - datetime.now(UTC)).total_seconds())
        if ttl > 0:
            self._valid.put(key, _Entry(subject, self._clock() + ttl))
        return subject

    async def _ask(self, token: str, service_token: str) -> tuple[int, Any]:
        headers = {"X-Auth-Token": service_token, "X-Subject-Token": token,
                   "Accept": "application/json", "User-Agent": "statelock"}
        try:
            async with self.session.get(self._url, headers=headers) as resp:
                if resp.status != 200:
                    await resp.read()
                    return resp.status, None
                return 200, await resp.json(content_type=None)
        except TimeoutError as exc:
            raise IdentityUnavailable("The identity service did not answer in time.") from exc
        except (aiohttp.ClientError, ValueError) as exc:
            log.warning("keystone unreachable for a token validation: %s", type(exc).__name__)
            raise IdentityUnavailable("The identity service is unavailable.") from exc
