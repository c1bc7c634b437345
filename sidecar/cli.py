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
from sidecar.cli_audit import add_audit_commands, run_audit_command
from sidecar.cli_hypervisor import add_hypervisor_commands, run_hypervisor_command
from sidecar.cli_locks import add_lock_commands, run_lock_command
from sidecar.cli_migrate import run_migrate_command
from sidecar.cli_policy import add_policy_commands, run_policy_command
from sidecar.config import Config, explain, load_config
from sidecar.errors import ConfigError, SidecarError
from sidecar.locks.model import redact_url

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
  statelock audit verify /var/log/statelock/decisions.jsonl*
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

    serve = sub.add_parser("serve", help="run the sidecar",
                           description="Run the sidecar until interrupted. STATELOCK_LISTEN "
                                       "overrides the listen address of the config.")
    serve.add_argument("--config", "-c", required=True, metavar="FILE",
                       help="YAML config file (see config/*.yaml)")

    check = sub.add_parser("check-config", help="validate a config file and print the result",
                           description="Validate a config file; exit 0 if it is good, 2 if not, "
                                       "naming the key to fix.")
    check.add_argument("file", nargs="?", metavar="FILE", help="YAML config file")
    check.add_argument("--explain", action="store_true",
                       help="list every config key with its default and meaning")
    add_lock_commands(sub)
    add_audit_commands(sub)
    add_policy_commands(sub)
    add_hypervisor_commands(sub)
    return parser


def _serve(path: str) -> int:
    from aiohttp import web

    from sidecar.app import create_app

    cfg = load_config(path)
    app = create_app(cfg)
    logging.getLogger(__name__).info("statelock %s listening on %s", __version__, cfg.listen)
    web.run_app(app, host=cfg.listen_host, port=cfg.listen_port, print=None,
                access_log_format='%a "%r" %s %b %Tf')
    return 0


def _check(path: str | None, do_explain: bool) -> int:
    if do_explain:
        for key, default, text in explain():
            print(f"{key:32} default {default}\n{'':32} {text}")
        return 0
    if path is None:
        print("statelock check-config: give a FILE (or --explain)", file=sys.stderr)
        return 2
    cfg: Config = load_config(path)
    print(f"{path}: ok")
    print(f"  listen   {cfg.listen}   mode {cfg.mode}")
    target = cfg.backend.upstream_url if cfg.backend.kind == "upstream" else \
        cfg.backend.driver.get("name")
    print(f"  backend  {cfg.backend.kind} -> {target}")
    print(f"  identity {cfg.identity.mode}")
    print(f"  locks    {redact_url(cfg.lockstore.url)}")
    print(f"  policy   {cfg.policy.engine} ({cfg.policy.bundle})")
    print(f"  audit    {cfg.audit.path} (on_failure: {cfg.audit.on_failure})")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the exit status."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if args.command == "serve":
            return _serve(args.config)
        if args.command == "check-config":
            return _check(args.file, args.explain)
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
