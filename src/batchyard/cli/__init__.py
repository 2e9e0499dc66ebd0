"""The `batchyard` command: its parser and `main`, the console script's entry point.

`batchyard server` is in server_command.py, the only module here that may reach the server.
The user commands (submit, jobs, logs, wait, ...) are in batchyard.commands, on batchyard.client.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from batchyard import commands as user_commands
from batchyard.cli import server_command


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchyard", description="AWS Batch, self-hosted.")
    commands = parser.add_subparsers(dest="command", required=True)
    server_command.register(commands)
    user_commands.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "user_command", None) is not None:
        return user_commands.run(args)
    if args.command == "server":
        return server_command.run(args)
    return 1
