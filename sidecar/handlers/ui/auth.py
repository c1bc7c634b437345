"""Console login, logout and access: who is looking, and may they read decisions.

``require`` is what every page calls: the session of the request's cookie, its
subject identified again through the configured identity mode (so a revoked
Keystone token ends the session within the token cache time), and the check that the
subject may read decisions (``decisions_api.may_read``: the same rule, from the same
bundle, as ``GET /statelock/v1/decisions``). No session: a redirect to the login page.
A subject without the role: the 403 page naming the roles needed.

Login, logout and the other console actions are recorded like any other call
(``record_action``): a decision record whose action is ``console_<name>``, decided
by that rule; a login that fails is recorded as a refusal (``Recorder.refusing``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from aiohttp import web

from sidecar.appkeys import CONFIG, ENGINE, IDENTIFIER, RECORDER
from sidecar.errors import BadRequest, Forbidden, SidecarError, Unauthorized
from sidecar.handlers.decisions_api import may_read
from sidecar.handlers.ui.keystone_login import password_token
from sidecar.handlers.ui.render import page, secure_cookies
from sidecar.handlers.ui.session import (
    COOKIE,
    LOGIN_COOKIE,
    Session,
    SessionStore,
    cookie_options,
    new_secret,
    same_secret,
)
from sidecar.identity import Subject
from sidecar.policy.backtest import CONSOLE_ACTION_PREFIX
from sidecar.policy.decision import Decision
from sidecar.policy.input import ActionInput, PolicyInput
from sidecar.recorder import DECISION_HEADER, Ctx

_R = TypeVar("_R", bound=web.StreamResponse)
SESSIONS = web.AppKey("console_sessions", SessionStore)
LOGIN = "/statelock/ui/login"
HOME = "/statelock/ui/decisions"
MAX_FIELD = 4096


def ctx_of(request: web.Request) -> Ctx:
    """The request's context for its records (the caller's address, never a credential)."""
    peer = request.transport.get_extra_info("peername") if request.transport else None
    return Ctx(request.method, request.path, str(peer[0]) if peer else "")


async def record_action(request: web.Request, ctx: Ctx, subject: Subject, name: str, *, allow: bool = True,
                        reasons: tuple[str, ...] = (), params: Mapping[str, Any] | None = None,
                        result: Mapping[str, Any] | None = None) -> None:
    """Put console action ``name`` on record as a decision (AuditError under ``audit.on_failure: deny``)."""
    engine = request.config_dict[ENGINE]
    policy_input = PolicyInput(subject, ActionInput(CONSOLE_ACTION_PREFIX + name, "read", request.method, request.path,
                                                    dict(params or {})))
    doc: dict[str, Any] = {"allow": allow, "status": 200 if allow else 403, "reasons": list(reasons),
                           "lock_ids": [], "overrides": [], **(result or {})}
    decision = Decision(allow, reasons, status=200 if allow else 403, revision=engine.revision, result=doc)
    await request.config_dict[RECORDER].decision(ctx, policy_input, decision, acting=True)


def _credential_headers(request: web.Request, token: str) -> Mapping[str, str]:
    """The headers the identifier reads: the session's token, or (trusted-headers) the request's own."""
    if request.config_dict[CONFIG].identity.mode == "trusted-headers":
        return request.headers
    return {"X-Auth-Token": token}


def _login_redirect() -> web.HTTPSeeOther:
    return web.HTTPSeeOther(LOGIN)


async def current(request: web.Request) -> Session | None:
    """The live session of the request, identified again; None when there is none (or it ended)."""
    store = request.config_dict[SESSIONS]
    cookie = request.cookies.get(COOKIE)
    session = store.get(cookie)
    if session is None:
        return None
    try:
        subject = await request.config_dict[IDENTIFIER].identify(_credential_headers(request, session.token))
    except Unauthorized:
        store.end(cookie)
        return None
    if subject.user_id != session.subject.user_id:
        store.end(cookie)
        return None
    session.subject = subject
    return session


async def require(request: web.Request) -> Session:
    """The session of a subject who may read decisions; else a redirect to login, or Forbidden naming the roles."""
    session = await current(request)
    if session is None:
        raise _login_redirect()
    allowed, roles = await may_read(request.config_dict[ENGINE], session.subject)
    if not allowed:
        raise NeedsRole(roles)
    return session


class NeedsRole(Forbidden):
    """The subject may not read decisions: the page names the roles that may."""

    def __init__(self, roles: frozenset[str]) -> None:
        super().__init__(f"Reading decisions needs one of the roles: {', '.join(sorted(roles))}.")
        self.roles = roles


def check_csrf(session: Session, form: Mapping[str, Any]) -> None:
    """BadRequest (403) unless the form carries the session's CSRF token."""
    if not same_secret(str(form.get("csrf", "")), session.csrf):
        raise BadRequest("The form's CSRF token is missing or stale: reload the page and try again.", 403)


