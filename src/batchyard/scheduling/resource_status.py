"""Where compute environments and job queues in flux settle: the decision the dispatcher's round
makes about resources before it plans jobs (docs/aws-behaviour.md#queues-and-compute-environments).

A created or updated compute environment is VALID when its runtime is configured on this server,
else INVALID; a created or updated job queue is VALID; a deleted compute environment goes; a
deleted job queue first asks its unfinished jobs to end, and goes once none is left. Pure: the
caller passes the resources, the runtimes it has and `now`, and applies the changes returned.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, replace

from batchyard.domain.model import ComputeEnvironment, JobQueue, ResourceStatus

_IN_FLUX = (ResourceStatus.CREATING, ResourceStatus.UPDATING)
COMPUTE_ENVIRONMENT_HEALTHY = "ComputeEnvironment Healthy"
JOB_QUEUE_HEALTHY = "JobQueue Healthy"
RUNTIME_NOT_CONFIGURED = "CLIENT_ERROR - the {runtime} runtime is not configured on this server"


@dataclass(frozen=True, slots=True)
class ComputeEnvironmentSettled:
    """Store this version of the compute environment (VALID or INVALID)."""

    compute_environment: ComputeEnvironment


@dataclass(frozen=True, slots=True)
class ComputeEnvironmentDeleted:
    """Remove the compute environment."""

    name: str


@dataclass(frozen=True, slots=True)
class JobQueueSettled:
    """Store this version of the job queue (VALID)."""

    job_queue: JobQueue


@dataclass(frozen=True, slots=True)
class JobQueueDrained:
    """Ask every unfinished job of the deleted queue to end; remove the queue once none is
    left (which only the store can tell)."""

    name: str


StatusChange = (
    ComputeEnvironmentSettled | ComputeEnvironmentDeleted | JobQueueSettled | JobQueueDrained
)


def settle(
    compute_environments: Iterable[ComputeEnvironment],
    job_queues: Iterable[JobQueue],
    runtimes: Collection[str],
    now: int,
) -> list[StatusChange]:
    """The changes that settle every resource in flux, compute environments first; empty when
    none is. `runtimes` names the runtimes configured on this server."""
    changes: list[StatusChange] = []
    for ce in compute_environments:
        if ce.status in _IN_FLUX:
            if ce.runtime in runtimes:
                status, reason = ResourceStatus.VALID, COMPUTE_ENVIRONMENT_HEALTHY
            else:
                status = ResourceStatus.INVALID
                reason = RUNTIME_NOT_CONFIGURED.format(runtime=ce.runtime)
            settled = replace(ce, status=status, status_reason=reason, status_changed_at=now)
            changes.append(ComputeEnvironmentSettled(settled))
        elif ce.status is ResourceStatus.DELETING:
            changes.append(ComputeEnvironmentDeleted(ce.name))
    for queue in job_queues:
        if queue.status in _IN_FLUX:
            settled_queue = replace(
                queue,
                status=ResourceStatus.VALID,
                status_reason=JOB_QUEUE_HEALTHY,
                status_changed_at=now,
            )
            changes.append(JobQueueSettled(settled_queue))
        elif queue.status is ResourceStatus.DELETING:
            changes.append(JobQueueDrained(queue.name))
    return changes
