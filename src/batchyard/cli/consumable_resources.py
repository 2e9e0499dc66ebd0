"""`batchyard resources` (ListConsumableResources) and `resource` (DescribeConsumableResource
and ListJobsByConsumableResource): they only read.
"""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape

from batchyard.cli import output
from batchyard.cli.exit_codes import EXIT_OK
from batchyard.cli.pagination import paginate
from batchyard.client import BatchClient


def _available(resource: dict[str, Any]) -> str:
    # ListConsumableResources has no availableQuantity; the Describe call defines it this way.
    total, in_use = resource.get("totalQuantity"), resource.get("inUseQuantity")
    if not isinstance(total, int) or not isinstance(in_use, int):
        return ""
    return str(max(0, total - in_use))


def list_consumable_resources(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard resources`: ListConsumableResources as a table."""
    resources = paginate(batch, "list_consumable_resources", "consumableResources")
    resources.sort(key=lambda r: str(r.get("consumableResourceName")))
    if args.output == "json":
        output.print_json({"consumableResources": resources})
        return EXIT_OK
    if not resources:
        output.console(stderr=True).print("No consumable resources.")
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
    output.print_table(output.console(), ("NAME", "TYPE", "TOTAL", "IN USE", "AVAILABLE"), rows)
    return EXIT_OK


def describe_consumable_resource(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard resource`: one consumable resource and the jobs that require it."""
    resource = output.without_metadata(
        batch.client.describe_consumable_resource(consumableResource=args.name)
    )
    request: dict[str, Any] = {"consumableResource": args.name}
    if args.status:
        request["filters"] = [{"name": "JOB_STATUS", "values": [args.status]}]
    jobs = paginate(batch, "list_jobs_by_consumable_resource", "jobs", **request)
    if args.output == "json":
        output.print_json({**resource, "jobs": jobs})
        return EXIT_OK
    console = output.console()
    tags = resource.get("tags") or {}
    console.print(
        output.key_values(
            [
                ("ARN", resource.get("consumableResourceArn", "")),
                ("Type", resource.get("resourceType", "")),
                ("Total", str(resource.get("totalQuantity", ""))),
                ("In use", str(resource.get("inUseQuantity", ""))),
                ("Available", str(resource.get("availableQuantity", ""))),
                ("Created", output.local_time(resource.get("createdAt"))),
                ("Tags", escape(", ".join(f"{k}={v}" for k, v in sorted(tags.items())))),
            ],
            title=f"[bold]{escape(resource.get('consumableResourceName', args.name))}[/]",
        )
    )
    if not jobs:
        which = f"{args.status} jobs" if args.status else "jobs"
        output.console(stderr=True).print(f"No {which} require {escape(args.name)}.")
        return EXIT_OK
    rows = [
        [
            output.arn_id(j.get("jobArn", "")),
            output.status(j.get("jobStatus", "")),
            escape(j.get("jobName", "")),
            str(j.get("quantity", "")),
            escape(output.arn_id(j.get("jobQueueArn", ""))),
            output.local_time(j.get("createdAt")),
            escape(j.get("statusReason", "")),
        ]
        for j in jobs
    ]
    columns = ("JOB ID", "STATUS", "NAME", "QUANTITY", "QUEUE", "CREATED", "REASON")
    console.print()
    output.print_table(console, columns, rows, optional=("REASON", "CREATED", "QUEUE", "NAME"))
    return EXIT_OK
