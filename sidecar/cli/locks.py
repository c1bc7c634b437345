"""``statelock locks ...``, ``suspend-lock`` and ``unlock-resume``: the lock API from a shell.

The commands talk to a running Statelock over HTTP (``--url``, default
``$STATELOCK_URL`` or http://127.0.0.1:8774) with the caller's token (``--token``,
default ``$STATELOCK_TOKEN`` or ``$OS_AUTH_TOKEN``). Output is a table by default and
the API's JSON with ``--json``. Exit status: 0 done, 1 refused or failed (the
message says why, with the decision id to look up in the audit log), 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from sidecar.cli.migrate import add_migrate_command

DEFAULT_URL = "http://127.0.0.1:8774"
_COLUMNS = ("id", "kind", "scope", "target", "state", "owner", "expires_at", "reason")


class ApiError(Exception):
    """The API answered with an error."""

    def __init__(self, status: int, message: str, decision_id: str | None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.decision_id = decision_id


def call(url: str, token: str | None, method: str, path: str,
         body: dict[str, Any] | None = None) -> Any:
    """One API call; returns the decoded JSON (or None); raises ApiError or OSError."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url.rstrip("/") + path, data=data, method=method)
    req.add_header("Accept", "application/json")
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("X-Auth-Token", token)
    try:
        with urllib.request.urlopen(req, timeout=120) as resp:
            raw = resp.read()
    except urllib.error.HTTPError as exc:
        raw = exc.read()
        message = raw.decode(errors="replace")
        try:
            doc = json.loads(raw)
            inner = next(iter(doc.values())) if isinstance(doc, dict) and doc else {}
            message = inner.get("message", message) if isinstance(inner, dict) else message
        except ValueError:
            pass
        raise ApiError(exc.code, message, exc.headers.get("X-Statelock-Decision-Id")) from None
    return json.loads(raw) if raw else None


def _row(lock: dict[str, Any]) -> list[str]:
    owner = lock.get("owner") or {}
    values = dict(lock, owner=f"{owner.get('user_id')}@{owner.get('project_id')}")
    if lock.get("expired"):
        values["state"] = "expired"
    return ["" if values.get(c) is None else str(values.get(c)) for c in _COLUMNS]


def render_table(locks: list[dict[str, Any]]) -> str:
    """Locks as an aligned text table."""
    rows = [list(_COLUMNS)] + [_row(lk) for lk in locks]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip()
                     for r in rows)


def render_timeline(events: list[dict[str, Any]]) -> str:
    """An instance's lock events as lines: time, event, lock, kind, who, why."""
    if not events:
        return "no locks"
    return "\n".join(f"{e['at']}  {e['event']:<8} {e['lock_id']}  {e['kind']:<6} by {e['by'] or '-'}"
                     f"  {e['reason']}" for e in events)


