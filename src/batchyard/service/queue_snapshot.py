"""GetJobQueueSnapshot: the first RUNNABLE jobs of a queue in dispatch order, and its utilization.

Reads a store snapshot and asks scheduling.ordering for the order the planner would follow; it
decides nothing and changes nothing.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

from batchyard.domain.model import Job
from batchyard.scheduling import ordering
from batchyard.service import references
from batchyard.service.context import ServiceContext
from batchyard.store.base import SnapshotLimits

FRONT_OF_QUEUE_JOBS = 100
TOP_SHARES = 20
_LIMITS = SnapshotLimits(runnable_per_queue=FRONT_OF_QUEUE_JOBS, to_evaluate=0)


@dataclass(frozen=True, slots=True)
class FrontOfQueueJob:
    job_id: str
    earliest_time_at_position: int  # epoch ms


@dataclass(frozen=True, slots=True)
class ShareCapacity:
    share_identifier: str
    vcpus: float


@dataclass(frozen=True, slots=True)
class FairshareUtilization:
    active_share_count: int  # shares holding capacity now
    top_capacity_utilization: tuple[ShareCapacity, ...]  # at most TOP_SHARES, most vCPUs first


@dataclass(frozen=True, slots=True)
class JobQueueSnapshot:
    front_of_queue: tuple[FrontOfQueueJob, ...]
    vcpus_in_use: float  # held by the queue's STARTING and RUNNING jobs
    fairshare: FairshareUtilization | None  # None for a FIFO queue
    last_updated_at: int


def get_job_queue_snapshot(ctx: ServiceContext, *, job_queue: str) -> JobQueueSnapshot:
    queue = references.job_queue(ctx, job_queue)
    snapshot = ctx.store.snapshot(_LIMITS)
    now = ctx.clock.now_ms()
    # The snapshot's copy of the queue is the one the jobs it carries were read with.
    queue = next((q for q in snapshot.job_queues if q.name == queue.name), queue)
    front = ordering.front_of_queue(snapshot, queue, now, FRONT_OF_QUEUE_JOBS)
    held = [job for job in snapshot.active if job.job_queue == queue.name]
    return JobQueueSnapshot(
        front_of_queue=tuple(
            FrontOfQueueJob(job.job_id, _earliest_time_at_position(job)) for job in front
        ),
        vcpus_in_use=sum((job.resources.vcpus for job in held), 0.0),
        fairshare=(
            _fairshare_utilization(held)
            if ordering.fair_share_policy(snapshot, queue) is not None
            else None
        ),
        last_updated_at=now,
    )


def _earliest_time_at_position(job: Job) -> int:
    """When the job last became RUNNABLE as far as the store knows: when its last attempt
    stopped (a retry), else when it was submitted."""
    current = job.current_attempt
    if current is not None and current.stopped_at is not None:
        return current.stopped_at
    return job.created_at


def _fairshare_utilization(held: list[Job]) -> FairshareUtilization:
    by_share: defaultdict[str, float] = defaultdict(float)
    for job in held:
        if job.share_identifier is not None:
            by_share[job.share_identifier] += job.resources.vcpus
    ranked = sorted(by_share.items(), key=lambda item: (-item[1], item[0]))
    return FairshareUtilization(
        active_share_count=len(by_share),
        top_capacity_utilization=tuple(
            ShareCapacity(share, vcpus) for share, vcpus in ranked[:TOP_SHARES]
        ),
    )
