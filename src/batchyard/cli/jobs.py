"""`batchyard jobs`, `describe`, `cancel` and `terminate`; finding jobs by id for every command.

ListJobs, DescribeJobs, CancelJob and TerminateJob through the SDK.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape

from batchyard.cli import output
from batchyard.cli.exit_codes import EXIT_OK, UsageError
from batchyard.client import BatchClient

JOB_STATUSES = ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
TERMINAL = ("SUCCEEDED", "FAILED")
DESCRIBE_JOBS_LIMIT = 100


def _chunks(items: Sequence[str], size: int) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def find_jobs(batch: BatchClient, job_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
    """One DescribeJobs per 100 ids (no retries: a missing id is an answer here)."""
    found: dict[str, dict[str, Any]] = {}
    for chunk in _chunks(list(dict.fromkeys(job_ids)), DESCRIBE_JOBS_LIMIT):
        for job in batch.client.describe_jobs(jobs=list(chunk))["jobs"]:
            found[job["jobId"]] = job
    return found


def require_jobs(batch: BatchClient, job_ids: Sequence[str]) -> list[dict[str, Any]]:
    """The jobs in the order asked; a UsageError naming any that does not exist."""
    found = find_jobs(batch, job_ids)
    missing = [job_id for job_id in job_ids if job_id not in found]
    if missing:
        raise UsageError(f"job not found: {', '.join(missing)}")
    return [found[job_id] for job_id in dict.fromkeys(job_ids)]


def _job_summaries(batch: BatchClient, args: argparse.Namespace) -> list[dict[str, Any]]:
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


def list_jobs(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard jobs`: ListJobs for every status (or --status) of a queue or an array job."""
    summaries = _job_summaries(batch, args)
    if args.output == "json":
        output.print_json({"jobSummaryList": summaries})
        return EXIT_OK
    if not summaries:
        where = f"array job {args.array}" if args.array else f"queue {args.queue}"
        output.console(stderr=True).print(f"No jobs in {escape(where)}.")
        return EXIT_OK
    columns = ["JOB ID", "STATUS", "NAME", "ARRAY", "CREATED", "DURATION", "EXIT", "REASON"]
    rows = [
        [
            s["jobId"],
            output.status(s.get("status", "")),
            escape(s.get("jobName", "")),
            _array_column(s),
            output.local_time(s.get("createdAt")),
            _duration(s),
            _exit_code(s.get("container")),
            escape(s.get("statusReason", "")),
        ]
        for s in summaries
    ]
    if not any(s.get("arrayProperties") for s in summaries):
        columns.remove("ARRAY")
        rows = [row[:3] + row[4:] for row in rows]
    output.print_table(
        output.console(), columns, rows, optional=("REASON", "CREATED", "NAME", "DURATION")
    )
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
        output.key_values(
            [
                ("Job ID", job["jobId"]),
                ("Status", output.status(job.get("status", ""))),
                ("Reason", escape(job.get("statusReason", ""))),
                ("Queue", job.get("jobQueue", "")),
                ("Definition", job.get("jobDefinition", "")),
                ("Array", f"{_array_column(job)} {counts}".strip()),
                ("Depends on", depends),
                ("Command", escape(" ".join(container.get("command", [])))),
                ("Created", output.local_time(job.get("createdAt"))),
                ("Started", output.local_time(job.get("startedAt"))),
                ("Stopped", output.local_time(job.get("stoppedAt"))),
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
                output.local_time(attempt.get("startedAt")),
                output.local_time(attempt.get("stoppedAt")),
                _exit_code(attempt.get("container")),
                escape(attempt.get("statusReason", "")),
                escape((attempt.get("container") or {}).get("logStreamName", "")),
            ]
            for number, attempt in enumerate(attempts, start=1)
        ]
        columns = ("ATTEMPT", "STARTED", "STOPPED", "EXIT", "REASON", "LOG STREAM")
        output.print_table(console, columns, rows, optional=("LOG STREAM", "REASON", "STARTED"))


def describe_jobs(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard describe`: each job, its attempts and their log streams (DescribeJobs)."""
    found = find_jobs(batch, args.job_ids)
    jobs = [found[job_id] for job_id in dict.fromkeys(args.job_ids) if job_id in found]
    if args.output == "json":
        output.print_json({"jobs": jobs})
    else:
        console = output.console()
        for job in jobs:
            _print_job(console, job)
            console.print()
    missing = [job_id for job_id in args.job_ids if job_id not in found]
    if missing:
        raise UsageError(f"job not found: {', '.join(missing)}")
    return EXIT_OK


def _stop_jobs(args: argparse.Namespace, call: Callable[[str, str], Any], done: str) -> int:
    results = []
    for job_id in dict.fromkeys(args.job_ids):
        call(job_id, args.reason)
        results.append({"jobId": job_id, "reason": args.reason})
        if args.output != "json":
            print(f"{done} {job_id}")
    if args.output == "json":
        output.print_json({"jobs": results})
    return EXIT_OK


def cancel_jobs(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard cancel`: CancelJob for each job."""
    return _stop_jobs(args, batch.cancel_job, "Cancelled")


def terminate_jobs(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard terminate`: TerminateJob for each job."""
    return _stop_jobs(args, batch.terminate_job, "Terminated")
