"""CreateComputeEnvironment, UpdateComputeEnvironment, DeleteComputeEnvironment and
DescribeComputeEnvironments, and the runtime a compute environment's `batchyard:runtime` tag
picks.

Validation follows AWS Batch (docs/aws-behaviour.md); the dispatcher settles the CREATING,
UPDATING and DELETING statuses these leave.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from batchyard.domain.errors import ClientException
from batchyard.domain.model import ComputeEnvironment, Document, ResourceState, ResourceStatus
from batchyard.service import references, resource_lifecycle
from batchyard.service.context import ServiceContext
from batchyard.service.job_properties import check_tags
from batchyard.service.naming import check_name, named
from batchyard.service.pagination import check_max_results, page

RUNTIME_TAG = "batchyard:runtime"
RUNTIMES = ("process", "docker", "slurm")
MAX_COMPUTE_ENVIRONMENTS = 50


def _runtime_from_tags(ctx: ServiceContext, tags: Mapping[str, str]) -> str:
    runtime = tags.get(RUNTIME_TAG, ctx.default_runtime)
    if runtime not in RUNTIMES:
        raise ClientException(
            f"Tag {RUNTIME_TAG} must be one of {', '.join(RUNTIMES)}; got {runtime!r}."
        )
    return runtime


def _check_compute_resources(resources: Document, current: Document | None = None) -> None:
    merged = {**(current or {}), **resources}
    maxv = merged.get("maxvCpus")
    minv = merged.get("minvCpus", 0)
    desired = merged.get("desiredvCpus")
    if maxv is not None and maxv < 0:
        raise ClientException("maxvCpus must be greater than or equal to 0.")
    if minv is not None and minv < 0:
        raise ClientException("minvCpus must be greater than or equal to 0.")
    if maxv is not None and minv is not None and minv > maxv:
        raise ClientException(f"minvCpus ({minv}) cannot be greater than maxvCpus ({maxv}).")
    if desired is not None and maxv is not None and not (minv or 0) <= desired <= maxv:
        raise ClientException(
            f"desiredvCpus ({desired}) must be between minvCpus ({minv or 0}) "
            f"and maxvCpus ({maxv})."
        )
    kind = merged.get("type")
    if kind in ("FARGATE", "FARGATE_SPOT"):
        for key in ("desiredvCpus", "minvCpus", "instanceTypes", "instanceRole", "tags"):
            if key in resources:
                raise ClientException(
                    f"Error executing request, Exception : {key} is not applicable for Fargate."
                )


def create_compute_environment(
    ctx: ServiceContext,
    *,
    compute_environment_name: str,
    type: str,
    state: str | None = None,
    unmanagedv_cpus: int | None = None,
    compute_resources: Document | None = None,
    service_role: str | None = None,
    tags: Mapping[str, str] | None = None,
    eks_configuration: Document | None = None,
    context: str | None = None,
    ecs_settings: Document | None = None,
) -> ComputeEnvironment:
    check_name(compute_environment_name, "Compute environment")
    all_tags = check_tags(tags)
    runtime = _runtime_from_tags(ctx, all_tags)
    if type == "MANAGED":
        if compute_resources is None:
            raise ClientException(
                "Error executing request, Exception : computeResources is required for a "
                "MANAGED compute environment."
            )
        _check_compute_resources(compute_resources)
        if unmanagedv_cpus is not None:
            raise ClientException(
                "unmanagedvCpus is only valid for UNMANAGED compute environments."
            )
    else:
        if compute_resources is not None:
            raise ClientException(
                "computeResources is not applicable for UNMANAGED compute environments."
            )
        if unmanagedv_cpus is not None and unmanagedv_cpus < 0:
            raise ClientException("unmanagedvCpus must be greater than or equal to 0.")
    if len(ctx.store.list_compute_environments()) >= MAX_COMPUTE_ENVIRONMENTS:
        raise ClientException(
            f"Cannot create more than {MAX_COMPUTE_ENVIRONMENTS} compute environments."
        )
    now = ctx.clock.now_ms()
    ce = ComputeEnvironment(
        name=compute_environment_name,
        arn=ctx.identity.arn("compute-environment", compute_environment_name),
        type=type,
        state=ResourceState(state or "ENABLED"),
        status=ResourceStatus.CREATING,
        status_reason=resource_lifecycle.status_reason(ComputeEnvironment, ResourceStatus.CREATING),
        runtime=runtime,
        compute_resources=compute_resources,
        service_role=service_role,
        unmanagedv_cpus=unmanagedv_cpus,
        eks_configuration=eks_configuration,
        ecs_settings=ecs_settings,
        context=context,
        uuid=str(uuid.uuid4()),
        tags=all_tags,
        created_at=now,
        status_changed_at=now,
    )
    resource_lifecycle.put(ctx, ce, create=True)
    return ce


def update_compute_environment(
    ctx: ServiceContext,
    *,
    compute_environment: str,
    state: str | None = None,
    unmanagedv_cpus: int | None = None,
    compute_resources: Document | None = None,
    service_role: str | None = None,
    update_policy: Document | None = None,
    context: str | None = None,
    ecs_settings: Document | None = None,
    eks_configuration: Document | None = None,
) -> ComputeEnvironment:
    ce = references.compute_environment(ctx, compute_environment)
    resource_lifecycle.check_updatable(ce)
    changes: dict[str, Any] = {}
    if state is not None:
        changes["state"] = ResourceState(state)
    if compute_resources is not None:
        if ce.type != "MANAGED":
            raise ClientException(
                "computeResources is not applicable for UNMANAGED compute environments."
            )
        _check_compute_resources(compute_resources, ce.compute_resources)
        changes["compute_resources"] = {**(ce.compute_resources or {}), **compute_resources}
    if unmanagedv_cpus is not None:
        if ce.type != "UNMANAGED":
            raise ClientException(
                "unmanagedvCpus is only valid for UNMANAGED compute environments."
            )
        changes["unmanagedv_cpus"] = unmanagedv_cpus
    if update_policy is not None:
        minutes = update_policy.get("jobExecutionTimeoutMinutes")
        if minutes is not None and not 1 <= minutes <= 7200:
            raise ClientException("jobExecutionTimeoutMinutes must be between 1 and 7200.")
        changes["update_policy"] = update_policy
    for key, value in (
        ("service_role", service_role),
        ("context", context),
        ("ecs_settings", ecs_settings),
        ("eks_configuration", eks_configuration),
    ):
        if value is not None:
            changes[key] = value
    updated = resource_lifecycle.transition(
        ce, ResourceStatus.UPDATING, ctx.clock.now_ms(), **changes
    )
    resource_lifecycle.put(ctx, updated, create=False)
    return updated


def delete_compute_environment(ctx: ServiceContext, *, compute_environment: str) -> None:
    ce = references.compute_environment(ctx, compute_environment)
    resource_lifecycle.check_deletable(ce)
    for queue in ctx.store.list_job_queues():
        if ce.name in queue.compute_environment_names:
            raise ClientException("Cannot delete, found existing JobQueue relationship")
    resource_lifecycle.put(
        ctx,
        resource_lifecycle.transition(ce, ResourceStatus.DELETING, ctx.clock.now_ms()),
        create=False,
    )


def describe_compute_environments(
    ctx: ServiceContext,
    *,
    compute_environments: Sequence[str] | None = None,
    max_results: int | None = None,
    next_token: str | None = None,
) -> tuple[list[ComputeEnvironment], str | None]:
    found = named(
        ctx.store.list_compute_environments(), compute_environments, "compute-environment"
    )
    check_max_results(max_results, 100)
    return page(found, max_results, next_token)
