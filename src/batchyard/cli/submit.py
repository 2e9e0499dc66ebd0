"""`batchyard submit`: a SubmitJob request from flags, a JSON file in its shape, or both."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from rich.markup import escape

from batchyard.cli import output
from batchyard.cli.exit_codes import EXIT_OK, UsageError
from batchyard.client import BatchClient


def _definition_name(reference: str) -> str:
    name = reference.rsplit("/", 1)[-1] if reference.startswith("arn:") else reference
    return name.split(":", 1)[0]


def _parse_pairs(values: Iterable[str], what: str) -> dict[str, str]:
    pairs: dict[str, str] = {}
    for value in values:
        key, sep, rest = value.partition("=")
        if not sep or not key:
            raise UsageError(f"{what} must be KEY=VALUE, got {value!r}")
        pairs[key] = rest
    return pairs


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


def submit_job(args: argparse.Namespace, batch: BatchClient) -> int:
    """`batchyard submit`: SubmitJob; prints the job id (JSON: the response)."""
    request = _submit_request(args)
    response = output.without_metadata(
        batch.submit_job(
            request.pop("jobName"), request.pop("jobQueue"), request.pop("jobDefinition"), **request
        )
    )
    if args.output == "json":
        output.print_json(response)
    else:
        print(response["jobId"])
        output.console(stderr=True).print(f"Submitted job {escape(response['jobName'])}")
    return EXIT_OK