def add_lock_commands(sub: Any) -> None:
    """Register ``locks``, ``suspend-lock`` and ``unlock-resume`` on the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=os.environ.get("STATELOCK_URL", DEFAULT_URL),
                        help="Statelock's address (default $STATELOCK_URL or %(default)s)")
    common.add_argument("--token", default=os.environ.get("STATELOCK_TOKEN")
                        or os.environ.get("OS_AUTH_TOKEN"),
                        help="your X-Auth-Token (default $STATELOCK_TOKEN or $OS_AUTH_TOKEN)")
    common.add_argument("--json", action="store_true", help="print the API's JSON")

    locks = sub.add_parser("locks", help="list, show, add and remove locks",
                           description="Manage locks through the running sidecar's API.")
    lsub = locks.add_subparsers(dest="locks_command", metavar="ACTION", required=True)
    add_migrate_command(lsub)
    ls = lsub.add_parser("list", parents=[common], help="list locks")
    for name in ("scope", "target", "kind", "owner"):
        ls.add_argument(f"--{name}", help=f"only locks with this {name}")
    state = ls.add_mutually_exclusive_group()
    state.add_argument("--state", choices=["active", "expired", "lifted", "all"],
                       help="which locks: in force (the default), expired, lifted, or all of them")
    state.add_argument("--all", dest="state", action="store_const", const="all",
                       help="every lock, lifted and expired ones too (the same as --state all)")
    history = lsub.add_parser("history", parents=[common], help="an instance's lock timeline",
                              description="Every lock the instance had, created, lifted and expired, "
                                          "oldest first, with who and why.")
    history.add_argument("instance_id", help="the instance (server UUID)")
    show = lsub.add_parser("show", parents=[common], help="show one lock")
    show.add_argument("lock_id", help="the lock's id (lk-...)")
    add = lsub.add_parser("add", parents=[common], help="place a lock",
                          epilog="example: statelock locks add --kind delete --scope instance "
                                 "--target 8f0c... --reason 'legal hold 42'")
    add.add_argument("--kind", choices=["state", "boot", "delete"], default="state",
                     help="state: every state change; boot: whatever would run it again; delete: "
                          "deletion (default %(default)s)")
    add.add_argument("--scope", choices=["instance", "project", "host"], default="instance",
                     help="what --target names (default %(default)s)")
    add.add_argument("--target", required=True, help="instance UUID, project id or host name")
    add.add_argument("--reason", required=True, help="why; shown in every refusal the lock causes")
    add.add_argument("--expires-at", help="RFC 3339 time after which the lock stops applying")
    add.add_argument("--force", action="store_true",
                     help="place it even though the target does not exist (yet); the record says so")
    rm = lsub.add_parser("remove", parents=[common], help="lift a lock (its row stays as history)")
    rm.add_argument("lock_id", help="the lock's id (lk-...)")

    sl = sub.add_parser("suspend-lock", parents=[common],
                        help="lock an instance (boot lock) and suspend it",
                        description="The locking suspend: the lock is in force before the "
                                    "suspend is sent; a failed suspend keeps the lock.")
    sl.add_argument("instance_id", help="the instance (server UUID)")
    sl.add_argument("--reason", required=True,
                    help="why, shown to the owner in every refusal (e.g. 'billing: invoice 881 overdue')")
    sl.add_argument("--kind", choices=["state", "boot", "delete"], default="boot",
                    help="the lock's kind (default boot: nothing may make the instance run again)")
    ur = sub.add_parser("unlock-resume", parents=[common],
                        help="lift an instance's suspend-lock and resume it",
                        description="Lift every suspend-lock of the instance (all or none, as the "
                                    "policy allows: billing's lock only by billing or an override "
                                    "role) and resume it when it is suspended.")
    ur.add_argument("instance_id", help="the instance (server UUID)")


def run_lock_command(args: argparse.Namespace) -> int:
    """Run a command registered by ``add_lock_commands``; returns the exit status."""
    try:
        doc, locks = _dispatch(args)
    except ApiError as exc:
        ref = f" (decision {exc.decision_id})" if exc.decision_id else ""
        print(f"statelock: refused with {exc.status}: {exc.message}{ref}", file=sys.stderr)
        if exc.status == 401:
            given = "the token given was not accepted" if args.token else "no token was given"
            print(f"statelock: {given}: pass --token or set STATELOCK_TOKEN. With identity mode noauth "
                  "the token is user:project[:role1,role2], e.g. billing-svc:service:billing; with "
                  "keystone, a token from `openstack token issue -f value -c id`.", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"statelock: cannot reach {args.url}: {exc}", file=sys.stderr)
        return 1
    if args.json:
        print(json.dumps(doc, indent=2))
    elif locks is not None:
        print(render_table(locks) if locks else "no locks")
    return 0


def _dispatch(args: argparse.Namespace) -> tuple[Any, list[dict[str, Any]] | None]:
    url, token = args.url, args.token
    if args.command == "suspend-lock":
        doc = call(url, token, "POST", f"/statelock/v1/instances/{args.instance_id}/suspend-lock",
                   {"reason": args.reason, "kind": args.kind})
        return doc, [doc["lock"]]
    if args.command == "unlock-resume":
        doc = call(url, token, "POST", f"/statelock/v1/instances/{args.instance_id}/unlock-resume",
                   {})
        return doc, doc["unlocked"]
    sub = args.locks_command
    if sub == "list":
        query = {k: getattr(args, k) for k in ("scope", "target", "kind", "owner", "state")
                 if getattr(args, k)}
        qs = "?" + urllib.parse.urlencode(query) if query else ""
        doc = call(url, token, "GET", f"/statelock/v1/locks{qs}")
        return doc, doc["locks"]
    if sub == "history":
        doc = call(url, token, "GET", f"/statelock/v1/instances/{urllib.parse.quote(args.instance_id)}/locks")
        if not args.json:
            print(render_timeline(doc["events"]))
        return doc, None
    if sub == "show":
        doc = call(url, token, "GET", f"/statelock/v1/locks/{urllib.parse.quote(args.lock_id)}")
        return doc, [doc["lock"]]
    if sub == "add":
        spec = {"kind": args.kind, "scope": args.scope, "target": args.target,
                "reason": args.reason, "expires_at": args.expires_at, "force": args.force}
        doc = call(url, token, "POST", "/statelock/v1/locks", {"lock": spec})
        return doc, [doc["lock"]]
    path = f"/statelock/v1/locks/{urllib.parse.quote(args.lock_id)}"
    call(url, token, "DELETE", path)
    doc = call(url, token, "GET", path)
    return doc, [doc["lock"]]
