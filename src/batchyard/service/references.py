"""Resolving names and ARNs to stored objects, the way AWS accepts either wherever it does."""

from __future__ import annotations

import re

from batchyard.domain.errors import ClientException
from batchyard.domain.model import ComputeEnvironment, JobDefinition, JobQueue, SchedulingPolicy
from batchyard.domain.numerals import INT32_MAX, NumeralError, parse_integer
from batchyard.service.context import ServiceContext

_ARN = re.compile(r"arn:aws[a-z-]*:batch:[^:]*:[^:]*:(?P<kind>[a-z-]+)/(?P<rest>.+)")


def name_from_reference(reference: str, kind: str) -> str:
    """The name in `name` or `arn:aws:batch:<region>:<account>:<kind>/<name>`."""
    match = _ARN.fullmatch(reference)
    if match is None:
        return reference
    if match["kind"] != kind:
        raise ClientException(f"{reference} is not a {kind} ARN.")
    return match["rest"]


def job_queue(ctx: ServiceContext, reference: str) -> JobQueue:
    queue = ctx.store.get_job_queue(name_from_reference(reference, "job-queue"))
    if queue is None:
        raise ClientException(f"JobQueue {reference} not found.")
    return queue


def compute_environment(ctx: ServiceContext, reference: str) -> ComputeEnvironment:
    ce = ctx.store.get_compute_environment(name_from_reference(reference, "compute-environment"))
    if ce is None:
        raise ClientException(f"ComputeEnvironment {reference} not found.")
    return ce


def scheduling_policy(ctx: ServiceContext, reference: str) -> SchedulingPolicy:
    policy = ctx.store.get_scheduling_policy(name_from_reference(reference, "scheduling-policy"))
    if policy is None:
        raise ClientException(f"SchedulingPolicy {reference} not found.")
    return policy


def split_job_definition(reference: str) -> tuple[str, int | None]:
    """(name, revision) of `name`, `name:rev`, or a job-definition ARN with or without :rev."""
    body = name_from_reference(reference, "job-definition")
    name, sep, revision = body.partition(":")
    if not sep:
        return name, None
    try:
        # Revisions count from 1 (a Java Integer at AWS).
        return name, parse_integer(revision, 1, INT32_MAX)
    except NumeralError:
        raise ClientException(
            f"JobDefinition {reference} is not a valid job definition reference."
        ) from None


def job_definition(ctx: ServiceContext, reference: str) -> JobDefinition:
    """The definition SubmitJob runs: name:revision as given, or a bare name's latest ACTIVE."""
    name, revision = split_job_definition(reference)
    if revision is None:
        found = ctx.store.latest_job_definition(name, active_only=True)
        if found is None:
            raise ClientException(
                f"JobDefinition name {name} does not exist or is not in ACTIVE status"
            )
        return found
    found = ctx.store.get_job_definition(name, revision)
    if found is None:
        raise ClientException(f"JobDefinition {reference} not found.")
    if found.status != "ACTIVE":
        raise ClientException(
            f"JobDefinition {name}:{revision} does not exist or is not in ACTIVE status"
        )
    return found


def job_id(reference: str) -> str:
    """The job id in a job id or a job ARN."""
    return name_from_reference(reference, "job")
