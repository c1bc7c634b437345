"""Statelock's own Keystone identity: the service user's token, from keystoneauth1.

``KeystoneServiceAuth.token()`` returns a current project-scoped token of the
service user configured in ``identity.keystone``. keystoneauth1's ``v3.Password``
plugin fetches it and keeps it until shortly before it expires; the blocking
fetch runs in a worker thread, a still-fresh token is returned without one.
The token serves two purposes: it authorises the validation of callers' tokens,
and it is the identity of Statelock's own calls to the compute API (suspend-lock,
target lookups), which never carry a caller's token.

``token()`` raises ``IdentityUnavailable`` (503) when Keystone can't be reached in
time or refuses the service credentials. Neither the password nor a token is ever
logged; keystoneauth1's own debug logging masks both.
"""

from __future__ import annotations

import asyncio
import logging
import urllib.parse

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import v3

from sidecar.config import KeystoneConfig
from sidecar.errors import IdentityUnavailable

log = logging.getLogger(__name__)

# NOTE: keystoneauth1 re-authenticates when less than this is left (its MIN_TOKEN_LIFE_SECONDS).
_STALE_S = 120


def v3_url(auth_url: str) -> str:
    """The versioned identity endpoint: ``auth_url`` with ``/v3`` appended unless present."""
    base = auth_url.rstrip("/")
    return base if base.endswith("/v3") else base + "/v3"


class KeystoneServiceAuth:
    """The service user's keystoneauth1 session (see module docstring)."""

    def __init__(self, cfg: KeystoneConfig) -> None:
        assert cfg.auth_url is not None
        self._cfg = cfg
        self._auth = v3.Password(
            auth_url=v3_url(cfg.auth_url), username=cfg.username, password=cfg.password or "",
            project_name=cfg.project_name, user_domain_name=cfg.user_domain_name,
            project_domain_name=cfg.project_domain_name)
        verify: bool | str = False if cfg.insecure else (cfg.cafile or True)
        self._session = ks_session.Session(auth=self._auth, verify=verify, timeout=cfg.timeout_s,
                                           user_agent="statelock")
        self._fetch: asyncio.Task[str] | None = None

    async def start(self) -> None:
        """Nothing is fetched yet: Statelock starts even while Keystone is down."""

    async def close(self) -> None:
        if self._fetch is not None:
            self._fetch.cancel()
        await asyncio.to_thread(self._session.session.close)

    async def token(self) -> str:
        """A current service token; ``IdentityUnavailable`` if none can be had in time."""
        ref = self._auth.auth_ref
        if ref is not None and not ref.will_expire_soon(_STALE_S):
            return str(ref.auth_token)
        if self._fetch is None or self._fetch.done():
            # NOTE: one fetch at a time: while Keystone hangs, callers share it instead of each holding a thread.
            self._fetch = asyncio.create_task(self._fetch_token(), name="statelock-service-token")
            self._fetch.add_done_callback(lambda t: None if t.cancelled() else t.exception())
        return await asyncio.shield(self._fetch)

    async def _fetch_token(self) -> str:
        try:
            token = await asyncio.wait_for(asyncio.to_thread(self._session.get_token),
                                           self._cfg.timeout_s)
        except TimeoutError as exc:
            raise IdentityUnavailable("The identity service did not answer in time.") from exc
        except ks_exc.Unauthorized as exc:
            log.error("keystone refused Statelock's service credentials (user %s, project %s)",
                      self._cfg.username, self._cfg.project_name)
            raise IdentityUnavailable("The identity service refused Statelock's credentials.") from exc
        except ks_exc.ClientException as exc:
            log.warning("keystone unavailable for the service token: %s", type(exc).__name__)
            raise IdentityUnavailable("The identity service is unavailable.") from exc
        if not token:
            raise IdentityUnavailable("The identity service returned no token.")
        return token

    async def project_exists(self, project_id: str) -> bool | None:
        """Whether Keystone has the project (``GET /v3/projects/{id}`` as the service user).

        None when it can't tell: the service user may not read projects (403), or
        Keystone does not answer in time.
        """
        assert self._cfg.auth_url is not None
        url = f"{v3_url(self._cfg.auth_url)}/projects/{urllib.parse.quote(project_id, safe='')}"

        def ask() -> int:
            return int(self._session.get(url, raise_exc=False, authenticated=True).status_code)

        try:
            status = await asyncio.wait_for(asyncio.to_thread(ask), self._cfg.timeout_s)
        except (TimeoutError, ks_exc.ClientException):
            return None
        if status == 200:
            return True
        return False if status == 404 else None

    def invalidate(self) -> None:
        """Forget the service token (Keystone rejected it): the next ``token()`` fetches anew."""
        self._auth.invalidate()
