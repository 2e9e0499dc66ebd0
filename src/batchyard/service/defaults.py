"""The compute environment and job queue named `default` a fresh server creates, so that a job
submitted to it runs at once with no setup.
"""

from __future__ import annotations

from batchyard.domain.model import ResourceStatus
from batchyard.service import resource_lifecycle
from batchyard.service.compute_environments import RUNTIME_TAG, create_compute_environment
from batchyard.service.context import ServiceContext
from batchyard.service.job_queues import create_job_queue


def ensure_defaults(ctx: ServiceContext, vcpus: int) -> None:
    """On a fresh store, create CE `default` and queue `default` so a job can run at once."""
    if ctx.store.list_compute_environments() or ctx.store.list_job_queues():
        return
    ce = create_compute_environment(
        ctx,
        compute_environment_name="default",
        type="MANAGED",
        compute_resources={"type": "EC2", "minvCpus": 0, "maxvCpus": vcpus, "subnets": []},
        tags={RUNTIME_TAG: ctx.default_runtime},
    )
    # Settled at once (no dispatcher round needed), as of the moment it was created.
    resource_lifecycle.put(
        ctx,
        resource_lifecycle.transition(ce, ResourceStatus.VALID, ce.status_changed_at),
        create=False,
    )
    queue = create_job_queue(
        ctx,
        job_queue_name="default",
        priority=1,
        compute_environment_order=[{"order": 1, "computeEnvironment": "default"}],
    )
    resource_lifecycle.put(
        ctx,
        resource_lifecycle.transition(queue, ResourceStatus.VALID, queue.status_changed_at),
        create=False,
    )
