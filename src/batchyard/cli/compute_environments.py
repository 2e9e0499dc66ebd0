"""`batchyard ces`: the compute environments (DescribeComputeEnvironments)."""

from __future__ import annotations

import argparse

from rich.markup import escape

from batchyard.cli import output
from batchyard.cli.exit_codes import EXIT_OK
from batchyard.cli.pagination import paginate
from batchyard.client import BatchClient


def describe_compute_environments(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard ces`: DescribeComputeEnvironments as a table."""
    request = {"computeEnvironments": args.names} if args.names else {}
    ces = paginate(batch, "describe_compute_environments", "computeEnvironments", **request)
    if args.output == "json":
        output.print_json({"computeEnvironments": ces})
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
    output.print_table(output.console(), columns, rows, optional=("REASON",))
    return EXIT_OK
