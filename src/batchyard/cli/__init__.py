"""The `batchyard` command: its parser, and `main`, the console script's entry point.

`batchyard server` is server_command.py, the one module here that reaches the server. The user
commands (parser.py, and a module per AWS noun: jobs.py, job_queues.py, ...) speak only through
batchyard.client and public AWS calls, so they work against AWS too (an import-linter contract
keeps it so). This module connects them to AWS and turns their errors into exit codes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import boto3
import botocore.config
import botocore.exceptions

from batchyard.cli import output, parser, server_command
from batchyard.cli.exit_codes import EXIT_CLIENT_ERROR, EXIT_INTERRUPTED, UsageError
from batchyard.client import BatchClient, BatchClientError


def build_parser() -> argparse.ArgumentParser:
    batchyard = argparse.ArgumentParser(prog="batchyard", description="AWS Batch, self-hosted.")
    commands = batchyard.add_subparsers(dest="command", required=True)
    server_command.register(commands)
    parser.register(commands)
    return batchyard


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "user_command", None) is not None:
        return _run_user_command(args)
    if args.command == "server":
        return server_command.run(args)
    return 1


def _run_user_command(args: argparse.Namespace) -> int:
    """Run the user command parsed into args; the exit code."""
    handler: parser.Handler = args.user_command
    try:
        return handler(args, _connect(args))
    except botocore.exceptions.ClientError as error:
        details = error.response.get("Error", {})
        code = details.get("Code", "Error")
        output.print_error(f"{code}: {details.get('Message', str(error))}")
    except (BatchClientError, UsageError, botocore.exceptions.BotoCoreError) as error:
        output.print_error(str(error))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    return EXIT_CLIENT_ERROR


def _connect(args: argparse.Namespace) -> BatchClient:
    session = boto3.session.Session(region_name=args.region)
    region = session.region_name or "us-east-1"
    if session.get_credentials() is None and args.endpoint_url:
        # Batchyard on loopback accepts any credentials; boto3 still needs some to sign.
        session = boto3.session.Session(
            aws_access_key_id="batchyard", aws_secret_access_key="batchyard", region_name=region
        )
    return BatchClient(
        session=session,
        region_name=region,
        endpoint_url=args.endpoint_url,
        config=botocore.config.Config(retries={"mode": "standard"}),
    )
