"""The `batchyard` user commands (submit, jobs, describe, logs, wait, cancel, queue, ...).

Built only on batchyard.client and public AWS calls, so they work against AWS too; they never
reach into the server's modules. Human output with rich, `--output json` for scripts.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

from batchyard.client import BatchClient, BatchClientError, JobLogTailer, LogLine

JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
TERMINAL = ("SUCCEEDED", "FAILED")
DESCRIBE_JOBS_LIMIT = 100

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_CLIENT_ERROR = 2
EXIT_TIMEOUT = 3

STATUS_STYLE = {
    "SUBMITTED": "dim",
    "PENDING": "yellow",
    "RUNNABLE": "cyan",
    "STARTING": "blue",
    "RUNNING": "bold blue",
    "SUCCEEDED": "green",
    "FAILED": "bold red",
}

Handler = Callable[[argparse.Namespace, BatchClient], int]


class UsageError(Exception):
    """A request the command cannot make sense of (exit 2, message on stderr)."""


# -- registration -----------------------------------------------------------------------------


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the user commands to the `batchyard` parser's subcommands."""
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

    def add(name: str, handler: Handler, help_text: str) -> argparse.ArgumentParser:
        parser = commands.add_parser(name, parents=[common], help=help_text, description=help_text)
        parser.set_defaults(user_command=handler)
        return parser

    submit = add("submit", _submit, "submit a job (flags, or a JSON file in SubmitJob shape)")
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

    jobs = add("jobs", _jobs, "list jobs of a queue (every status unless --status)")
    jobs.add_argument("--queue", "-q", default="default")
    jobs.add_argument("--status", "-s", choices=JOB_STATUSES, type=str.upper)
    jobs.add_argument("--array", metavar="JOB_ID", help="list the children of this array job")

    describe = add("describe", _describe, "describe jobs")
    describe.add_argument("job_ids", nargs="+", metavar="JOB_ID")

    logs = add("logs", _logs, "print a job's output, every attempt in order")
    logs.add_argument("job_id", metavar="JOB_ID")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing until the job has ended"
    )
    logs.add_argument("--timestamps", "-t", action="store_true", help="prefix each line")
    logs.add_argument("--interval", type=float, default=1.0, help="seconds between polls")

    wait = add("wait", _wait, "wait for jobs to end; exit 0 if all SUCCEEDED, 1 if one FAILED")
    wait.add_argument("job_ids", nargs="+", metavar="JOB_ID")
    wait.add_argument("--timeout", type=float, help=f"give up after SECONDS (exit {EXIT_TIMEOUT})")
    wait.add_argument("--interval", type=float, default=1.0, help="seconds between polls")

    for name, handler, what, reason in (
        (
            "cancel",
            _cancel,
            "cancel jobs that have not started (no effect once STARTING)",
            "Cancelled by batchyard CLI",
        ),
        ("terminate", _terminate, "terminate jobs, running or not", "Terminated by batchyard CLI"),
    ):
        parser = add(name, handler, what)
        parser.add_argument("job_ids", nargs="+", metavar="JOB_ID")
        parser.add_argument("--reason", "-r", default=reason, help=f"default: {reason!r}")

    queues = add("queues", _queues, "list job queues")
    queues.add_argument("names", nargs="*", metavar="QUEUE")

    ces = add("ces", _compute_environments, "list compute environments")
    ces.add_argument("names", nargs="*", metavar="COMPUTE_ENVIRONMENT")

    defs = add("defs", _job_definitions, "list job definitions (ACTIVE unless --all)")
    defs.add_argument("name", nargs="?", metavar="NAME")
    defs.add_argument("--all", action="store_true", help="include INACTIVE revisions")

    queue = add("queue", _job_queue_snapshot, "the front of a job queue and its utilization")
    queue.add_argument("job_queue", metavar="QUEUE", help="job queue name or ARN")

    add("resources", _consumable_resources, "list consumable resources")
    resource = add(
        "resource", _consumable_resource, "a consumable resource and the jobs that require it"
    )
    resource.add_argument("name", metavar="NAME", help="consumable resource name or ARN")
    resource.add_argument(
        "--status", "-s", choices=JOB_STATUSES, type=str.upper, help="only jobs in this status"
    )


