"""``statelock audit``: verify a decision log (its chain and checkpoints), query it, print its key.

``add_audit_commands`` adds the ``audit`` command to the top-level parser;
``run_audit_command`` runs it and returns the exit status: 0 when the check passed
(or the query ran, or the key was printed), 1 when the log is bad, 2 on a usage
error or a file that can't be read.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from sidecar.audit.checkpoint import CheckpointLine, read_checkpoints
from sidecar.audit.checkpoint_verify import CheckpointReport, covered_seqs, verify_checkpoints
from sidecar.audit.files import active_path, checkpoints_path, default_key_path, log_files
from sidecar.audit.query import FILTER_KEYS, OUTCOMES, filters_from_mapping, query_records, record_instance
from sidecar.audit.signing import key_id, load_public, public_pem
from sidecar.audit.verify import VerifyResult, verify_files
from sidecar.cli.common import command_group, group_usage
from sidecar.config import load_config
from sidecar.errors import AuditError
from sidecar.workers import worker_chains

AUDIT_EPILOG = """\
examples:
  statelock audit verify decisions.jsonl
  statelock audit verify decisions.jsonl.* decisions.jsonl     # rotated files, oldest first
  statelock audit query decisions.jsonl --outcome deny --since 2026-11-25T00:00:00Z
  statelock audit query decisions.jsonl.* decisions.jsonl --instance 8f0c... --format json
  statelock audit public-key --config /etc/statelock/statelock.yaml > statelock-audit.pub
"""

VERIFY_DESCRIPTION = """\
Check the hash chain of a decision log. Each record carries its sequence number, the
hash of the record before it and its own hash, so an edited, deleted, inserted,
duplicated or reordered record breaks the chain. Give every file of the log, oldest
first: rotated files are named FILE.000001, FILE.000002, ... (a shell glob lists them
in order) and the active FILE comes last; the chain runs on across them, so a missing
file is caught too.

A chain can't show records cut off its end; signed checkpoints can. They are read from
FILE-checkpoints beside the active file (or --checkpoints), and each is checked: its
Ed25519 signature, its link to the checkpoint before, and that the log's record at
its seq has its hash. A log that ends before its last checkpoint is reported as
truncated, with the number of records missing. The key is the signing key beside the
log (FILE-signing.key) or, on a machine without it, the public key given with
--public-key (print it with: statelock audit public-key).

With server.workers > 1 each worker writes its own chain (FILE, FILE-w2, ... before
the suffix: decisions-w2.jsonl); --config CONFIG verifies every one of them in turn.

Exit status: 0 if the chain and the checkpoints are intact, 1 naming the first bad
record and every bad checkpoint (file, line, seq, reason), 2 if a file can't be read
or the arguments are wrong.
"""

VERIFY_EPILOG = """\
examples:
  statelock audit verify /var/lib/statelock/decisions.jsonl
  statelock audit verify decisions.jsonl.* decisions.jsonl
  statelock audit verify --config /etc/statelock/statelock.yaml              # every worker's chain
  statelock audit verify --partial decisions.jsonl.000042 decisions.jsonl   # older files removed
  statelock audit verify --public-key statelock-audit.pub --checkpoints copy/decisions.jsonl-checkpoints \
      copy/decisions.jsonl.* copy/decisions.jsonl                              # offline, public key only
"""

PUBLIC_KEY_DESCRIPTION = """Print the public half of the key that signs the decision log's checkpoints, as PEM
(its key id goes to stderr). Give the key file, or the config whose audit.signing_key
(default: <audit.path>-signing.key) names it. Hand the output to whoever verifies the
log elsewhere: statelock audit verify --public-key FILE.
"""

QUERY_DESCRIPTION = """\
Print the decision records that match every filter given (no filter: all of them),
oldest first. Completion records are not printed; the upstream status they carry is
shown with their decision. --since is inclusive and --until exclusive; both take RFC
3339 timestamps (2026-11-25T01:00:00Z) or a date (2026-11-25, midnight UTC).
"""

QUERY_EPILOG = """\
examples:
  statelock audit query decisions.jsonl --outcome deny
  statelock audit query decisions.jsonl.* decisions.jsonl --instance 8f0c2d5e --since 2026-11-25
  statelock audit query decisions.jsonl --subject alice --action resume --format json
  statelock audit query decisions.jsonl --lock lk-1 --until 2026-11-26T00:00:00Z --limit 20
  statelock audit query decisions.jsonl.* decisions.jsonl --decision-id 3f2a9c1e --format json
