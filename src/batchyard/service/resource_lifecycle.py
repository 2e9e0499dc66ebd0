"""The lifecycle compute environments and job queues share: created CREATING, updated
UPDATING, deleted DELETING (the dispatcher's next round settles each to VALID or removes it),
with AWS's status reason for each, and when one may be updated or deleted
(docs/aws-behaviour.md#queues-and-compute-environments).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, TypeVar

from batchyard.domain.errors import ClientException
from batchyard.domain.model import ComputeEnvironment, JobQueue, ResourceState, ResourceStatus
from batchyard.service.context import ServiceContext
from batchyard.store.base import ConflictError

Managed = TypeVar("Managed", ComputeEnvironment, JobQueue)

_REASONS = {
    ResourceStatus.CREATING: "is being created",
    ResourceStatus.UPDATING: "is being updated",
    ResourceStatus.DELETING: "is being deleted",
    ResourceStatus.VALID: "Healthy",
}


def _type_name(kind: type[ComputeEnvironment | JobQueue]) -> str:
    """The type as AWS names it in status reasons: ComputeEnvironment, JobQueue."""
    return "ComputeEnvironment" if issubclass(kind, ComputeEnvironment) else "JobQueue"


def _noun(resource: ComputeEnvironment | JobQueue) -> str:
    """The type as AWS names it in sentences: compute environment, job queue."""
    return "compute environment" if isinstance(resource, ComputeEnvironment) else "job queue"


def status_reason(kind: type[ComputeEnvironment | JobQueue], status: ResourceStatus) -> str:
    """AWS's statusReason for a resource of this kind in this status."""
    return f"{_type_name(kind)} {_REASONS[status]}"


def transition(resource: Managed, status: ResourceStatus, now: int, **changes: Any) -> Managed:
    """The resource with changes, in status with its reason, changed at now."""
    return replace(
        resource,
        **changes,
        status=status,
        status_reason=status_reason(type(resource), status),
        status_changed_at=now,
    )


def put(ctx: ServiceContext, resource: ComputeEnvironment | JobQueue, *, create: bool) -> None:
    """Store the resource; creating one whose name is taken is AWS's 'Object already exists'."""
    try:
        if isinstance(resource, ComputeEnvironment):
            ctx.store.put_compute_environment(resource, create=create)
        else:
            ctx.store.put_job_queue(resource, create=create)
    except ConflictError as exc:
        if not create:
            raise
        raise ClientException(f"Object already exists: {_noun(resource)} {resource.name}") from exc


def check_updatable(resource: ComputeEnvironment | JobQueue) -> None:
    """A resource being deleted cannot be updated."""
    if resource.status in (ResourceStatus.DELETING, ResourceStatus.DELETED):
        raise ClientException(f"{_type_name(type(resource))} {resource.name} is being deleted.")


def check_deletable(resource: ComputeEnvironment | JobQueue) -> None:
    """Only a DISABLED resource that is not being updated can be deleted."""
    if resource.status is ResourceStatus.UPDATING:
        raise ClientException("Cannot delete, resource is being modified")
    if resource.state is not ResourceState.DISABLED:
        raise ClientException(
            f"Cannot delete, {_noun(resource)} {resource.name} must be DISABLED first."
        )
