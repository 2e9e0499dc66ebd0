"""`batchyard defs`: the job definitions (DescribeJobDefinitions), ACTIVE unless --all."""

from __future__ import annotations

import argparse
from typing import Any

from rich.markup import escape

from batchyard.cli import output
from batchyard.cli.exit_codes import EXIT_OK
from batchyard.cli.pagination import paginate
from batchyard.client import BatchClient


def _requirement(container: dict[str, Any], kind: str, legacy: str) -> str:
    for requirement in container.get("resourceRequirements", []):
        if requirement.get("type") == kind:
            return str(requirement.get("value", ""))
    value = container.get(legacy)
    return "" if value is None else str(value)


def describe_job_definitions(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard defs`: DescribeJobDefinitions as a table."""
    request: dict[str, Any] = {} if args.all else {"status": "ACTIVE"}
    if args.name:
        request["jobDefinitionName"] = args.name
    definitions = paginate(batch, "describe_job_definitions", "jobDefinitions", **request)
    definitions.sort(key=lambda d: (str(d.get("jobDefinitionName")), int(d.get("revision", 0))))
    if args.output == "json":
        output.print_json({"jobDefinitions": definitions})
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
    output.print_table(output.console(), columns, rows, optional=("COMMAND",))
    return EXIT_OK
