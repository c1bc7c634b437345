"""Keystone password login for the console: username, password and project -> a token and its expiry.

``password_token`` asks ``POST /v3/auth/tokens`` for a project-scoped token. Keystone's
401 (wrong user, password or project) is ``Unauthorized`` with one message that does
not say which was wrong; Keystone down or slow is ``IdentityUnavailable``. The password
is sent to Keystone only and never logged; the token goes to the session store only.
"""

from __future__ import annotations

import logging
from datetime import datetime

import aiohttp

from sidecar.errors import IdentityUnavailable, Unauthorized
from sidecar.service_auth import v3_url

log = logging.getLogger(__name__)

REFUSED = "Keystone refused these credentials (user, password or project)."


async def password_token(session: aiohttp.ClientSession, auth_url: str, username: str, password: str,
                         project: str, domain: str = "Default") -> tuple[str, float]:
    """A project-scoped token of ``username`` and its expiry (epoch seconds); see the module docstring."""
    body = {"auth": {
        "identity": {"methods": ["password"],
                     "password": {"user": {"name": username, "domain": {"name": domain}, "password": password}}},
        "scope": {"project": {"name": project, "domain": {"name": domain}}}}}
    try:
        async with session.post(v3_url(auth_url) + "/auth/tokens?nocatalog", json=body,
                                headers={"Accept": "application/json", "User-Agent": "statelock-console"}) as resp:
            if resp.status in (400, 401, 403, 404):
                await resp.read()
                log.info("keystone refused a console login (%d)", resp.status)
                raise Unauthorized(REFUSED)
            if resp.status != 201:
                await resp.read()
                raise IdentityUnavailable(f"Keystone answered {resp.status} to a login.")
            token = resp.headers.get("X-Subject-Token", "")
            doc = await resp.json(content_type=None)
    except TimeoutError as exc:
        raise IdentityUnavailable("Keystone did not answer the login in time.") from exc
    except (aiohttp.ClientError, ValueError) as exc:
        raise IdentityUnavailable(f"Keystone could not be asked: {type(exc).__name__}") from exc
    try:
        expires = datetime.fromisoformat(str(doc["token"]["expires_at"]).replace("Z", "+00:00")).timestamp()
    except (KeyError, TypeError, ValueError) as exc:
        raise IdentityUnavailable("Keystone's login answer has no token expiry.") from exc
    if not token:
        raise IdentityUnavailable("Keystone's login answer has no token.")
    return token, expires
