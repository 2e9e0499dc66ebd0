"""`batchyard wait`: until every job has ended, with a live progress display on stderr."""

from __future__ import annotations

import argparse
import time
from typing import Any

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

from batchyard.cli import output
from batchyard.cli.exit_codes import EXIT_JOB_FAILED, EXIT_OK, EXIT_TIMEOUT
from batchyard.cli.jobs import JOB_STATUSES, TERMINAL, require_jobs
from batchyard.client import BatchClient


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
        counts = " ".join(
            f"{output.status(s)} {summary[s]}" for s in JOB_STATUSES if summary.get(s)
        )
        return done, total, f"{label} {output.status(status)}  {counts}"
    return (1 if status in TERMINAL else 0), 1, f"{label} {output.status(status)}"


def wait_for_jobs(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard wait`: polls DescribeJobs until every job has ended (or --timeout)."""
    job_ids = list(dict.fromkeys(args.job_ids))
    jobs = require_jobs(batch, job_ids)
    deadline = None if args.timeout is None else time.monotonic() + args.timeout
    live = args.output != "json"
    progress = Progress(
        SpinnerColumn(finished_text="•"),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=output.console(stderr=True),
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
            jobs = require_jobs(batch, job_ids)
    return _wait_outcome(args, jobs, timed_out)


def _wait_outcome(args: argparse.Namespace, jobs: list[dict[str, Any]], timed_out: bool) -> int:
    failed = [job for job in jobs if job.get("status") == "FAILED"]
    if args.output == "json":
        output.print_json({"jobs": jobs})
    else:
        console = output.console()
        for job in jobs:
            reason = job.get("statusReason", "")
            suffix = f": {escape(reason)}" if job.get("status") == "FAILED" and reason else ""
            console.print(f"{job['jobId']} {output.status(job.get('status', ''))}{suffix}")
    if failed:
        return EXIT_JOB_FAILED
    if timed_out:
        output.print_error(f"timed out after {args.timeout:g}s; jobs still running")
        return EXIT_TIMEOUT
    return EXIT_OK
