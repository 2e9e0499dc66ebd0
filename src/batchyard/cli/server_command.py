"""`batchyard server`: its options and running the service with them.

The one module of batchyard.cli that reaches the server (batchyard.server and what it needs to
check the options); the user commands speak only through the SDK. The server's modules are
imported when the command runs, so the user commands never load them.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(f"BATCHYARD_{name}", default)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `server` to the `batchyard` parser's subcommands."""
    server = commands.add_parser(
        "server",
        help="run the Batchyard service",
        description="Run the AWS Batch API, the scheduler and the runtimes in one process "
        "(plus API-only processes with --api-processes). "
        "Every option can also be set with the BATCHYARD_<OPTION> environment variable "
        "(e.g. BATCHYARD_PORT).",
    )
    server.add_argument("--host", default=_env("HOST", "127.0.0.1"))
    server.add_argument("--port", type=int, default=int(_env("PORT", "8750") or 8750))
    server.add_argument(
        "--data-dir", type=Path, default=Path(_env("DATA_DIR", ".batchyard") or ".batchyard")
    )
    server.add_argument(
        "--database-url",
        default=_env("DATABASE_URL"),
        help="SQLAlchemy URL of the store (default: SQLite in the data dir)",
    )
    server.add_argument("--account-id", default=_env("ACCOUNT_ID", "000000000000"))
    server.add_argument("--region", default=_env("REGION", "us-east-1"))
    server.add_argument(
        "--default-runtime",
        default=_env("DEFAULT_RUNTIME", "process"),
        choices=["process", "docker", "slurm"],
        help="runtime of compute environments without a batchyard:runtime tag",
    )
    server.add_argument(
        "--stop-timeout",
        type=float,
        default=float(_env("STOP_TIMEOUT", "30") or 30),
        help="seconds between SIGTERM and SIGKILL when a job is terminated or times out",
    )
    server.add_argument(
        "--process-containment",
        default=_env("PROCESS_CONTAINMENT", "auto"),
        choices=["auto", "reaper"],
        help="how the process runtime ends whatever a job started when the job ends: auto "
        "(a cgroup per attempt where cgroup v2 is writable, else a reaper process) or reaper "
        "(always a reaper process); see docs/runtimes.md",
    )
    server.add_argument("--log-level", default=_env("LOG_LEVEL", "info"))
    _add_limits(server)
    # An API-only process started by the main server process (settings come from it).
    server.add_argument("--internal-api-process", action="store_true", help=argparse.SUPPRESS)


def _add_limits(server: argparse.ArgumentParser) -> None:
    """The options that bound what the server keeps and admits, and how many processes serve."""
    server.add_argument(
        "--job-retention-days",
        type=float,
        default=float(_env("JOB_RETENTION_DAYS", "7") or 7),
        help="delete finished jobs, and the log streams of their attempts, this many days "
        "after they stop (AWS keeps job records at least 7 days; 0 keeps them forever)",
    )
    server.add_argument(
        "--rate-limit",
        default=_env("RATE_LIMIT", ""),
        metavar="OPERATION=N[,...]",
        help="throttle these operations to N requests per second each (answering "
        "TooManyRequestsException, HTTP 429); off by default; the server as a whole admits N "
        "per second, however many API processes share the load",
    )
    server.add_argument(
        "--api-processes",
        type=int,
        default=int(_env("API_PROCESSES", "1") or 1),
        metavar="N",
        help="processes serving the API on the same socket (default 1); the first also runs "
        "the scheduler and the runtimes. More than 1 helps when clients call faster than "
        "one core answers and the machine has cores to spare",
    )
    server.add_argument(
        "--min-free-disk-mb",
        type=int,
        default=int(_env("MIN_FREE_DISK_MB", "64") or 64),
        metavar="MB",
        help="GET /health reports the disk full when less than this is free for the data "
        "directory (default 64)",
    )


def run(args: argparse.Namespace) -> int:
    """Run the server with the parsed options until it stops; the exit code."""
    from batchyard.api.rate_limits import RateLimits
    from batchyard.server import Settings, serve, serve_api_process
    from batchyard.store.base import StoreError

    if args.internal_api_process:
        serve_api_process()
        return 0
    if args.api_processes < 1:
        print("batchyard: --api-processes must be at least 1", file=sys.stderr)
        return 2

    settings = Settings(
        host=args.host,
        port=args.port,
        data_dir=args.data_dir,
        database_url=args.database_url,
        account_id=args.account_id,
        region=args.region,
        default_runtime=args.default_runtime,
        stop_timeout_seconds=args.stop_timeout,
        process_containment=args.process_containment,
        log_level=args.log_level,
        job_retention_days=args.job_retention_days,
        rate_limits=args.rate_limit,
        api_processes=args.api_processes,
        min_free_disk_mb=args.min_free_disk_mb,
    )
    try:
        RateLimits.parse(settings.rate_limits)
    except ValueError as error:
        print(f"batchyard: --rate-limit: {error}", file=sys.stderr)
        return 2
    try:
        serve(settings)
    except StoreError as error:
        print(f"batchyard: {error}", file=sys.stderr)
        return 2
    return 0
