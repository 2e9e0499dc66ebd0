"""`batchyard queues` (DescribeJobQueues) and `queue` (GetJobQueueSnapshot)."""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from typing import Any

from rich.markup import escape

from batchyard.cli import output
from batchyard.cli.exit_codes import EXIT_OK
from batchyard.cli.jobs import find_jobs
from batchyard.cli.pagination import paginate
from batchyard.client import BatchClient


def describe_job_queues(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard queues`: DescribeJobQueues as a table."""
    request = {"jobQueues": args.names} if args.names else {}
    queues = paginate(batch, "describe_job_queues", "jobQueues", **request)
    if args.output == "json":
        output.print_json({"jobQueues": queues})
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
    output.print_table(output.console(), columns, rows, optional=("REASON",))
    return EXIT_OK


def _quantity(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return "" if value is None else str(value)


def _capacity(usage: Iterable[dict[str, Any]]) -> str:
    """A capacityUsage list as text: `4 VCPU`, several units joined by commas."""
    return ", ".join(
        f"{_quantity(u.get('quantity'))} {escape(str(u.get('capacityUnit', '')))}" for u in usage
    )


def get_job_queue_snapshot(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard queue`: the utilization and the front of a job queue."""
    response = output.without_metadata(batch.client.get_job_queue_snapshot(jobQueue=args.job_queue))
    if args.output == "json":
        output.print_json(response)
        return EXIT_OK
    front = (response.get("frontOfQueue") or {}).get("jobs", [])
    utilization = response.get("queueUtilization") or {}
    fairshare = utilization.get("fairshareUtilization")
    console = output.console()
    console.print(
        output.key_values(
            [
                ("Capacity in use", _capacity(utilization.get("totalCapacityUsage", [])) or "0"),
                ("Active shares", str(fairshare.get("activeShareCount", "")) if fairshare else ""),
                ("Updated", output.local_time(utilization.get("lastUpdatedAt"))),
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
        output.print_table(console, ("SHARE", "IN USE"), rows)
    notes = output.console(stderr=True)
    if (response.get("frontOfQuotaShares") or {}).get("quotaShares"):
        notes.print("The front of each quota share is in --output json (frontOfQuotaShares).")
    if not front:
        notes.print(f"No RUNNABLE jobs at the front of {escape(args.job_queue)}.")
        return EXIT_OK
    # The snapshot names jobs by ARN only; one DescribeJobs (at most 100) adds names and shares.
    jobs = find_jobs(batch, [output.arn_id(j["jobArn"]) for j in front])
    columns = ["POSITION", "JOB ID", "NAME", "SHARE", "SINCE"]
    rows = []
    for position, entry in enumerate(front, start=1):
        job_id = output.arn_id(entry["jobArn"])
        job = jobs.get(job_id, {})
        rows.append(
            [
                str(position),
                job_id,
                escape(job.get("jobName", "")),
                escape(job.get("shareIdentifier", "")),
                output.local_time(entry.get("earliestTimeAtPosition")),
            ]
        )
    if fairshare is None and not any(row[3] for row in rows):
        columns.remove("SHARE")
        rows = [row[:3] + row[4:] for row in rows]
    console.print()
    output.print_table(console, columns, rows, optional=("SINCE", "NAME"))
    return EXIT_OK
