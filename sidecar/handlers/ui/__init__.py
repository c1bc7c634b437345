"""The auditors' console under ``/statelock/ui/``: server-rendered pages over decisions and locks.

A sub-application of Statelock's own Application (same process, same components,
same policy): ``add_console`` mounts it. Its pages are Jinja2 templates with
autoescape (``render``), served with a strict Content-Security-Policy and every
asset from this package (no CDN: it runs air-gapped). ``auth`` holds the session
and the access rule, ``pages`` the read-only pages, ``actions`` replay, export and
backtest. A ``SidecarError`` raised by a console handler is answered here as an HTML
page (``html_errors``) rather than the Nova fault the API answers with.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aiohttp import web
from aiohttp.typedefs import Handler

from sidecar.appkeys import CONFIG
from sidecar.errors import SidecarError
from sidecar.handlers.ui import actions, auth, pages
from sidecar.handlers.ui.render import TEMPLATES, environment, security_headers
from sidecar.handlers.ui.session import SessionStore

log = logging.getLogger(__name__)

PREFIX = "/statelock/ui"
STATIC = Path(__file__).parent / "static"


@web.middleware
async def html_errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer a SidecarError as the console's error page (the roles needed, for a 403 on access)."""
    try:
        return await handler(request)
    except SidecarError as exc:
        if exc.status >= 500:
            log.error("console %s %s failed: %s: %s", request.method, request.path, exc.code, exc.message)
        return await auth.forbidden_page(request, exc)


async def _home(request: web.Request) -> web.StreamResponse:
    raise web.HTTPSeeOther(auth.HOME)


def add_console(app: web.Application) -> None:
    """Mount the console on ``app`` (before any catch-all route)."""
    cfg = app[CONFIG].console
    console = web.Application(middlewares=[security_headers, html_errors])
    console[TEMPLATES] = environment()
    console[auth.SESSIONS] = SessionStore(cfg.session_ttl_s, cfg.max_sessions)
    r = console.router
    r.add_get("/", _home)
    r.add_get("/login", auth.login_page)
    r.add_post("/login", auth.login)
    r.add_post("/logout", auth.logout)
    r.add_get("/decisions", pages.decisions)
    r.add_get("/decisions.{fmt:csv|json}", actions.export)
    r.add_get("/decisions/{decision_id}", pages.decision)
    r.add_post("/decisions/{decision_id}/replay", actions.replay)
    r.add_get("/locks", pages.locks)
    r.add_get("/instances/{instance_id}", pages.instance)
    r.add_get("/backtest", actions.backtest_page)
    r.add_post("/backtest", actions.run_backtest)
    r.add_static("/static/", STATIC, append_version=False)
    # NOTE: before the sub-application, which would answer its bare prefix with a 404.
    app.router.add_get(PREFIX, _home)
    app.add_subapp(PREFIX + "/", console)
