"""CreateJobQueue, UpdateJobQueue, DeleteJobQueue and DescribeJobQueues: compute environment
orders, priorities and job state time limit actions.

Validation follows AWS Batch (docs/aws-behaviour.md); the dispatcher settles the CREATING,
UPDATING and DELETING statuses these leave.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from batchyard.domain.errors import ClientException
from batchyard.domain.model import (
    ComputeEnvironmentOrder,
    Document,
    JobQueue,
    JobStateTimeLimitAction,
    ResourceState,
    ResourceStatus,
)
from batchyard.service import references, resource_lifecycle
from batchyard.service.context import ServiceContext
from batchyard.service.job_properties import check_tags
from batchyard.service.naming import check_name, named
from batchyard.service.pagination import check_max_results, page

MAX_JOB_QUEUES = 50
TIME_LIMIT_REASONS = (
    "CAPACITY:INSUFFICIENT_INSTANCE_CAPACITY",
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
    "MISCONFIGURATION:EC2_INSTANCE_CONFIGURATION_UNSUPPORTED",
)


def _check_orders(
    ctx: ServiceContext, orders: Sequence[Document]
) -> tuple[ComputeEnvironmentOrder, ...]:
    if not 1 <= len(orders) <= 3:
        raise ClientException("A job queue must have between 1 and 3 compute environments.")
    result = []
    seen_orders: set[int] = set()
    seen_ces: set[str] = set()
    for entry in orders:
        ce = references.compute_environment(ctx, entry["computeEnvironment"])
        if ce.status in (ResourceStatus.INVALID, ResourceStatus.DELETING, ResourceStatus.DELETED):
            raise ClientException(f"Compute Environment {ce.arn} is not valid.")
        order = int(entry["order"])
        if order in seen_orders:
            raise ClientException(f"computeEnvironmentOrder has a duplicate order {order}.")
        if ce.name in seen_ces:
            raise ClientException(f"Compute environment {ce.name} appears twice in the order.")
        seen_orders.add(order)
        seen_ces.add(ce.name)
        result.append(ComputeEnvironmentOrder(order=order, compute_environment=ce.name))
    return tuple(sorted(result, key=lambda o: o.order))


def _check_time_limit_actions(
    actions: Sequence[Document], queue_type: str | None
) -> tuple[JobStateTimeLimitAction, ...]:
    if len(actions) > 5:
        raise ClientException("A job queue can have at most 5 jobStateTimeLimitActions.")
    result = []
    seen: set[str] = set()
    wanted_action = "TERMINATE" if queue_type == "SAGEMAKER_TRAINING" else "CANCEL"
    for action in actions:
        reason = action["reason"]
        if reason not in TIME_LIMIT_REASONS:
            raise ClientException(
                f"jobStateTimeLimitActions reason {reason!r} is not supported; use one of: "
                + ", ".join(TIME_LIMIT_REASONS)
            )
        if reason in seen:
            raise ClientException(f"jobStateTimeLimitActions has reason {reason} twice.")
        seen.add(reason)
        if action["state"] != "RUNNABLE":
            raise ClientException("jobStateTimeLimitActions state must be RUNNABLE.")
        seconds = action["maxTimeSeconds"]
        if not 600 <= seconds <= 86400:
            raise ClientException(
                "jobStateTimeLimitActions maxTimeSeconds must be between 600 and 86400; "
                f"got {seconds}."
            )
        if action["action"] != wanted_action:
            raise ClientException(
                f"jobStateTimeLimitActions action must be {wanted_action} for this job queue."
            )
        result.append(
            JobStateTimeLimitAction(
                reason=reason, state="RUNNABLE", max_time_seconds=seconds, action=action["action"]
            )
        )
    return tuple(result)


def create_job_queue(
    ctx: ServiceContext,
    *,
    job_queue_name: str,
    priority: int,
    state: str | None = None,
    scheduling_policy_arn: str | None = None,
    compute_environment_order: Sequence[Document] | None = None,
    service_environment_order: Sequence[Document] | None = None,
    job_queue_type: str | None = None,
    tags: Mapping[str, str] | None = None,
    job_state_time_limit_actions: Sequence[Document] | None = None,
) -> JobQueue:
    check_name(job_queue_name, "Job queue")
    _check_priority(priority)
    if service_environment_order:
        raise ClientException(
            "Service environments are not supported by Batchyard; use computeEnvironmentOrder."
        )
    orders = _check_orders(ctx, compute_environment_order or [])
    policy_arn = None
    if scheduling_policy_arn is not None:
        policy_arn = references.scheduling_policy(ctx, scheduling_policy_arn).arn
    actions = _check_time_limit_actions(job_state_time_limit_actions or [], job_queue_type)
    if len(ctx.store.list_job_queues()) >= MAX_JOB_QUEUES:
        raise ClientException(f"Cannot create more than {MAX_JOB_QUEUES} job queues.")
    now = ctx.clock.now_ms()
    queue = JobQueue(
        name=job_queue_name,
        arn=ctx.identity.arn("job-queue", job_queue_name),
        state=ResourceState(state or "ENABLED"),
        status=ResourceStatus.CREATING,
        status_reason=resource_lifecycle.status_reason(JobQueue, ResourceStatus.CREATING),
        priority=priority,
        compute_environment_order=orders,
        scheduling_policy_arn=policy_arn,
        job_state_time_limit_actions=actions,
        job_queue_type=job_queue_type,
        tags=check_tags(tags),
        created_at=now,
        status_changed_at=now,
    )
    resource_lifecycle.put(ctx, queue, create=True)
    return queue


def _check_priority(priority: int) -> None:
    if not 0 <= priority <= 1000:
        raise ClientException(f"priority must be between 0 and 1000; got {priority}.")


def update_job_queue(
    ctx: ServiceContext,
    *,
    job_queue: str,
    state: str | None = None,
    scheduling_policy_arn: str | None = None,
    priority: int | None = None,
    compute_environment_order: Sequence[Document] | None = None,
    service_environment_order: Sequence[Document] | None = None,
    job_state_time_limit_actions: Sequence[Document] | None = None,
) -> JobQueue:
    queue = references.job_queue(ctx, job_queue)
    resource_lifecycle.check_updatable(queue)
    changes: dict[str, Any] = {}
    if state is not None:
        changes["state"] = ResourceState(state)
    if priority is not None:
        _check_priority(priority)
        changes["priority"] = priority
    if compute_environment_order is not None:
        changes["compute_environment_order"] = _check_orders(ctx, compute_environment_order)
    if service_environment_order:
        raise ClientException("Service environments are not supported by Batchyard.")
    if scheduling_policy_arn is not None:
        if queue.scheduling_policy_arn is None:
            raise ClientException(
                "A scheduling policy cannot be added to a job queue created without one "
                "(a FIFO queue stays FIFO)."
            )
        changes["scheduling_policy_arn"] = references.scheduling_policy(
            ctx, scheduling_policy_arn
        ).arn
    if job_state_time_limit_actions is not None:
        changes["job_state_time_limit_actions"] = _check_time_limit_actions(
            job_state_time_limit_actions, queue.job_queue_type
        )
    updated = resource_lifecycle.transition(
        queue, ResourceStatus.UPDATING, ctx.clock.now_ms(), **changes
    )
    resource_lifecycle.put(ctx, updated, create=False)
    return updated


def delete_job_queue(ctx: ServiceContext, *, job_queue: str) -> None:
    queue = references.job_queue(ctx, job_queue)
    resource_lifecycle.check_deletable(queue)
    resource_lifecycle.put(
        ctx,
        resource_lifecycle.transition(queue, ResourceStatus.DELETING, ctx.clock.now_ms()),
        create=False,
    )


def describe_job_queues(
    ctx: ServiceContext,
    *,
    job_queues: Sequence[str] | None = None,
    max_results: int | None = None,
    next_token: str | None = None,
) -> tuple[list[JobQueue], str | None]:
    found = named(ctx.store.list_job_queues(), job_queues, "job-queue")
    check_max_results(max_results, 100)
    return page(found, max_results, next_token)
