"""``statelock policy test`` and ``statelock policy eval``: tools for policy authors.

``policy test`` runs OPA's own ``opa test`` on the bundle. ``policy eval`` decides
one input with the embedded engine (the default), the real OPA binary
(``--engine opa``) or a running OPA server (``--engine opa --opa-url URL``), and
prints the decision, its reasons and what decided it: the policy branch, and for
each input lock its authority, whether it blocks the action, and whether it was
bypassed or held. The per-lock facts come from the bundle's own helper rules
(``authority``, ``blocking``, ``bypassed``, ``held_locks``, ``unlock_checked`` in
``data.statelock.authz``), evaluated by the same engine as the decision.

Exit status: 0 allowed (or tests passed), 1 denied (or tests failed), 2 error
(no OPA, unreadable input, unusable bundle, engine failure).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sidecar.config import PolicyConfig
from sidecar.errors import ConfigError, PolicyError
from sidecar.policy.bundle import load_bundle
from sidecar.policy.decision import Decision, decision_from_result
from sidecar.policy.wasm.compiler import find_opa

DEFAULT_BUNDLE = "policies/"
DECISION_PATH = "statelock/authz/decision"

# One query for `opa eval`, OPA's /v1/query and the embedded engine (which compiles it as a rule).
EXPLAIN_QUERY = (
    'explanation := {'
    '"request_ok": [true | data.statelock.authz.request_ok], '
    '"authority": [[i, a] | lk := input.locks[i]; a := data.statelock.authz.authority(lk)], '
    '"blocking": [i | lk := input.locks[i]; data.statelock.authz.blocking[_] == lk], '
    '"bypassed": [i | lk := input.locks[i]; data.statelock.authz.bypassed(lk)], '
    '"held": [i | lk := input.locks[i]; data.statelock.authz.held_locks[_] == lk], '
    '"removable": [[i, ok] | lk := input.locks[i]; c := data.statelock.authz.unlock_checked[_]; '
    'c[0] == lk; ok := c[2]]}'
)
GUARDED = ("state_change", "delete", "create")


def add_policy_commands(subparsers: Any) -> None:
    """Register ``policy test`` and ``policy eval`` on the CLI's subparsers."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--bundle", default=DEFAULT_BUNDLE, metavar="DIR",
                        help="the policy bundle directory (default %(default)s)")
    common.add_argument("--opa", metavar="PATH",
                        help="the opa binary (default: opa on PATH, else .tools/bin/opa)")
    policy = subparsers.add_parser(
        "policy", help="test the policy bundle, or evaluate it on one input",
        description="Tools for policy authors: run the bundle's Rego tests, or decide one input "
                    "and explain the decision.")
    psub = policy.add_subparsers(dest="policy_command", metavar="ACTION", required=True)
    test = psub.add_parser(
        "test", parents=[common], help="run `opa test` on the bundle",
        description="Run the bundle's Rego tests with OPA. Exit 0 if they pass, 1 if not, 2 if "
                    "OPA is missing.")
    test.add_argument("-v", "--verbose", action="store_true", help="list every test")
    test.add_argument("--coverage", action="store_true",
                      help="also print the policy's test coverage")
    ev = psub.add_parser(
        "eval", parents=[common], help="decide one input and explain the decision",
        description="Decide one policy input (the JSON the sidecar sends; a decision record or "
                    '{"input": ...} works too) and print the decision, its reasons and what decided '
                    "it. Exit 0 allowed, 1 denied, 2 error.",
        epilog="example: statelock policy eval --input input.json --explain\n"
               "         statelock policy eval --input input.json --engine opa",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ev.add_argument("--input", "-i", required=True, metavar="FILE", help="input JSON file, - for stdin")
    ev.add_argument("--engine", choices=["embedded", "opa"],
                    help="embedded (the bundle compiled by OPA to Wasm, in process; the default) or "
                         "opa (the opa binary, or the server given by --opa-url)")
    ev.add_argument("--opa-url", metavar="URL", help="ask this OPA server (implies --engine opa)")
    ev.add_argument("--timeout-ms", type=int, default=2000, help="OPA server timeout (default %(default)s)")
    ev.add_argument("--explain", action="store_true",
                    help="show, for each input lock, its authority and whether it blocks, was "
                         "bypassed or held")
    ev.add_argument("--json", action="store_true", help="print the decision (and explanation) as JSON")


def run_policy_command(args: argparse.Namespace) -> int:
    """Run ``policy test`` or ``policy eval``; returns the exit status."""
    try:
        if args.policy_command == "test":
            return _test(args)
        return _eval(args)
    except (PolicyError, ConfigError) as exc:
        print(f"statelock policy {args.policy_command}: {exc.message}", file=sys.stderr)
        return 2


# --- policy test -------------------------------------------------------------------------------------

def _bundle_dir(value: str) -> Path:
    path = Path(value)
    if not path.is_dir():
        raise PolicyError(f"--bundle {value}: not a directory (the bundle holds .manifest, *.rego, data.json)")
    return path


def _test(args: argparse.Namespace) -> int:
    opa = find_opa(args.opa)
    bundle = _bundle_dir(args.bundle)
    cmd = [opa, "test", str(bundle)] + (["-v"] if args.verbose else [])
    done = subprocess.run(cmd, check=False)
    if done.returncode != 0:
        print(f"statelock policy test: `{' '.join(cmd)}` failed (exit {done.returncode})", file=sys.stderr)
        return 1
    if args.coverage:
        report = subprocess.run([opa, "test", str(bundle), "--coverage", "--format", "json"],
                                capture_output=True, text=True, check=False)
        files = json.loads(report.stdout).get("files", {}) if report.returncode == 0 else {}
        for name, f in sorted(files.items()):
            if not name.endswith("_test.rego"):
                print(f"coverage {f.get('coverage', 0):.1f}%  {name}")
    return 0


# --- policy eval -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class LockFacts:
    """What the policy made of one input lock."""

    index: int
    id: Any
    kind: Any
    scope: Any
    authority: str | None
    blocks: bool
    bypassed: bool
    held: bool
    removable: bool | None


def read_input(name: str) -> dict[str, Any]:
    """The policy input in FILE (``-``: stdin); a decision record or ``{"input": ...}`` gives its input."""
    try:
        text = sys.stdin.read() if name == "-" else Path(name).read_text(encoding="utf-8")
        doc = json.loads(text)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PolicyError(f"--input {name}: {exc}") from exc
    if isinstance(doc, dict) and isinstance(doc.get("input"), dict) and not {"subject", "action"} & set(doc):
        doc = doc["input"]
    if not isinstance(doc, dict):
        raise PolicyError(f"--input {name}: the policy input must be a JSON object")
    return doc


def _opa_eval(args: argparse.Namespace, query: str, input_doc: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Run ``opa eval`` on the bundle; returns the result list (expressions and bindings)."""
    cmd = [find_opa(args.opa), "eval", "--format", "json", "--bundle", str(args.bundle),
           "--ignore", "*_test.rego", "--stdin-input", query]
    done = subprocess.run(cmd, input=json.dumps(input_doc), capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise PolicyError(f"opa eval failed: {(done.stdout + done.stderr).strip()[:2000]}")
    results = json.loads(done.stdout).get("result", [])
    return results if isinstance(results, list) else []


def _decide_embedded(args: argparse.Namespace, input_doc: Mapping[str, Any],
                     explain: bool) -> tuple[Decision, Any]:
    from sidecar.policy.embedded import EmbeddedEngine, explain_bundle

    engine = EmbeddedEngine(PolicyConfig(bundle=str(args.bundle), decision_path=DECISION_PATH,
                                         opa_binary=args.opa or ""))
    engine.load()
    decision = engine.decide_sync(input_doc)
    explanation = None
    if explain:
        explanation = explain_bundle(load_bundle(args.bundle), EXPLAIN_QUERY, input_doc, args.opa)
    return decision, explanation


def _decide_opa_binary(args: argparse.Namespace, input_doc: Mapping[str, Any],
                       explain: bool) -> tuple[Decision, Any]:
    revision = load_bundle(args.bundle).revision
    results = _opa_eval(args, "data." + DECISION_PATH.replace("/", "."), input_doc)
    value = results[0]["expressions"][0]["value"] if results else None
    decision = decision_from_result(value, revision)
    explanation = None
    if explain:
        found = _opa_eval(args, EXPLAIN_QUERY, input_doc)
        explanation = found[0].get("bindings", {}).get("explanation") if found else None
    return decision, explanation


async def _decide_opa_server(args: argparse.Namespace, input_doc: Mapping[str, Any],
                             explain: bool) -> tuple[Decision, Any]:
    from sidecar.policy.opa import OpaEngine

    engine = OpaEngine(PolicyConfig(engine="opa", opa_url=args.opa_url, timeout_ms=args.timeout_ms,
                                    decision_path=DECISION_PATH))
    await engine.start()
    try:
        decision = await engine.decide(input_doc)
        explanation = None
        if explain:
            bindings = await engine.query(EXPLAIN_QUERY, input_doc)
            explanation = bindings[0].get("explanation") if bindings else None
        return decision, explanation
    finally:
        await engine.close()


def lock_facts(input_doc: Mapping[str, Any], explanation: Any) -> list[LockFacts]:
    """Per-lock facts from the explanation query's answer (empty when there is none)."""
    locks = input_doc.get("locks")
    if not isinstance(explanation, Mapping) or not isinstance(locks, list):
        return []
    authority = {i: a for i, a in explanation.get("authority", [])}
    removable = {i: ok for i, ok in explanation.get("removable", [])}
    blocking, bypassed, held = (set(explanation.get(k, [])) for k in ("blocking", "bypassed", "held"))
    out = []
    for i, lk in enumerate(locks):
        lk = lk if isinstance(lk, Mapping) else {}
        out.append(LockFacts(i, lk.get("id"), lk.get("kind"), lk.get("scope"), authority.get(i),
                             i in blocking, i in bypassed, i in held, removable.get(i)))
    return out


def branch(input_doc: Mapping[str, Any], decision: Decision, explanation: Any) -> str:
    """Which part of the policy made the decision, in the policy's own rule names."""
    action = input_doc.get("action")
    kind = action.get("kind") if isinstance(action, Mapping) else None
    name = action.get("name") if isinstance(action, Mapping) else None
    request_ok = isinstance(explanation, Mapping) and bool(explanation.get("request_ok"))
    defaulted = decision.reasons == ("no policy rule allows this request",)
    if kind == "read":
        return "decision (read branch): reads are always allowed"
    if defaulted:
        if kind not in (*GUARDED, "lock", "unlock"):
            return f"default decision: action.kind {kind!r} is not one the policy knows"
        if explanation is not None and not request_ok:
            return "default decision: the input lacks subject.roles (a list), target (an object) or locks (a list)"
        return "default decision: a lock is malformed (no string id, no owner.roles list) or of an unknown kind"
    if kind in GUARDED:
        locks = input_doc.get("locks")
        if not locks:
            return f"guard_decision: no locks in force, {kind} {name!r} allowed"
        return f"guard_locks_decision: the locks that block {name!r}, less those the subject's roles bypass"
    if kind == "lock":
        if name == "suspend_lock":
            return "suspend_lock_decision: a suspend-lock needs one of data.statelock.suspend_lock_roles"
        return "lock_decision: lock_roles, or a member of the target's project; existing locks never block a lock"
    return "unlock_decision: each lock must be removable by its authority's unlock roles or an override role"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def render(input_doc: Mapping[str, Any], decision: Decision, explanation: Any, engine: str,
           explain: bool) -> str:
    """The decision for a terminal."""
    verdict = "ALLOW" if decision.allow else "DENY"
    status = 200 if decision.allow else decision.status
    lines = [f"decision: {verdict} ({status})   engine {engine}   revision {decision.revision or '-'}"
             + (f"   opa decision_id {decision.engine_decision_id}" if decision.engine_decision_id else "")]
    lines.append("reasons:" if decision.reasons else "reasons: none")
    lines += [f"  - {r}" for r in decision.reasons]
    if decision.lock_ids:
        lines.append(f"locks that denied it: {', '.join(decision.lock_ids)}")
    if decision.overrides:
        lines.append(f"locks overridden by the subject's role: {', '.join(decision.overrides)}")
    lines.append(f"rule: {branch(input_doc, decision, explanation)}")
    if not explain:
        return "\n".join(lines)
    action = input_doc.get("action")
    kind = action.get("kind") if isinstance(action, Mapping) else None
    facts = lock_facts(input_doc, explanation)
    if explanation is None:
        lines.append("locks: no explanation (the bundle lacks data.statelock.authz's helper rules)")
    elif not facts:
        lines.append("locks: none in the input")
    else:
        lines.append("locks:")
    for f in facts:
        head = f"  [{f.index}] {f.id}  kind {f.kind}  scope {f.scope}  authority {f.authority or '-'}"
        if kind in GUARDED:
            if not f.blocks:
                what = "does not block this action"
            elif f.bypassed:
                what = "blocks this action, bypassed by the subject's role (an override)"
            else:
                what = "blocks this action and holds: it denies"
        elif kind == "unlock":
            what = {True: "may be removed by this subject", False: "may NOT be removed by this subject",
                    None: "not checked (malformed)"}[f.removable]
        else:
            what = "does not matter to this action"
        lines.append(f"{head}: {what}")
    return "\n".join(lines)


def _eval(args: argparse.Namespace) -> int:
    if args.engine == "embedded" and args.opa_url:
        raise PolicyError("--opa-url asks an OPA server: use it with --engine opa (or alone)")
    input_doc = read_input(args.input)
    if args.engine in (None, "embedded") and not args.opa_url:
        _bundle_dir(args.bundle)
        decision, explanation = _decide_embedded(args, input_doc, args.explain)
        engine = "embedded (OPA-compiled Wasm)"
    elif args.opa_url:
        decision, explanation = asyncio.run(_decide_opa_server(args, input_doc, args.explain))
        engine = f"opa server {args.opa_url}"
    else:
        _bundle_dir(args.bundle)
        decision, explanation = _decide_opa_binary(args, input_doc, args.explain)
        engine = "opa eval"
    if args.json:
        doc: dict[str, Any] = {"decision": dict(decision.result), "revision": decision.revision,
                               "engine_decision_id": decision.engine_decision_id,
                               "rule": branch(input_doc, decision, explanation)}
        if args.explain:
            doc["locks"] = [f.__dict__ for f in lock_facts(input_doc, explanation)]
        print(json.dumps(doc, indent=2, ensure_ascii=False))
    else:
        print(render(input_doc, decision, explanation, engine, args.explain))
    return 0 if decision.allow else 1


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m sidecar.cli.policy ...``: the policy commands on their own."""
    parser = argparse.ArgumentParser(prog="statelock")
    add_policy_commands(parser.add_subparsers(dest="command", required=True))
    return run_policy_command(parser.parse_args(argv))


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
