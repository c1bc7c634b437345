"""What the command groups (``audit``, ``hypervisor``) share: a group parser and its usage."""

from __future__ import annotations

import argparse
import sys


def command_group(subparsers: argparse._SubParsersAction[argparse.ArgumentParser], name: str, *,
                  help: str, description: str, epilog: str,
                  dest: str) -> argparse._SubParsersAction[argparse.ArgumentParser]:
    """Add the group ``name`` and return its subparsers (chosen one in ``args.<dest>``)."""
    group = subparsers.add_parser(name, help=help, description=description, epilog=epilog,
                                  formatter_class=argparse.RawDescriptionHelpFormatter)
    group.set_defaults(group_parser=group)
    return group.add_subparsers(dest=dest, metavar="SUBCOMMAND")


def group_usage(args: argparse.Namespace) -> int:
    """A group given without a subcommand: a usage error, its help on stderr, exit 2."""
    parser = getattr(args, "group_parser", None)
    if parser is not None:
        parser.print_help(sys.stderr)
    return 2
