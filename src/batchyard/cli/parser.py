"""The user commands' arguments: what `batchyard <command> --help` shows, and which handler runs.

Every user command takes the connection and output options (`--endpoint-url`, `--region`,
`--output`); its handler is called with the parsed arguments and a BatchClient and returns the
exit code. Commands are added in the order `batchyard --help` lists them.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

from batchyard.cli.compute_environments import describe_compute_environments
from batchyard.cli.consumable_resources import (
    describe_consumable_resource,
    list_consumable_resources,
)
from batchyard.cli.exit_codes import EXIT_TIMEOUT
from batchyard.cli.job_definitions import describe_job_definitions
from batchyard.cli.job_logs import print_logs
from batchyard.cli.job_queues import describe_job_queues, get_job_queue_snapshot
from batchyard.cli.jobs import JOB_STATUSES, cancel_jobs, describe_jobs, list_jobs, terminate_jobs
from batchyard.cli.submit import submit_job
from batchyard.cli.wait import wait_for_jobs
from batchyard.client import BatchClient

Handler = Callable[[argparse.Namespace, BatchClient], int]
Add = Callable[[str, Handler, str], argparse.ArgumentParser]
"""Adds a user command: its name, handler and help text; returns its parser."""


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the user commands to the `batchyard` parser's subcommands."""
    common = _common_options()

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        parser.set_defaults(user_command=handler)
        return parser

    _add_submit(add)
    _add_job_commands(add)
    _add_resource_commands(add)


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL"),
        help="AWS Batch endpoint (default: $AWS_ENDPOINT_URL, else AWS)",
    )
    common.add_argument(
        "--region",
        default=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION"),
        help="AWS region (default: $AWS_DEFAULT_REGION, $AWS_REGION, the AWS config, us-east-1)",
    )
    common.add_argument(
        "--output",
        "-o",
        choices=["table", "json"],
        default="table",
        help="human output (table, the default) or JSON for scripts",
    )
    return common


def _add_submit(add: Add) -> None:
    submit = add("submit", submit_job, "submit a job (flags, or a JSON file in SubmitJob shape)")
    submit.add_argument("--file", "-f", help="SubmitJob request as JSON ('-' reads stdin)")
    submit.add_argument("--name", "-n", help="job name (default: the job definition's name)")
    submit.add_argument("--queue", "-q", help="job queue (default: 'default')")
    submit.add_argument("--definition", "-d", help="job definition: name, name:revision or ARN")
    submit.add_argument("--array-size", type=int, help="submit an array job of this size")
    submit.add_argument(
        "--depends-on", action="append", default=[], metavar="JOB_ID", help="wait for this job"
    )
    submit.add_argument(
        "--n-to-n", action="append", default=[], metavar="JOB_ID", help="N_TO_N on this array"
    )
    submit.add_argument(
        "--sequential", action="store_true", help="array children run one after the other"
    )
    submit.add_argument("--parameter", "-p", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--env", "-e", action="append", default=[], metavar="NAME=VALUE")
    submit.add_argument("--vcpus", help="override the VCPU resource requirement")
    submit.add_argument("--memory", help="override the MEMORY resource requirement (MiB)")
    submit.add_argument("--retries", type=int, metavar="ATTEMPTS", help="retryStrategy.attempts")
    submit.add_argument("--timeout", type=int, metavar="SECONDS", help="attempt duration limit")
    submit.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    submit.add_argument("--share-identifier")
    submit.add_argument("--scheduling-priority", type=int)
    submit.add_argument(
        "job_command", nargs=argparse.REMAINDER, metavar="-- COMMAND", help="override the command"
    )


def _add_job_commands(add: Add) -> None:
    jobs = add("jobs", list_jobs, "list jobs of a queue (every status unless --status)")
    jobs.add_argument("--queue", "-q", default="default")
    jobs.add_argument("--status", "-s", choices=JOB_STATUSES, type=str.upper)
    jobs.add_argument("--array", metavar="JOB_ID", help="list the children of this array job")

    describe = add("describe", describe_jobs, "describe jobs")
    describe.add_argument("job_ids", nargs="+", metavar="JOB_ID")

    logs = add("logs", print_logs, "print a job's output, every attempt in order")
    logs.add_argument("job_id", metavar="JOB_ID")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing until the job has ended"
    )
    logs.add_argument("--timestamps", "-t", action="store_true", help="prefix each line")
    logs.add_argument("--interval", type=float, default=1.0, help="seconds between polls")

    wait = add(
        "wait", wait_for_jobs, "wait for jobs to end; exit 0 if all SUCCEEDED, 1 if one FAILED"
    )
    wait.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    wait.add_argument("--timeout", type=float, help=f"give up after SECONDS (exit {EXIT_TIMEOUT})")
    wait.add_argument("--interval", type=float, default=1.0, help="seconds between polls")

    for name, handler, what, reason in (
        (
            "cancel",
            cancel_jobs,
            "cancel jobs that have not started (no effect once STARTING)",
            "Cancelled by batchyard CLI",
        ),
        (
            "terminate",
            terminate_jobs,
            "terminate jobs, running or not",
            "Terminated by batchyard CLI",
        ),
    ):
        parser = add(name, handler, what)
        parser.add_argument("job_ids", nargs="+", metavar="JOB_ID")
        parser.add_argument("--reason", "-r", default=reason, help=f"default: {reason!r}")


def _add_resource_commands(add: Add) -> None:
    queues = add("queues", describe_job_queues, "list job queues")
    queues.add_argument("names", nargs="*", metavar="QUEUE")

    ces = add("ces", describe_compute_environments, "list compute environments")
    ces.add_argument("names", nargs="*", metavar="COMPUTE_ENVIRONMENT")

    defs = add("defs", describe_job_definitions, "list job definitions (ACTIVE unless --all)")
    defs.add_argument("name", nargs="?", metavar="NAME")
    defs.add_argument("--all", action="store_true", help="include INACTIVE revisions")

    queue = add("queue", get_job_queue_snapshot, "the front of a job queue and its utilization")
    queue.add_argument("job_queue", metavar="QUEUE", help="job queue name or ARN")

    add("resources", list_consumable_resources, "list consumable resources")
    resource = add(
        "resource",
        describe_consumable_resource,
        "a consumable resource and the jobs that require it",
    )
    resource.add_argument("name", metavar="NAME", help="consumable resource name or ARN")
    resource.add_argument(
        "--status", "-s", choices=JOB_STATUSES, type=str.upper, help="only jobs in this status"
    )
