"""The console's actions: replay a decision, export a view, backtest a candidate bundle.

Each is recorded like any other call (``auth.record_action``), and each POST checks
the session's CSRF token. Replay re-evaluates a decision's recorded (masked) input
against the revision it was decided under, when the engine still has it loaded, and
against the revision serving now. Export answers the filtered view of the decisions
page as CSV (cells neutralised, ``sidecar.audit.export``) or JSON, at most
``console.export_max_rows`` decisions. Backtest is for admins only: a candidate
bundle (a sub-directory of ``console.backtest_dir``) over the decisions of a time
window, at most ``console.backtest_max_decisions``, in a worker thread.
"""

from __future__ import annotations

import asyncio
from dataclasses import replace
from pathlib import Path
from typing import Any

from aiohttp import web

from sidecar.appkeys import CONFIG, DECISIONS, ENGINE, RECORDER
from sidecar.audit.export import csv_text, json_text
from sidecar.audit.query import QueryFilters, parse_time
from sidecar.errors import BadRequest, Forbidden, PolicyError
from sidecar.handlers.ui.auth import check_csrf, ctx_of, record_action, require, with_decision
from sidecar.handlers.ui.pages import decision_context, find_one, view_filters
from sidecar.handlers.ui.render import page
from sidecar.handlers.ui.session import Session
from sidecar.policy.backtest import BacktestResult, backtest
from sidecar.policy.decision import Decision


def _outcome(decision: Decision | None, error: str | None) -> dict[str, Any]:
    if error is not None:
        return {"outcome": "error", "reasons": [error], "revision": None}
    if decision is None:
        return {"outcome": "not loaded", "reasons": [], "revision": None}
    return {"outcome": "allow" if decision.allow else "deny", "reasons": list(decision.reasons),
            "revision": decision.revision, "status": decision.status, "lock_ids": list(decision.lock_ids)}


async def replay(request: web.Request) -> web.Response:
    """``POST /statelock/ui/decisions/{id}/replay``: the recorded input, re-decided; did the result change?"""
    ctx = ctx_of(request)
    async with request.config_dict[RECORDER].refusing(ctx):
        session = await require(request)
        check_csrf(session, await request.post())
        row = await find_one(request, request.match_info["decision_id"])
        engine = request.config_dict[ENGINE]
        inp = row.record.get("input") if isinstance(row.record.get("input"), dict) else {}
        assert isinstance(inp, dict)
        results: dict[str, dict[str, Any]] = {}
        for label, revision in (("recorded", row.revision), ("current", engine.revision)):
            try:
                decided = await engine.decide_at(inp, revision) if label == "recorded" else await engine.decide(inp)
                results[label] = _outcome(decided, None)
            except PolicyError as exc:
                results[label] = _outcome(None, exc.message)
        for result in results.values():
            result["changed"] = result["outcome"] in ("allow", "deny") and result["outcome"] != row.outcome
        await record_action(request, ctx, session.subject, "replay", params={"decision_id": row.decision_id},
                            result={"replay": {k: {"outcome": v["outcome"], "changed": v["changed"]}
                                               for k, v in results.items()}})
    return with_decision(page(request, "decision.html", session=session, replay=results, engine=engine.name,
                              loaded=engine.loaded_revisions(), **decision_context(row)), ctx)


async def export(request: web.Request) -> web.Response:
    """``GET /statelock/ui/decisions.csv`` and ``.json``: the filtered view, newest first."""
    session = await require(request)
    fmt = request.match_info["fmt"]
    filters, before, _, given = view_filters(request.query)
    most = request.config_dict[CONFIG].console.export_max_rows
    rows = await request.config_dict[DECISIONS].page(filters, before, most)
    ctx = ctx_of(request)
    await record_action(request, ctx, session.subject, "export", params={"format": fmt, "filters": given},
                        result={"rows": len(rows)})
    body, ctype = (csv_text(rows), "text/csv") if fmt == "csv" else (json_text(rows), "application/json")
    return with_decision(web.Response(text=body, content_type=ctype, charset="utf-8", headers={
        "Content-Disposition": f'attachment; filename="statelock-decisions.{fmt}"'}), ctx)


def _admin(request: web.Request, session: Session) -> None:
    admin_role = request.config_dict[CONFIG].identity.admin_role
    if not (session.subject.is_admin or admin_role in session.subject.roles):
        raise Forbidden(f"Backtest is for admins only (the {admin_role} role).")


def candidates(root: str | None) -> list[str]:
    """The candidate bundles: the sub-directories of ``console.backtest_dir`` (none when it is unset)."""
    if root is None or not Path(root).is_dir():
        return []
    return sorted(p.name for p in Path(root).iterdir() if p.is_dir() and not p.name.startswith("."))


def _candidate(root: str | None, name: str) -> Path:
    if root is None:
        raise BadRequest("Backtest is off: set console.backtest_dir to a directory of candidate bundles.")
    if name not in candidates(root):
        raise BadRequest(f"candidate: {name!r} is not a bundle directory in {root}")
    return Path(root) / name


async def backtest_page(request: web.Request) -> web.Response:
    """``GET /statelock/ui/backtest``: the form (admins only)."""
    session = await require(request)
    _admin(request, session)
    root = request.config_dict[CONFIG].console.backtest_dir
    return page(request, "backtest.html", session=session, root=root, candidates=candidates(root), result=None,
                form={})


async def run_backtest(request: web.Request) -> web.Response:
    """``POST /statelock/ui/backtest``: candidate, since, until -> changed counts and the first changes."""
    ctx = ctx_of(request)
    con = request.config_dict[CONFIG].console
    async with request.config_dict[RECORDER].refusing(ctx):
        session = await require(request)
        _admin(request, session)
        form = await request.post()
        check_csrf(session, form)
        path = _candidate(con.backtest_dir, str(form.get("candidate", "")))
        try:
            since = parse_time(str(form["since"]), "since") if form.get("since") else None
            until = parse_time(str(form["until"]), "until") if form.get("until") else None
            filters = QueryFilters(since=since, until=until)
        except ValueError as exc:
            raise BadRequest(str(exc)) from exc
        rows = await request.config_dict[DECISIONS].page(filters, None, con.backtest_max_decisions)
        records = [row.record for row in reversed(rows)]
        entrypoint = request.config_dict[CONFIG].policy.decision_path
        result: BacktestResult = await asyncio.to_thread(backtest, path, entrypoint, records)
        await record_action(request, ctx, session.subject, "backtest",
                            params={"candidate": path.name, "since": form.get("since") or None,
                                    "until": form.get("until") or None},
                            result={"backtest": {"evaluated": result.evaluated, "revision": result.revision,
                                                 "allow_to_deny": result.allow_to_deny,
                                                 "deny_to_allow": result.deny_to_allow}})
    return with_decision(page(request, "backtest.html", session=session, root=con.backtest_dir,
                              candidates=candidates(con.backtest_dir), result=replace(result, candidate=path.name),
                              form=dict(form), truncated=len(rows) >= con.backtest_max_decisions), ctx)
