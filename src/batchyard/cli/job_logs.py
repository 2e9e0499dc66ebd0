"""`batchyard logs`: a job's output, every attempt's log stream in order, followed or not."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.markup import escape

from batchyard.cli import output
from batchyard.cli.exit_codes import EXIT_OK, UsageError
from batchyard.cli.jobs import require_jobs
from batchyard.client import BatchClient, JobLogTailer, LogLine


def print_logs(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard logs`: every attempt's output in order; with --follow, until the job ends."""
    (job,) = require_jobs(batch, [args.job_id])
    if "size" in (job.get("arrayProperties") or {}):
        raise UsageError(
            f"{args.job_id} is an array job: its children have the logs "
            f"(batchyard logs {args.job_id}:<index>)"
        )
    tailer = JobLogTailer(batch, args.job_id, poll_interval=args.interval)
    stream: str | None = None
    notes = output.console(stderr=True)
    for line in tailer.events(follow=args.follow):
        if args.output == "json":
            print(json.dumps(_log_line_document(line)), flush=True)
            continue
        if line.log_stream != stream:
            stream = line.log_stream
            notes.print(f"[dim]==> attempt {line.attempt + 1}: {escape(stream)} <==[/]")
        prefix = f"{output.local_time(line.timestamp)} " if args.timestamps else ""
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