def run(args: argparse.Namespace) -> int:
    """Run the user command parsed into args; the exit code."""
    handler: Handler = args.user_command
    try:
        return handler(args, _connect(args))
    except botocore.exceptions.ClientError as error:
        details = error.response.get("Error", {})
        code = details.get("Code", "Error")
        _fail(f"{code}: {details.get('Message', str(error))}")
    except (BatchClientError, UsageError, botocore.exceptions.BotoCoreError) as error:
        _fail(str(error))
    except KeyboardInterrupt:
        return 130
    return EXIT_CLIENT_ERROR


def _fail(message: str) -> None:
    print(f"batchyard: {message}", file=sys.stderr)


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


# -- output -----------------------------------------------------------------------------------


def _console(stderr: bool = False) -> Console:
    console = Console(stderr=stderr, highlight=False, soft_wrap=False)
    if not console.is_terminal and "COLUMNS" not in os.environ:
        # Piped output is for grep and friends: never truncate or fold it to 80 columns.
        console.width = 1000
    return console


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, default=str))


def _without_metadata(response: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in response.items() if k != "ResponseMetadata"}


def _time(epoch_ms: Any) -> str:
    if not isinstance(epoch_ms, int | float):
        return ""
    moment = datetime.fromtimestamp(epoch_ms / 1000, tz=UTC).astimezone()
    return moment.strftime("%Y-%m-%d %H:%M:%S")


def _status(status: str) -> str:
    return f"[{STATUS_STYLE.get(status, '')}]{status}[/]" if status in STATUS_STYLE else status


WRAPPING_COLUMNS = frozenset({"NAME", "REASON", "COMMAND", "COMPUTE ENVIRONMENTS"})
"""Free-text columns; ids, statuses and times never wrap, so they stay copyable."""


def _table(columns: Sequence[str], rows: Sequence[Sequence[str]]) -> Table:
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(column, no_wrap=column not in WRAPPING_COLUMNS)
    for row in rows:
        table.add_row(*row)
    return table


def _fits(console: Console, columns: Sequence[str], rows: Sequence[Sequence[str]]) -> bool:
    """Whether the table fits with every fixed column whole and free text at >= 20 cells."""
    total = 2 * (len(columns) - 1)  # one cell of padding on each inner side
    for index, column in enumerate(columns):
        width = max([len(column)] + [Text.from_markup(row[index]).cell_len for row in rows])
        total += min(width, 20) if column in WRAPPING_COLUMNS else width
    return total <= console.width


def _print_table(
    console: Console,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    optional: Sequence[str] = (),
) -> None:
    """Print rows, leaving out optional columns (first named, first dropped) while the table
    cannot fit the console without cutting ids apart."""
    keep = list(columns)
    for dropped in optional:
        if _fits(console, keep, rows):
            break
        index = keep.index(dropped)
        keep.pop(index)
        rows = [[cell for i, cell in enumerate(row) if i != index] for row in rows]
    console.print(_table(keep, rows))


def _key_values(pairs: Sequence[tuple[str, str]], title: str) -> Table:
    table = Table(box=None, show_header=False, title=title, title_justify="left", pad_edge=False)
    table.add_column(style="bold")
    table.add_column(overflow="fold")
    for key, value in pairs:
        if value != "":
            table.add_row(key, value)
    return table