"""

TABLE_COLUMNS = ("time", "decision_id", "outcome", "subject", "action", "instance", "status", "reasons")


def add_audit_commands(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``audit verify`` and ``audit query`` under ``subparsers`` (the ``statelock`` command's)."""
    sub = command_group(subparsers, "audit", help="verify and query the decision log",
                        description="Tools for the decision log: verify its hash chain and "
                                    "checkpoints, query its records, print the signing public key.",
                        epilog=AUDIT_EPILOG, dest="audit_command")

    verify = sub.add_parser("verify", help="check the hash chain; exit 1 naming the first bad record",
                            description=VERIFY_DESCRIPTION, epilog=VERIFY_EPILOG,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    verify.add_argument("files", nargs="*", metavar="FILE", help="log files, oldest first")
    verify.add_argument("--config", "-c", metavar="CONFIG",
                        help="verify every chain the config's audit.path has (each worker's, with its "
                             "rotated files and checkpoints) instead of FILEs")
    verify.add_argument("--partial", action="store_true",
                        help="the first file is not the log's first (older rotated files were removed "
                             "on purpose): take its first record's link on trust")
    verify.add_argument("--checkpoints", metavar="FILE",
                        help="the checkpoint file (default: FILE-checkpoints beside the last FILE's active file)")
    verify.add_argument("--no-checkpoints", action="store_true",
                        help="check the records' chain only, not the checkpoints")
    keys = verify.add_mutually_exclusive_group()
    keys.add_argument("--public-key", metavar="PEM",
                      help="the public key to check checkpoint signatures with (no private key needed)")
    keys.add_argument("--signing-key", metavar="PEM",
                      help="the private signing key, if not FILE-signing.key beside the log")

    public = sub.add_parser("public-key", help="print the public key that checkpoint signatures verify with",
                            description=PUBLIC_KEY_DESCRIPTION,
                            formatter_class=argparse.RawDescriptionHelpFormatter)
    public.add_argument("key", nargs="?", metavar="KEY", help="the signing key file (PEM)")
    public.add_argument("--config", "-c", metavar="FILE", help="a config file: use its audit.signing_key")

    query = sub.add_parser("query", help="print the decision records that match filters",
                           description=QUERY_DESCRIPTION, epilog=QUERY_EPILOG,
                           formatter_class=argparse.RawDescriptionHelpFormatter)
    query.add_argument("files", nargs="+", metavar="FILE", help="log files, oldest first")
    query.add_argument("--decision-id", metavar="ID", dest="decision_id",
                       help="one decision: its id (from an X-Statelock-Decision-Id header or a "
                            "refusal message), or the id's first 8 or more characters")
    query.add_argument("--instance", metavar="ID", help="the instance (server id) the request was about")
    query.add_argument("--project", metavar="ID", help="the instance's project (or the caller's)")
    query.add_argument("--subject", metavar="USER", help="the caller's user id")
    query.add_argument("--revision", metavar="REV", help="the policy revision it was decided under")
    query.add_argument("--outcome", choices=OUTCOMES, help="the decision's outcome")
    query.add_argument("--action", metavar="NAME", help="the action name (resume, os-stop, lock, ...)")
    query.add_argument("--lock", metavar="LOCK_ID",
                       help="a lock: the call that placed it, those it was in force for or blocked, "
                            "and the one that lifted it")
    query.add_argument("--since", metavar="TIME", help="records at or after TIME (RFC 3339 or a date)")
    query.add_argument("--until", metavar="TIME", help="records before TIME (RFC 3339 or a date)")
    query.add_argument("--limit", metavar="N", help="only the N most recent matches")
    query.add_argument("--format", choices=("table", "json"), default="table",
                       help="an aligned table (default) or one JSON array of the full records")


def run_audit_command(args: argparse.Namespace) -> int:
    """Run the ``audit`` subcommand parsed into ``args``; the exit status."""
    command = getattr(args, "audit_command", None)
    if command == "verify":
        return _verify(args)
    if command == "query":
        return _query(args)
    if command == "public-key":
        return _public_key(args.key, args.config)
    return group_usage(args)


def _verify(args: argparse.Namespace) -> int:
    if (args.config is None) == (not args.files):
        return _usage("verify: give the FILEs of one chain, or --config CONFIG for all of them (one of these)")
    if args.config is not None:
        return _verify_config(args)
    return _verify_chain(args)


def _verify_config(args: argparse.Namespace) -> int:
    """Verify each worker chain of the config's ``audit.path`` in turn; the worst status."""
    cfg = load_config(args.config)
    worst = 0
    for chain in worker_chains(cfg.audit.path, cfg.server.workers):
        files = [str(f) for f in log_files(chain)]
        if not files:
            print(f"chain {chain}: no files (this worker has not written yet)")
            continue
        print(f"chain {chain}:")
        one = argparse.Namespace(**{**vars(args), "files": files, "checkpoints": None,
                                    "signing_key": args.signing_key or cfg.audit.signing_key})
        worst = max(worst, _verify_chain(one))
    return worst


def _verify_chain(args: argparse.Namespace) -> int:
    active = active_path(args.files[-1])
    cp_path = args.checkpoints or str(checkpoints_path(active))
    lines: list[CheckpointLine] = []
    public: Ed25519PublicKey | None = None
    use_checkpoints = not args.no_checkpoints and (args.checkpoints is not None or os.path.exists(cp_path))
    if use_checkpoints:
        try:
            lines = read_checkpoints(cp_path)
        except OSError as exc:
            return _usage(f"cannot read the checkpoints {cp_path}: {exc.strerror or exc}")
        key = args.public_key or args.signing_key or str(default_key_path(active))
        if not (args.public_key or args.signing_key) and not os.path.exists(key):
            return _usage(f"checkpoints found in {cp_path}, but no key to check them with ({key} is not "
                          "here): give --public-key FILE (print it with: statelock audit public-key), or "
                          "--no-checkpoints")
        try:
            public = load_public(key)
        except AuditError as exc:
            return _usage(f"{exc.message} (give --public-key FILE, or --no-checkpoints)")
    result = verify_files(args.files, from_genesis=not args.partial, want=covered_seqs(lines))
    status = _print_chain(result)
    if public is None:
        if status == 0 and not args.no_checkpoints:
            print(f"note: no checkpoints ({cp_path} not found): records cut off the end can't be detected")
        return status
    report = verify_checkpoints(lines, public, result)
    _print_checkpoints(cp_path, report)
    return status or (0 if report.ok else 1)


def _print_chain(result: VerifyResult) -> int:
    if result.ok:
        plural = "s" if result.files != 1 else ""
        print(f"ok: {result.records} records in {result.files} file{plural}, chain intact "
              f"(last seq {result.last_seq}, last hash {result.last_hash})")
        return 0
    bad = result.first_bad
    assert bad is not None
    where = f"{bad.file} line {bad.line}" if bad.line else bad.file
    seq = f" (seq {bad.seq})" if bad.seq is not None else ""
    print(f"FAILED: {where}{seq}: {bad.reason}")
    print(f"  {result.records} records before it verified")
    return 2 if bad.line == 0 else 1


_MAX_PROBLEMS = 10


def _print_checkpoints(path: str, report: CheckpointReport) -> None:
    for problem in report.problems[:_MAX_PROBLEMS]:
        number = f" (checkpoint {problem.checkpoint_seq})" if problem.checkpoint_seq is not None else ""
        print(f"FAILED: {path} line {problem.line}{number}: {problem.reason}")
    if len(report.problems) > _MAX_PROBLEMS:
        print(f"  ... and {len(report.problems) - _MAX_PROBLEMS} more checkpoint problems")
    if report.ok:
        plural = "s" if report.checkpoints != 1 else ""
        print(f"ok: {report.checkpoints} checkpoint{plural} in {path}, signatures valid (key "
              f"{report.key_id}), chained")
    last = report.last
    if report.ok and last is not None:
        covered = last.get("log", {}).get("seq")
        print(f"  last checkpoint: {last.get('checkpoint_seq')} of {last.get('timestamp')}, covering seq "
              f"{covered}; {report.uncovered} record{'s' if report.uncovered != 1 else ''} after it "
              "not covered yet")
    if report.unchecked:
        print(f"  {report.unchecked} checkpoint{'s' if report.unchecked != 1 else ''} could not be compared "
              "with the records (before the first file given, or after the break above)")


def _public_key(key: str | None, config: str | None) -> int:
    if (key is None) == (config is None):
        return _usage("public-key: give the KEY file or --config FILE (one of them)")
    if key is None:
        assert config is not None
        cfg = load_config(config)
        key = cfg.audit.signing_key or str(default_key_path(cfg.audit.path))
    if not os.path.exists(key):
        return _usage(f"public-key: no signing key at {key} (statelock serve makes it when it first opens "
                      "the decision log)")
    try:
        public = load_public(key)
    except AuditError as exc:
        return _usage(f"public-key: {exc.message}")
    print(f"key id {key_id(public)}", file=sys.stderr)
    return write_stdout([public_pem(public)])


def _usage(message: str) -> int:
    print(f"statelock audit: {message}", file=sys.stderr)
    return 2


def _query(args: argparse.Namespace) -> int:
    given = {key: getattr(args, key) for key in FILTER_KEYS if getattr(args, key, None) is not None}
    try:
        filters = filters_from_mapping(given)
    except ValueError as exc:
        # NOTE: the filter's name is its option's without the dashes ("decision_id" is --decision-id).
        print(f"statelock audit query: --{str(exc).replace('decision_id:', 'decision-id:', 1)}",
              file=sys.stderr)
        return 2
    try:
        records = query_records(args.files, filters)
    except OSError as exc:
        print(f"statelock audit query: cannot read {exc.filename}: {exc.strerror}", file=sys.stderr)
        return 2
    if args.format == "json":
        encoder = json.JSONEncoder(indent=2, ensure_ascii=False)
        return write_stdout([*encoder.iterencode(records), "\n"])
    return write_stdout(format_table(records).splitlines(keepends=True))


def write_stdout(chunks: Iterable[str]) -> int:
    """Write ``chunks`` to stdout; 0, also when the reader went away (``... | head -1``).

    A closed pipe is not an error of the command: it ends quietly, with stdout pointed
    at /dev/null so that the interpreter's last flush has nowhere to fail.
    """
    try:
        for chunk in chunks:
            sys.stdout.write(chunk)
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return 0


def format_table(records: list[dict[str, Any]]) -> str:
    """Decision records as an aligned table (see TABLE_COLUMNS), one line each."""
    rows = [list(TABLE_COLUMNS)] + [_row(r) for r in records]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_COLUMNS) - 1)]
    lines = ["  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip()
             for row in rows]
    if not records:
        lines.append("(no matching records)")
    return "\n".join(lines) + "\n"


def _row(record: Mapping[str, Any]) -> list[str]:
    inp = _obj(record.get("input"))
    st = _obj(record.get("statelock"))
    outcome = str(st.get("outcome", "-"))
    if st.get("enforced") is False:
        outcome += " (dry-run)"
    upstream = _obj(st.get("upstream")).get("status")
    status = upstream if upstream is not None else _obj(st.get("http")).get("status")
    reasons = [str(r) for r in _obj(record.get("result")).get("reasons") or []]
    if not reasons and isinstance(record.get("error"), dict):
        reasons = [str(record["error"].get("message", ""))]
    return [str(record.get("timestamp", "-")), str(record.get("decision_id", "-")), outcome,
            str(_obj(inp.get("subject")).get("user_id") or "-"),
            str(_obj(inp.get("action")).get("name") or "-"),
            record_instance(record) or "-",
            str(status) if status else "-",
            "; ".join(r for r in reasons if r) or "-"]


def _obj(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, dict) else {}
