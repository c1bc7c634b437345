"""The ``statelock`` command line: serve, check-config, and the audit tools.

Every command exits 0 on success, 1 when what it checked is bad, 2 on usage or
configuration errors, with a message that says what to fix.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from sidecar import __version__
from sidecar.cli.audit import add_audit_commands, run_audit_command
from sidecar.cli.hypervisor import add_hypervisor_commands, run_hypervisor_command
from sidecar.cli.locks import add_lock_commands, run_lock_command
from sidecar.cli.migrate import run_migrate_command
from sidecar.cli.policy import add_policy_commands, run_policy_command
from sidecar.cli.serve import check, serve
from sidecar.errors import ConfigError, SidecarError

EPILOG = """\
examples:
  statelock serve --config config/dev.yaml
  STATELOCK_LISTEN=0.0.0.0:8774 statelock serve --config /etc/statelock/statelock.yaml
  statelock check-config /etc/statelock/statelock.yaml
  statelock check-config --explain        # every key with its default and meaning
  statelock locks list --target 8f0c...   # the lock API (STATELOCK_TOKEN=user:project:roles)
  statelock suspend-lock 8f0c... --reason "billing: invoice 881 overdue"
  statelock policy test                   # opa test on the bundle
  statelock policy eval --input input.json --explain
  statelock audit verify /var/log/statelock/decisions.jsonl.* /var/log/statelock/decisions.jsonl
  statelock audit query decisions.jsonl --instance 8f0c... --outcome deny
"""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="statelock",
        description="Statelock: a policy sidecar that enforces instance state locks in front "
                    "of a Nova-compatible compute API.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"statelock {__version__}")
    parser.add_argument("--log-level", default="INFO",
                        choices=["DEBUG", "INFO", "WARNING", "ERROR"], help="log verbosity")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("serve", help="run the sidecar",
                         description="Run the sidecar until SIGTERM or SIGINT, then stop gracefully "
                                     "(readiness 503, requests in flight finished, the decision log "
                                     "flushed). STATELOCK_LISTEN overrides the listen address of the "
                                     "config. Exit 0 on a clean stop, 1 when the machine refuses "
                                     "(busy port, certificate, directory), 2 for an invalid config.")
    run.add_argument("--config", "-c", required=True, metavar="FILE",
                     help="YAML config file (see config/*.yaml)")
    # NOTE: how the supervisor of server.workers starts each worker; not for operators.
    run.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    run.add_argument("--ready-fd", type=int, default=None, help=argparse.SUPPRESS)
    run.add_argument("--lifeline-fd", type=int, default=None, help=argparse.SUPPRESS)

    check = sub.add_parser("check-config", help="validate a config file and print the result",
                           description="Validate a config file exactly as `serve` does (drivers "
                                       "built, the policy bundle compiled, every key checked); "
                                       "exit 0 if serve would accept it, 2 if not, naming the key "
                                       "and the fix.")
    check.add_argument("file", nargs="?", metavar="FILE", help="YAML config file")
    check.add_argument("--explain", action="store_true",
                       help="list every config key with its default and meaning")
    check.add_argument("--markdown", action="store_true",
                       help="with --explain: the reference as Markdown (docs/config.md is this)")
    check.add_argument("--connect", action="store_true",
                       help="also reach the lock store, the upstream or hypervisor, Keystone and OPA, "
                            "and say which answered")
    add_lock_commands(sub)
    add_audit_commands(sub)
    add_policy_commands(sub)
    add_hypervisor_commands(sub)
    return parser


def _leaves(parser: argparse.ArgumentParser) -> None:
    """Let every (sub)command know its own parser, so its usage errors show its own usage."""
    parser.set_defaults(command_parser=parser)
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in action.choices.values():
                _leaves(sub)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = _parser()
    _leaves(parser)
    args, extra = parser.parse_known_args(argv)
    if extra:
        args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            return serve(args.config, args.worker, args.ready_fd, args.lifeline_fd)
        if args.command == "check-config":
            return check(args.file, args.explain, args.connect, markdown=args.markdown)
        if args.command == "policy":
            return run_policy_command(args)
        if args.command == "audit":
            return run_audit_command(args)
        if args.command == "hypervisor":
            return run_hypervisor_command(args)
        if args.command == "locks" and args.locks_command == "migrate":
            return run_migrate_command(args)
        if args.command in ("locks", "suspend-lock", "unlock-resume"):
            return run_lock_command(args)
    except ConfigError as exc:
        print(f"statelock: configuration error: {exc.message}", file=sys.stderr)
        return 2
    except SidecarError as exc:
        print(f"statelock: {exc.code}: {exc.message}", file=sys.stderr)
        return 1
    parser.print_help()
    return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