def _parse_pairs(values: Iterable[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must be KEY=VALUE, got {value!r}")
        pairs[key] = rest
    return pairs


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _describe_jobs(batch: BatchClient, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """One DescribeJobs per 100 ids (no retries: a missing id is an answer here)."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(list(dict.fromkeys(job_ids)), DESCRIBE_JOBS_LIMIT):
        for job in batch.client.describe_jobs(jobs=list(chunk))["jobs"]:
            found[job["jobId"]] = job
    return found


def _require_jobs(batch: BatchClient, job_ids: Sequence[str]) -> list[dict[str, Any]]:
    found = _describe_jobs(batch, job_ids)
    missing = [job_id for job_id in job_ids if job_id not in found]
    if missing:
        raise UsageError(f"job not found: {', '.join(missing)}")
    return [found[job_id] for job_id in dict.fromkeys(job_ids)]


# -- submit -----------------------------------------------------------------------------------


def _definition_name(reference: str) -> str:
    name = reference.rsplit("/", 1)[-1] if reference.startswith("arn:") else reference
    return name.split(":", 1)[0]


def _submit_request(args: argparse.Namespace) -> dict[str, Any]:
    request: dict[str, Any] = {}
    if args.file:
        text = sys.stdin.read() if args.file == "-" else Path(args.file).read_text()
        try:
            loaded = json.loads(text)
        except json.JSONDecodeError as error:
            raise UsageError(f"{args.file}: not JSON: {error}") from error
        if not isinstance(loaded, dict):
            raise UsageError(f"{args.file}: expected a JSON object in SubmitJob shape")
        request.update(loaded)
    if args.definition:
        request["jobDefinition"] = args.definition
    if args.queue:
        request["jobQueue"] = args.queue
    request.setdefault("jobQueue", "default")
    if args.name:
        request["jobName"] = args.name
    if "jobDefinition" not in request:
        raise UsageError("a job definition is required (--definition or jobDefinition in --file)")
    request.setdefault("jobName", _definition_name(str(request["jobDefinition"])))
    if args.array_size is not None:
        request["arrayProperties"] = {"size": args.array_size}
    depends_on = list(request.get("dependsOn", []))
    depends_on += [{"jobId": job_id} for job_id in args.depends_on]
    depends_on += [{"jobId": job_id, "type": "N_TO_N"} for job_id in args.n_to_n]
    if args.sequential:
        depends_on.append({"type": "SEQUENTIAL"})
    if depends_on:
        request["dependsOn"] = depends_on
    if args.parameter:
        request["parameters"] = {
            **request.get("parameters", {}),
            **_parse_pairs(args.parameter, "--parameter"),
        }
    overrides = dict(request.get("containerOverrides", {}))
    command = args.job_command[1:] if args.job_command[:1] == ["--"] else args.job_command
    if command:
        overrides["command"] = list(command)
    if args.env:
        environment = {e["name"]: e["value"] for e in overrides.get("environment", [])}
        environment.update(_parse_pairs(args.env, "--env"))
        overrides["environment"] = [{"name": k, "value": v} for k, v in environment.items()]
    requirements = {r["type"]: r["value"] for r in overrides.get("resourceRequirements", [])}
    if args.vcpus:
        requirements["VCPU"] = args.vcpus
    if args.memory:
        requirements["MEMORY"] = args.memory
    if requirements:
        overrides["resourceRequirements"] = [
            {"type": kind, "value": value} for kind, value in requirements.items()
        ]
    if overrides:
        request["containerOverrides"] = overrides
    if args.retries is not None:
        request["retryStrategy"] = {**request.get("retryStrategy", {}), "attempts": args.retries}
    if args.timeout is not None:
        request["timeout"] = {"attemptDurationSeconds": args.timeout}
    if args.tag:
        request["tags"] = {**request.get("tags", {}), **_parse_pairs(args.tag, "--tag")}
    if args.share_identifier:
        request["shareIdentifier"] = args.share_identifier
    if args.scheduling_priority is not None:
        request["schedulingPriorityOverride"] = args.scheduling_priority
    return request


def _submit(args: argparse.Namespace, batch: BatchClient) -> int:
    request = _submit_request(args)
    response = _without_metadata(
        batch.submit_job(
            request.pop("jobName"), request.pop("jobQueue"), request.pop("jobDefinition"), **request
        )
    )
    if args.output == "json":
        _print_json(response)
    else:
        print(response["jobId"])
        _console(stderr=True).print(f"Submitted job {escape(response['jobName'])}")
    return EXIT_OK


# -- jobs and describe ------------------------------------------------------------------------


def _list_jobs(batch: BatchClient, args: argparse.Namespace) -> list[dict[str, Any]]:
    scope = {"arrayJobId": args.array} if args.array else {"jobQueue": args.queue}
    statuses = [args.status] if args.status else list(JOB_STATUSES)
    paginator = batch.client.get_paginator("list_jobs")
    summaries: list[dict[str, Any]] = []
    for status in statuses:
        for page in paginator.paginate(**scope, jobStatus=status):
            summaries.extend(page["jobSummaryList"])
    summaries.sort(key=lambda s: (s.get("createdAt", 0), s.get("jobId", "")))
    return summaries


def _exit_code(container: dict[str, Any] | None) -> str:
    code = (container or {}).get("exitCode")
    return "" if code is None else str(code)


def _array_column(summary: dict[str, Any]) -> str:
    array = summary.get("arrayProperties") or {}
    if "size" in array:
        return f"size {array['size']}"
    if "index" in array:
        return f"index {array['index']}"
    return ""


def _duration(summary: dict[str, Any]) -> str:
    started, stopped = summary.get("startedAt"), summary.get("stoppedAt")
    if not isinstance(started, int):
        return ""
    end = stopped if isinstance(stopped, int) else int(time.time() * 1000)
    seconds = max(0, end - started) / 1000
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, second = divmod(int(seconds), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}h{minute:02d}m" if hours else f"{minute}m{second:02d}s"


def _jobs(args: argparse.Namespace, batch: BatchClient) -> int:
    summaries = _list_jobs(batch, args)
    if args.output == "json":
        _print_json({"jobSummaryList": summaries})
        return EXIT_OK
    if not summaries:
        where = f"array job {args.array}" if args.array else f"queue {args.queue}"
        _console(stderr=True).print(f"No jobs in {escape(where)}.")
        return EXIT_OK
    columns = ["JOB ID", "STATUS", "NAME", "ARRAY", "CREATED", "DURATION", "EXIT", "REASON"]
    rows = [
        [
            s["jobId"],
            _status(s.get("status", "")),
            escape(s.get("jobName", "")),
            _array_column(s),
            _time(s.get("createdAt")),
            _duration(s),
            _exit_code(s.get("container")),
            escape(s.get("statusReason", "")),
        ]
        for s in summaries
    ]
    if not any(s.get("arrayProperties") for s in summaries):
        columns.remove("ARRAY")
        rows = [row[:3] + row[4:] for row in rows]
    _print_table(_console(), columns, rows, optional=("REASON", "CREATED", "NAME", "DURATION"))
    return EXIT_OK


def _print_job(console: Console, job: dict[str, Any]) -> None:
    container = job.get("container") or {}
    array = job.get("arrayProperties") or {}
    summary = array.get("statusSummary") or {}
    counts = " ".join(f"{s}={summary[s]}" for s in JOB_STATUSES if summary.get(s))
    depends = ", ".join(
        f"{d.get('jobId', '')}{' (' + d['type'] + ')' if d.get('type') else ''}"
        for d in job.get("dependsOn", [])
    )
    console.print(
        _key_values(
            [
                ("Job ID", job["jobId"]),
                ("Status", _status(job.get("status", ""))),
                ("Reason", escape(job.get("statusReason", ""))),
                ("Queue", job.get("jobQueue", "")),
                ("Definition", job.get("jobDefinition", "")),
                ("Array", f"{_array_column(job)} {counts}".strip()),
                ("Depends on", depends),
                ("Command", escape(" ".join(container.get("command", [])))),
                ("Created", _time(job.get("createdAt"))),
                ("Started", _time(job.get("startedAt"))),
                ("Stopped", _time(job.get("stoppedAt"))),
                ("Exit code", _exit_code(container)),
                ("Log stream", container.get("logStreamName", "")),
            ],
            title=f"[bold]{escape(job.get('jobName', ''))}[/]",
        )
    )
    attempts = job.get("attempts") or []
    if attempts:
        rows = [
            [
                str(number),
                _time(attempt.get("startedAt")),
                _time(attempt.get("stoppedAt")),
                _exit_code(attempt.get("container")),
                escape(attempt.get("statusReason", "")),
                escape((attempt.get("container") or {}).get("logStreamName", "")),
            ]
            for number, attempt in enumerate(attempts, start=1)
        ]
        columns = ("ATTEMPT", "STARTED", "STOPPED", "EXIT", "REASON", "LOG STREAM")
        _print_table(console, columns, rows, optional=("LOG STREAM", "REASON", "STARTED"))


def _describe(args: argparse.Namespace, batch: BatchClient) -> int:
    found = _describe_jobs(batch, args.job_ids)
    jobs = [found[job_id] for job_id in dict.fromkeys(args.job_ids) if job_id in found]
    if args.output == "json":
        _print_json({"jobs": jobs})
    else:
        console = _console()
        for job in jobs:
            _print_job(console, job)
            console.print()
    missing = [job_id for job_id in args.job_ids if job_id not in found]
    if missing:
        raise UsageError(f"job not found: {', '.join(missing)}")
    return EXIT_OK


# -- logs -------------------------------------------------------------------------------------


def _logs(args: argparse.Namespace, batch: BatchClient) -> int:
    (job,) = _require_jobs(batch, [args.job_id])
    if "size" in (job.get("arrayProperties") or {}):
        raise UsageError(
            f"{args.job_id} is an array job: its children have the logs "
            f"(batchyard logs {args.job_id}:<index>)"
        )
    tailer = JobLogTailer(batch, args.job_id, poll_interval=args.interval)
    stream: str | None = None
    notes = _console(stderr=True)
    for line in tailer.events(follow=args.follow):
        if args.output == "json":
            print(json.dumps(_log_line_document(line)), flush=True)
            continue
        if line.log_stream != stream:
            stream = line.log_stream
            notes.print(f"[dim]==> attempt {line.attempt + 1}: {escape(stream)} <==[/]")
        prefix = f"{_time(line.timestamp)} " if args.timestamps else ""
        print(f"{prefix}{line.message}", flush=True)
    return EXIT_OK


def _log_line_document(line: LogLine) -> dict[str, Any]:
    return {
        "attempt": line.attempt + 1,
        "logGroupName": line.log_group,
        "logStreamName": line.log_stream,
        "timestamp": line.timestamp,
        "message": line.message,
    }


# -- wait -------------------------------------------------------------------------------------


def _progress_of(job: dict[str, Any]) -> tuple[int, int, str]:
    """(completed, total, description) of a job for the progress display."""
    status = job.get("status", "")
    array = job.get("arrayProperties") or {}
    label = f"{escape(job.get('jobName', ''))} [dim]{job['jobId']}[/]"
    if "size" in array:
        summary = array.get("statusSummary") or {}
        total = int(array["size"])
        done = int(summary.get("SUCCEEDED", 0)) + int(summary.get("FAILED", 0))
        if status in TERMINAL:
            done = total
        counts = " ".join(f"{_status(s)} {summary[s]}" for s in JOB_STATUSES if summary.get(s))
        return done, total, f"{label} {_status(status)}  {counts}"
    return (1 if status in TERMINAL else 0), 1, f"{label} {_status(status)}"


def _wait(args: argparse.Namespace, batch: BatchClient) -> int:
    job_ids = list(dict.fromkeys(args.job_ids))
    jobs = _require_jobs(batch, job_ids)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    live = args.output != "json"
    progress = Progress(
        SpinnerColumn(finished_text="•"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=_console(stderr=True),
        disable=not live,
    )
    tasks: dict[str, TaskID] = {}
    timed_out = False
    with progress:
        while True:
            for job in jobs:
                done, total, description = _progress_of(job)
                if job["jobId"] not in tasks:
                    tasks[job["jobId"]] = progress.add_task(description, total=total)
                progress.update(
                    tasks[job["jobId"]], completed=done, total=total, description=description
                )
            if all(job.get("status") in TERMINAL for job in jobs):
                break
            if deadline is not None and time.monotonic() >= deadline:
                timed_out = True
                break
            pause = args.interval
            if deadline is not None:
                pause = max(0.0, min(pause, deadline - time.monotonic()))
            time.sleep(pause)
            jobs = _require_jobs(batch, job_ids)
    return _wait_outcome(args, jobs, timed_out)


def _wait_outcome(args: argparse.Namespace, jobs: list[dict[str, Any]], timed_out: bool) -> int:
    failed = [job for job in jobs if job.get("status") == "FAILED"]
    if args.output == "json":
        _print_json({"jobs": jobs})
    else:
        console = _console()
        for job in jobs:
            reason = job.get("statusReason", "")
            suffix = f": {escape(reason)}" if job.get("status") == "FAILED" and reason else ""
            console.print(f"{job['jobId']} {_status(job.get('status', ''))}{suffix}")
    if failed:
        return EXIT_JOB_FAILED
    if timed_out:
        _fail(f"timed out after {args.timeout:g}s; jobs still running")
        return EXIT_TIMEOUT
    return EXIT_OK


# -- cancel and terminate ---------------------------------------------------------------------


def _stop_jobs(args: argparse.Namespace, call: Callable[[str, str], Any], done: str) -> int:
    results = []
    for job_id in dict.fromkeys(args.job_ids):
        call(job_id, args.reason)
        results.append({"jobId": job_id, "reason": args.reason})
        if args.output != "json":
            print(f"{done} {job_id}")
    if args.output == "json":
        _print_json({"jobs": results})
    return EXIT_OK


def _cancel(args: argparse.Namespace, batch: BatchClient) -> int:
    return _stop_jobs(args, batch.cancel_job, "Cancelled")


def _terminate(args: argparse.Namespace, batch: BatchClient) -> int:
    return _stop_jobs(args, batch.terminate_job, "Terminated")


# -- resources --------------------------------------------------------------------------------


def _paginate(batch: BatchClient, operation: str, key: str, **request: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for page in batch.client.get_paginator(operation).paginate(**request):
        items.extend(page[key])
    return items


def _queues(args: argparse.Namespace, batch: BatchClient) -> int:
    request = {"jobQueues": args.names} if args.names else {}
    queues = _paginate(batch, "describe_job_queues", "jobQueues", **request)
    if args.output == "json":
        _print_json({"jobQueues": queues})
        return EXIT_OK
    rows = []
    for q in sorted(queues, key=lambda q: str(q.get("jobQueueName"))):
        order = sorted(q.get("computeEnvironmentOrder", []), key=lambda o: o.get("order", 0))
        rows.append(
            [
                escape(q.get("jobQueueName", "")),
                q.get("state", ""),
                q.get("status", ""),
                str(q.get("priority", "")),
                ", ".join(str(o.get("computeEnvironment", "")).rsplit("/", 1)[-1] for o in order),
                escape(q.get("statusReason", "")),
            ]
        )
    columns = ("NAME", "STATE", "STATUS", "PRIORITY", "COMPUTE ENVIRONMENTS", "REASON")
    _print_table(_console(), columns, rows, optional=("REASON",))
    return EXIT_OK


def _compute_environments(args: argparse.Namespace, batch: BatchClient) -> int:
    request = {"computeEnvironments": args.names} if args.names else {}
    ces = _paginate(batch, "describe_compute_environments", "computeEnvironments", **request)
    if args.output == "json":
        _print_json({"computeEnvironments": ces})
        return EXIT_OK
    rows = [
        [
            escape(ce.get("computeEnvironmentName", "")),
            ce.get("type", ""),
            ce.get("state", ""),
            ce.get("status", ""),
            str((ce.get("computeResources") or {}).get("maxvCpus", "")),
            escape((ce.get("tags") or {}).get("batchyard:runtime", "")),
            escape(ce.get("statusReason", "")),
        ]
        for ce in sorted(ces, key=lambda c: str(c.get("computeEnvironmentName")))
    ]
    columns = ("NAME", "TYPE", "STATE", "STATUS", "MAX vCPUs", "RUNTIME", "REASON")
    _print_table(_console(), columns, rows, optional=("REASON",))
    return EXIT_OK


def _requirement(container: dict[str, Any], kind: str, legacy: str) -> str:
    for requirement in container.get("resourceRequirements", []):
        if requirement.get("type") == kind:
            return str(requirement.get("value", ""))
    value = container.get(legacy)
    return "" if value is None else str(value)


def _job_definitions(args: argparse.Namespace, batch: BatchClient) -> int:
    request: dict[str, Any] = {} if args.all else {"status": "ACTIVE"}
    if args.name:
        request["jobDefinitionName"] = args.name
    definitions = _paginate(batch, "describe_job_definitions", "jobDefinitions", **request)
    definitions.sort(key=lambda d: (str(d.get("jobDefinitionName")), int(d.get("revision", 0))))
    if args.output == "json":
        _print_json({"jobDefinitions": definitions})
        return EXIT_OK
    rows = []
    for d in definitions:
        container = d.get("containerProperties") or {}
        rows.append(
            [
                escape(d.get("jobDefinitionName", "")),
                str(d.get("revision", "")),
                d.get("status", ""),
                d.get("type", ""),
                _requirement(container, "VCPU", "vcpus"),
                _requirement(container, "MEMORY", "memory"),
                escape(" ".join(container.get("command", []))),
            ]
        )
    columns = ("NAME", "REVISION", "STATUS", "TYPE", "vCPUs", "MEMORY", "COMMAND")
    _print_table(_console(), columns, rows, optional=("COMMAND",))
    return EXIT_OK


# -- queue snapshot ---------------------------------------------------------------------------


def _quantity(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _capacity(usage: Iterable[dict[str, Any]]) -> str:
    """A capacityUsage list as text: `4 VCPU`, several units joined by commas."""
    return ", ".join(
        f"{_quantity(u.get('quantity'))} {escape(str(u.get('capacityUnit', '')))}" for u in usage
    )


def _arn_id(arn: str) -> str:
    return arn.rsplit("/", 1)[-1]


def _job_queue_snapshot(args: argparse.Namespace, batch: BatchClient) -> int:
    response = _without_metadata(batch.client.get_job_queue_snapshot(jobQueue=args.job_queue))
    if args.output == "json":
        _print_json(response)
        return EXIT_OK
    front = (response.get("frontOfQueue") or {}).get("jobs", [])
    utilization = response.get("queueUtilization") or {}
    fairshare = utilization.get("fairshareUtilization")
    console = _console()
    console.print(
        _key_values(
            [
                ("Capacity in use", _capacity(utilization.get("totalCapacityUsage", [])) or "0"),
                ("Active shares", str(fairshare.get("activeShareCount", "")) if fairshare else ""),
                ("Updated", _time(utilization.get("lastUpdatedAt"))),
            ],
            title=f"[bold]{escape(args.job_queue)}[/]",
        )
    )
    top = (fairshare or {}).get("topCapacityUtilization", [])
    if top:
        console.print()
        rows = [
            [escape(s.get("shareIdentifier", "")), _capacity(s.get("capacityUsage", []))]
            for s in top
        ]
        _print_table(console, ("SHARE", "IN USE"), rows)
    notes = _console(stderr=True)
    if (response.get("frontOfQuotaShares") or {}).get("quotaShares"):
        notes.print("The front of each quota share is in --output json (frontOfQuotaShares).")
    if not front:
        notes.print(f"No RUNNABLE jobs at the front of {escape(args.job_queue)}.")
        return EXIT_OK
    # The snapshot names jobs by ARN only; one DescribeJobs (at most 100) adds names and shares.
    jobs = _describe_jobs(batch, [_arn_id(j["jobArn"]) for j in front])
    columns = ["POSITION", "JOB ID", "NAME", "SHARE", "SINCE"]
    rows = []
    for position, entry in enumerate(front, start=1):
        job_id = _arn_id(entry["jobArn"])
        job = jobs.get(job_id, {})
        rows.append(
            [
                str(position),
                job_id,
                escape(job.get("jobName", "")),
                escape(job.get("shareIdentifier", "")),
                _time(entry.get("earliestTimeAtPosition")),
            ]
        )
    if fairshare is None and not any(row[3] for row in rows):
        columns.remove("SHARE")
        rows = [row[:3] + row[4:] for row in rows]
    console.print()
    _print_table(console, columns, rows, optional=("SINCE", "NAME"))
    return EXIT_OK


# -- consumable resources ---------------------------------------------------------------------


def _available(resource: dict[str, Any]) -> str:
    # ListConsumableResources has no availableQuantity; the Describe call defines it this way.
    total, in_use = resource.get("totalQuantity"), resource.get("inUseQuantity")
    if not isinstance(total, int) or not isinstance(in_use, int):
        return ""
    return str(max(0, total - in_use))


def _consumable_resources(args: argparse.Namespace, batch: BatchClient) -> int:
    resources = _paginate(batch, "list_consumable_resources", "consumableResources")
    resources.sort(key=lambda r: str(r.get("consumableResourceName")))
    if args.output == "json":
        _print_json({"consumableResources": resources})
        return EXIT_OK
    if not resources:
        _console(stderr=True).print("No consumable resources.")
        return EXIT_OK
    rows = [
        [
            escape(r.get("consumableResourceName", "")),
            r.get("resourceType", ""),
            str(r.get("totalQuantity", "")),
            str(r.get("inUseQuantity", "")),
            _available(r),
        ]
        for r in resources
    ]
    _print_table(_console(), ("NAME", "TYPE", "TOTAL", "IN USE", "AVAILABLE"), rows)
    return EXIT_OK


def _consumable_resource(args: argparse.Namespace, batch: BatchClient) -> int:
    resource = _without_metadata(
        batch.client.describe_consumable_resource(consumableResource=args.name)
    )
    request: dict[str, Any] = {"consumableResource": args.name}
    if args.status:
        request["filters"] = [{"name": "JOB_STATUS", "values": [args.status]}]
    jobs = _paginate(batch, "list_jobs_by_consumable_resource", "jobs", **request)
    if args.output == "json":
        _print_json({**resource, "jobs": jobs})
        return EXIT_OK
    console = _console()
    tags = resource.get("tags") or {}
    console.print(
        _key_values(
            [
                ("ARN", resource.get("consumableResourceArn", "")),
                ("Type", resource.get("resourceType", "")),
                ("Total", str(resource.get("totalQuantity", ""))),
                ("In use", str(resource.get("inUseQuantity", ""))),
                ("Available", str(resource.get("availableQuantity", ""))),
                ("Created", _time(resource.get("createdAt"))),
                ("Tags", escape(", ".join(f"{k}={v}" for k, v in sorted(tags.items())))),
            ],
            title=f"[bold]{escape(resource.get('consumableResourceName', args.name))}[/]",
        )
    )
    if not jobs:
        which = f"{args.status} jobs" if args.status else "jobs"
        _console(stderr=True).print(f"No {which} require {escape(args.name)}.")
        return EXIT_OK
    rows = [
        [
            _arn_id(j.get("jobArn", "")),
            _status(j.get("jobStatus", "")),
            escape(j.get("jobName", "")),
            str(j.get("quantity", "")),
            escape(_arn_id(j.get("jobQueueArn", ""))),
            _time(j.get("createdAt")),
            escape(j.get("statusReason", "")),
        ]
        for j in jobs
    ]
    columns = ("JOB ID", "STATUS", "NAME", "QUANTITY", "QUEUE", "CREATED", "REASON")
    console.print()
    _print_table(console, columns, rows, optional=("REASON", "CREATED", "QUEUE", "NAME"))
    return EXIT_OK
