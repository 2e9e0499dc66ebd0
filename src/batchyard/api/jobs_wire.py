"""Wire adapters of the job operations: camelCase requests in, camelCase responses out.

Renders Job objects as AWS's JobDetail / JobSummary / ListJobsByConsumableResourceSummary shapes
and a queue snapshot as GetJobQueueSnapshot's response. Holds no rules of its own: every decision
is made by batchyard.service.jobs and batchyard.service.queue_snapshot.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping
from functools import cache
from typing import Any

from botocore import xform_name

from batchyard.api.protocol import service_model
from batchyard.domain.model import (
    ALL_JOB_STATUSES,
    Attempt,
    Dependency,
    Identity,
    Job,
    RetryStrategy,
)
from batchyard.service import job_cancellation, job_queries, jobs, queue_snapshot
from batchyard.service.context import ServiceContext

# Stores one submission's jobs (a job, or an array parent and its children); returns the first
# as stored.
Insert = Callable[[list[Job]], Awaitable[Job]]

DEFAULT_LOG_GROUP = "/aws/batch/job"
ECS_CLUSTER = "batchyard"

# ContainerDetail members that come from the attempt, never from the resolved container.
_ATTEMPT_MEMBERS = frozenset(
    {"exitCode", "reason", "containerInstanceArn", "taskArn", "logStreamName", "networkInterfaces"}
)
# List members AWS always returns, empty when unset.
_ALWAYS_LISTED = (
    "command",
    "environment",
    "volumes",
    "mountPoints",
    "ulimits",
    "resourceRequirements",
    "secrets",
    "networkInterfaces",
)
# JobDetail members that jobs keep whole in Job.extra.
_EXTRA_DETAIL_MEMBERS = (
    "nodeProperties",
    "ecsProperties",
    "eksProperties",
    "consumableResourceProperties",
)


@cache
def _container_members() -> frozenset[str]:
    shape = service_model().shape_for("ContainerDetail")
    return frozenset(shape.members) - _ATTEMPT_MEMBERS  # type: ignore[attr-defined]


# -- renderers ----------------------------------------------------------------------------------


def task_arn(identity: Identity, task_id: str) -> str:
    return f"arn:aws:ecs:{identity.region}:{identity.account_id}:task/{ECS_CLUSTER}/{task_id}"


def container_instance_arn(identity: Identity, compute_environment: str) -> str:
    return (
        f"arn:aws:ecs:{identity.region}:{identity.account_id}:container-instance/"
        f"{ECS_CLUSTER}/{compute_environment}"
    )


def _attempt_container(attempt: Attempt, identity: Identity) -> dict[str, Any]:
    rendered: dict[str, Any] = {
        "containerInstanceArn": container_instance_arn(identity, attempt.compute_environment),
        "taskArn": task_arn(identity, attempt.task_id),
    }
    if attempt.exit_code is not None:
        rendered["exitCode"] = attempt.exit_code
    if attempt.reason is not None:
        rendered["reason"] = attempt.reason
    if attempt.log_stream_name is not None:
        rendered["logStreamName"] = attempt.log_stream_name
    rendered["networkInterfaces"] = []
    return rendered


def attempt_detail(attempt: Attempt, identity: Identity) -> dict[str, Any]:
    rendered: dict[str, Any] = {"container": _attempt_container(attempt, identity)}
    if attempt.started_at is not None:
        rendered["startedAt"] = attempt.started_at
    if attempt.stopped_at is not None:
        rendered["stoppedAt"] = attempt.stopped_at
    if attempt.status_reason is not None:
        rendered["statusReason"] = attempt.status_reason
    return rendered


def container_detail(job: Job, identity: Identity, log_group: str) -> dict[str, Any]:
    """The resolved container, with the runtime facts of the latest attempt."""
    allowed = _container_members()
    rendered: dict[str, Any] = {k: v for k, v in job.container.items() if k in allowed}
    for member in _ALWAYS_LISTED:
        rendered.setdefault(member, [])
    if "logConfiguration" not in rendered:
        rendered["logConfiguration"] = {
            "logDriver": "awslogs",
            "options": {"awslogs-group": log_group, "awslogs-region": identity.region},
        }
    current = job.current_attempt
    if current is not None:
        rendered.update(_attempt_container(current, identity))
    return rendered


def _dependency(entry: Dependency) -> dict[str, str]:
    rendered: dict[str, str] = {}
    if entry.job_id is not None:
        rendered["jobId"] = entry.job_id
    if entry.type is not None:
        rendered["type"] = entry.type
    return rendered


def _retry_strategy(strategy: RetryStrategy) -> dict[str, Any]:
    rendered: dict[str, Any] = {"attempts": strategy.attempts}
    if strategy.evaluate_on_exit:
        conditions = []
        for condition in strategy.evaluate_on_exit:
            entry: dict[str, str] = {}
            if condition.on_status_reason is not None:
                entry["onStatusReason"] = condition.on_status_reason
            if condition.on_reason is not None:
                entry["onReason"] = condition.on_reason
            if condition.on_exit_code is not None:
                entry["onExitCode"] = condition.on_exit_code
            entry["action"] = condition.action
            conditions.append(entry)
        rendered["evaluateOnExit"] = conditions
    return rendered


def status_summary(job: Job) -> dict[str, int]:
    """Children per status, every one of the seven statuses present
    (docs/aws-behaviour.md#array-jobs)."""
    counts = job.array_status_summary or {}
    return {status.value: int(counts.get(status.value, 0)) for status in ALL_JOB_STATUSES}


def _array_properties(job: Job) -> dict[str, Any] | None:
    if job.array_size is not None:
        return {"size": job.array_size, "statusSummary": status_summary(job)}
    if job.array_index is not None:
        return {"index": job.array_index}
    return None


def _timestamps(job: Job, rendered: dict[str, Any]) -> None:
    # AWS omits startedAt/stoppedAt until they happen; 0 would read as 1970
    # (docs/aws-behaviour.md#job-states).
    if job.started_at is not None:
        rendered["startedAt"] = job.started_at
    if job.stopped_at is not None:
        rendered["stoppedAt"] = job.stopped_at


def job_detail(
    job: Job, identity: Identity, *, log_group: str = DEFAULT_LOG_GROUP
) -> dict[str, Any]:
    """A Job as AWS's JobDetail; members with no value are omitted, never null."""
    rendered: dict[str, Any] = {
        "jobArn": identity.arn("job", job.job_id),
        "jobName": job.job_name,
        "jobId": job.job_id,
        "jobQueue": identity.arn("job-queue", job.job_queue),
        "status": job.status.value,
    }
    if job.share_identifier is not None:
        rendered["shareIdentifier"] = job.share_identifier
    if job.scheduling_priority is not None:
        rendered["schedulingPriority"] = job.scheduling_priority
    # AWS lists an attempt once its container started; a placement alone is not one yet.
    rendered["attempts"] = [
        attempt_detail(a, identity)
        for a in job.attempts
        if a.started_at is not None or a.stopped_at is not None
    ]
    if job.status_reason is not None:
        rendered["statusReason"] = job.status_reason
    rendered["createdAt"] = job.created_at
    rendered["retryStrategy"] = _retry_strategy(job.retry_strategy)
    _timestamps(job, rendered)
    rendered["dependsOn"] = [_dependency(d) for d in job.depends_on]
    rendered["jobDefinition"] = job.job_definition_arn
    rendered["parameters"] = dict(job.parameters)
    if job.container:
        rendered["container"] = container_detail(job, identity, log_group)
    array_properties = _array_properties(job)
    if array_properties is not None:
        rendered["arrayProperties"] = array_properties
    if job.timeout_seconds is not None:
        rendered["timeout"] = {"attemptDurationSeconds": job.timeout_seconds}
    if job.tags:
        rendered["tags"] = dict(job.tags)
    rendered["propagateTags"] = job.propagate_tags
    rendered["platformCapabilities"] = list(job.platform_capabilities)
    for member in _EXTRA_DETAIL_MEMBERS:
        if job.extra.get(member) is not None:
            rendered[member] = job.extra[member]
    rendered["isCancelled"] = job.is_cancelled
    rendered["isTerminated"] = job.is_terminated
    return rendered


def job_summary(job: Job, identity: Identity) -> dict[str, Any]:
    """A Job as AWS's JobSummary (ListJobs)."""
    rendered: dict[str, Any] = {
        "jobArn": identity.arn("job", job.job_id),
        "jobId": job.job_id,
        "jobName": job.job_name,
        "createdAt": job.created_at,
    }
    if job.share_identifier is not None:
        rendered["shareIdentifier"] = job.share_identifier
    rendered["status"] = job.status.value
    if job.status_reason is not None:
        rendered["statusReason"] = job.status_reason
    _timestamps(job, rendered)
    current = job.current_attempt
    if current is not None and (current.exit_code is not None or current.reason is not None):
        container: dict[str, Any] = {}
        if current.exit_code is not None:
            container["exitCode"] = current.exit_code
        if current.reason is not None:
            container["reason"] = current.reason
        rendered["container"] = container
    array_properties = _array_properties(job)
    if array_properties is not None:
        rendered["arrayProperties"] = array_properties
    node_properties = job.extra.get("nodeProperties")
    if node_properties is not None and node_properties.get("numNodes") is not None:
        rendered["nodeProperties"] = {"numNodes": node_properties["numNodes"]}
    rendered["jobDefinition"] = job.job_definition_arn
    if job.is_cancelled:
        rendered["isCancelled"] = True
    if job.is_terminated:
        rendered["isTerminated"] = True
    return rendered


def consumable_resource_job_summary(job: Job, resource: str, identity: Identity) -> dict[str, Any]:
    """A Job as AWS's ListJobsByConsumableResourceSummary, for one resource it requires."""
    quantity = sum(r.quantity for r in job.consumable_resources if r.resource == resource)
    properties = job.extra.get("consumableResourceProperties") or {
        "consumableResourceList": [
            {"consumableResource": r.resource, "quantity": r.quantity}
            for r in job.consumable_resources
        ]
    }
    rendered: dict[str, Any] = {
        "jobArn": identity.arn("job", job.job_id),
        "jobQueueArn": identity.arn("job-queue", job.job_queue),
        "jobName": job.job_name,
        "jobDefinitionArn": job.job_definition_arn,
        "jobStatus": job.status.value,
        "quantity": quantity,
        "createdAt": job.created_at,
        "consumableResourceProperties": properties,
    }
    if job.share_identifier is not None:
        rendered["shareIdentifier"] = job.share_identifier
    if job.status_reason is not None:
        rendered["statusReason"] = job.status_reason
    if job.started_at is not None:
        rendered["startedAt"] = job.started_at
    return rendered


def job_queue_snapshot(
    snapshot: queue_snapshot.JobQueueSnapshot, identity: Identity
) -> dict[str, Any]:
    """GetJobQueueSnapshot's response."""
    utilization: dict[str, Any] = {
        "totalCapacityUsage": [{"capacityUnit": "VCPU", "quantity": snapshot.vcpus_in_use}],
        "lastUpdatedAt": snapshot.last_updated_at,
    }
    if snapshot.fairshare is not None:
        utilization["fairshareUtilization"] = {
            "activeShareCount": snapshot.fairshare.active_share_count,
            "topCapacityUtilization": [
                {
                    "shareIdentifier": share.share_identifier,
                    "capacityUsage": [{"capacityUnit": "VCPU", "quantity": share.vcpus}],
                }
                for share in snapshot.fairshare.top_capacity_utilization
            ],
        }
    return {
        "frontOfQueue": {
            "jobs": [
                {
                    "jobArn": identity.arn("job", job.job_id),
                    "earliestTimeAtPosition": job.earliest_time_at_position,
                }
                for job in snapshot.front_of_queue
            ],
            "lastUpdatedAt": snapshot.last_updated_at,
        },
        "queueUtilization": utilization,
    }


# -- handlers -----------------------------------------------------------------------------------


def _arguments(request: Mapping[str, Any], members: Iterable[str]) -> dict[str, Any]:
    """The given request members as snake_case keyword arguments."""
    return {xform_name(m): request[m] for m in members if request.get(m) is not None}


_SUBMIT_JOB_MEMBERS = (
    "jobName",
    "jobQueue",
    "jobDefinition",
    "shareIdentifier",
    "schedulingPriorityOverride",
    "arrayProperties",
    "dependsOn",
    "parameters",
    "containerOverrides",
    "nodeOverrides",
    "retryStrategy",
    "propagateTags",
    "timeout",
    "tags",
    "eksPropertiesOverride",
    "ecsPropertiesOverride",
    "consumableResourcePropertiesOverride",
)
_LIST_JOBS_MEMBERS = (
    "jobQueue",
    "arrayJobId",
    "multiNodeJobId",
    "jobStatus",
    "maxResults",
    "nextToken",
    "filters",
)


async def submit_job(
    ctx: ServiceContext, request: dict[str, Any], insert: Insert
) -> dict[str, Any]:
    """The jobs of the request are validated and built now, stored by `insert` (on the HTTP
    path, api/group_commit.py: with the other submissions of this loop turn), and answered
    once stored: the response names the stored job (an array's parent)."""
    job = await insert(jobs.build_submission(ctx, **_arguments(request, _SUBMIT_JOB_MEMBERS)))
    return {
        "jobArn": ctx.identity.arn("job", job.job_id),
        "jobName": job.job_name,
        "jobId": job.job_id,
    }


def describe_jobs(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    found = job_queries.describe_jobs(ctx, jobs=request["jobs"])
    return {"jobs": [job_detail(j, ctx.identity, log_group=ctx.log_group) for j in found]}


def list_jobs(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    page, next_token = job_queries.list_jobs(ctx, **_arguments(request, _LIST_JOBS_MEMBERS))
    response: dict[str, Any] = {"jobSummaryList": [job_summary(j, ctx.identity) for j in page]}
    if next_token is not None:
        response["nextToken"] = next_token
    return response


_LIST_JOBS_BY_CONSUMABLE_RESOURCE_MEMBERS = (
    "consumableResource",
    "filters",
    "maxResults",
    "nextToken",
)


def list_jobs_by_consumable_resource(
    ctx: ServiceContext, request: dict[str, Any]
) -> dict[str, Any]:
    found = job_queries.list_jobs_by_consumable_resource(
        ctx, **_arguments(request, _LIST_JOBS_BY_CONSUMABLE_RESOURCE_MEMBERS)
    )
    response: dict[str, Any] = {
        "jobs": [
            consumable_resource_job_summary(j, found.resource.name, ctx.identity)
            for j in found.jobs
        ]
    }
    if found.next_token is not None:
        response["nextToken"] = found.next_token
    return response


def get_job_queue_snapshot(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    snapshot = queue_snapshot.get_job_queue_snapshot(ctx, job_queue=request["jobQueue"])
    return job_queue_snapshot(snapshot, ctx.identity)


def cancel_job(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    job_cancellation.cancel_job(ctx, job_id=request["jobId"], reason=request["reason"])
    return {}


def terminate_job(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    job_cancellation.terminate_job(ctx, job_id=request["jobId"], reason=request["reason"])
    return {}


def _bulk_response(result: job_cancellation.BulkResult) -> dict[str, Any]:
    return {
        "successful": list(result.successful),
        "errors": [{"job": e.job_id, "code": e.code, "message": e.message} for e in result.errors],
    }


def cancel_jobs(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    result = job_cancellation.cancel_jobs(ctx, job_ids=request["jobs"], reason=request["reason"])
    return _bulk_response(result)


def terminate_jobs(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    result = job_cancellation.terminate_jobs(ctx, job_ids=request["jobs"], reason=request["reason"])
    return _bulk_response(result)
