"""Rendering console pages: Jinja2 with autoescape, the security headers, the chain status.

Every value reaches a page through a template with autoescape on (a lock reason is
attacker-controlled text), and every response of the console carries
``SECURITY_HEADERS``: a Content-Security-Policy with no inline script or style (no
script at all) and nothing from another origin, no framing, no referrer, no caching.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import jinja2
from aiohttp import web

from sidecar.appkeys import AUDIT, CONFIG, DECISIONS
from sidecar.handlers.ui.session import Session

CSP = ("default-src 'none'; script-src 'none'; style-src 'self'; img-src 'self'; font-src 'self'; "
       "connect-src 'none'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
TEMPLATES: web.AppKey[jinja2.Environment] = web.AppKey("console_templates", jinja2.Environment)


def environment() -> jinja2.Environment:
    """The templates of the console, autoescaped whatever their names end with."""
    env = jinja2.Environment(loader=jinja2.PackageLoader("sidecar.handlers.ui", "templates"),
                             autoescape=True, undefined=jinja2.ChainableUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["pretty"] = lambda value: json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False)
    env.filters["short"] = lambda value: str(value)[:8]
    env.filters["when"] = _when
    env.globals["query"] = query_string
    return env


def _when(value: Any) -> str:
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + "Z"
    return "" if value is None else str(value)


def query_string(params: Mapping[str, Any], **changes: Any) -> str:
    """``params`` with ``changes`` (None drops a key) as a query string with its ``?`` ('' if empty)."""
    merged = {k: v for k, v in {**params, **changes}.items() if v not in (None, "")}
    return "?" + urlencode(merged) if merged else ""


def chain_status(request: web.Request) -> dict[str, Any]:
    """This replica's chain for the status line: verified through seq N at the last checkpoint, or broken."""
    chain = request.config_dict[AUDIT].chain_state()
    checkpoint = chain.get("last_checkpoint") or {}
    return {"broken_at": chain.get("broken_at"), "last_seq": chain.get("last_seq"),
            "verified_through": chain.get("verified_through"), "checkpoint_seq": checkpoint.get("seq"),
            "checkpoint_time": checkpoint.get("timestamp"), "source": request.config_dict[DECISIONS].describe()}


def page(request: web.Request, template: str, status: int = 200, session: Session | None = None,
         **context: Any) -> web.Response:
    """A rendered page with the security headers."""
    env = request.config_dict[TEMPLATES]
    html = env.get_template(template).render(
        session=session, subject=session.subject if session else None, csrf=session.csrf if session else "",
        chain=chain_status(request), mode=request.config_dict[CONFIG].identity.mode, **context)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def secure_cookies(request: web.Request) -> bool:
    """Cookies get Secure when the console is served over TLS."""
    return request.secure or request.config_dict[CONFIG].tls.certfile is not None


@web.middleware
async def security_headers(request: web.Request, handler: Any) -> web.StreamResponse:
    """Add ``SECURITY_HEADERS`` to every console response (errors and redirects included)."""
    try:
        resp: web.StreamResponse = await handler(request)
    except web.HTTPException as exc:
        exc.headers.update(SECURITY_HEADERS)
        raise
    for name, value in SECURITY_HEADERS.items():
        resp.headers.setdefault(name, value)
    return resp