async def login_page(request: web.Request) -> web.StreamResponse:
    """``GET /statelock/ui/login``: the form (the only page shown before login)."""
    if await current(request) is not None:
        raise web.HTTPSeeOther(HOME)
    return _login_form(request)


def _login_form(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    nonce = new_secret()
    resp = page(request, "login.html", status, login_csrf=nonce, error=error)
    resp.set_cookie(LOGIN_COOKIE, nonce, **cookie_options(secure_cookies(request), 600))
    return resp


def _field(form: Mapping[str, Any], name: str, required: bool = True) -> str:
    value = form.get(name, "")
    if not isinstance(value, str) or len(value) > MAX_FIELD or (required and not value.strip()):
        raise Unauthorized(f"Fill in {name}." if not value else f"{name} is too long.")
    return value.strip()


async def _credentials(request: web.Request, form: Mapping[str, Any]) -> tuple[str, float | None]:
    """The credential the form's fields give (and its expiry, for Keystone)."""
    cfg = request.config_dict[CONFIG]
    if cfg.identity.mode == "keystone":
        ks = cfg.identity.keystone
        assert ks.auth_url is not None
        from sidecar.keystone import KeystoneIdentifier

        identifier = request.config_dict[IDENTIFIER]
        assert isinstance(identifier, KeystoneIdentifier)
        return await password_token(identifier.session, ks.auth_url, _field(form, "username"),
                                    _field(form, "password"), _field(form, "project"),
                                    _field(form, "domain", required=False) or "Default")
    if cfg.identity.mode == "trusted-headers":
        return "", None
    return _field(form, "token"), None


async def login(request: web.Request) -> web.StreamResponse:
    """``POST /statelock/ui/login``: a session for a subject who may read decisions; on record either way."""
    form = await request.post()
    ctx = ctx_of(request)
    try:
        async with request.config_dict[RECORDER].refusing(ctx):
            if not same_secret(str(form.get("csrf", "")), request.cookies.get(LOGIN_COOKIE)):
                raise BadRequest("The login form expired (CSRF check): please log in again.", 403)
            token, expires = await _credentials(request, form)
            subject = await request.config_dict[IDENTIFIER].identify(_credential_headers(request, token))
            allowed, roles = await may_read(request.config_dict[ENGINE], subject)
            reasons = () if allowed else (f"Reading decisions needs one of the roles: {', '.join(sorted(roles))}.",)
            await record_action(request, ctx, subject, "login", allow=allowed, reasons=reasons)
    except (Unauthorized, BadRequest) as exc:
        shown = exc.message if isinstance(exc, BadRequest) or "Fill in" in exc.message or "Keystone" in exc.message \
            else "Those credentials were not accepted."
        return with_decision(_login_form(request, shown, exc.status), ctx)
    if not allowed:
        raise NeedsRole(roles).bind(ctx.shown_id, None)
    store = request.config_dict[SESSIONS]
    cookie, session = store.create(token, subject, expires)
    resp = web.HTTPSeeOther(HOME)
    resp.set_cookie(COOKIE, cookie, **cookie_options(secure_cookies(request), store.max_age(session)))
    resp.del_cookie(LOGIN_COOKIE, path=cookie_options(False, None)["path"])
    raise with_decision(resp, ctx)


def with_decision(resp: _R, ctx: Ctx) -> _R:
    """``resp`` with the ``X-Statelock-Decision-Id`` of the record ``ctx`` wrote, if it wrote one."""
    if ctx.recorded:
        resp.headers[DECISION_HEADER] = ctx.decision_id
    return resp


async def logout(request: web.Request) -> web.StreamResponse:
    """``POST /statelock/ui/logout``: ends the session (recorded), back to the login page."""
    session = await current(request)
    if session is None:
        raise _login_redirect()
    ctx = ctx_of(request)
    async with request.config_dict[RECORDER].refusing(ctx):
        check_csrf(session, await request.post())
        await record_action(request, ctx, session.subject, "logout")
    request.config_dict[SESSIONS].end(request.cookies.get(COOKIE))
    resp = web.HTTPSeeOther(LOGIN)
    resp.del_cookie(COOKIE, path=cookie_options(False, None)["path"])
    raise with_decision(resp, ctx)


async def forbidden_page(request: web.Request, exc: SidecarError) -> web.Response:
    """The page for a refused request: the roles needed, or the error's own message (and its record's id)."""
    session = await current(request)
    roles = sorted(exc.roles) if isinstance(exc, NeedsRole) else []
    resp = page(request, "error.html", exc.status, session=session, roles=roles, message=exc.message,
                code=exc.code)
    if exc.decision_id:
        resp.headers[DECISION_HEADER] = exc.decision_id
    return resp
