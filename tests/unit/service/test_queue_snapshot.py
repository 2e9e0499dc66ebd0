"""GetJobQueueSnapshot (service/queue_snapshot.py) of FIFO and fair-share queues."""

from __future__ import annotations

from batchyard.api import jobs_wire
from batchyard.domain.model import (
    Attempt,
    Job,
    JobStatus,
)
from batchyard.service import job_cancellation, queue_snapshot
from batchyard.service.context import ServiceContext
from tests.builders import FixedClock
from tests.unit.service.context import IDENTITY, NOW, rejected, set_status, submit, wire
from tests.unit.service.shapes import shape_errors

S = JobStatus


# -- GetJobQueueSnapshot ------------------------------------------------------------------------


def test_fifo_queue_snapshot(ctx: ServiceContext, clock: FixedClock) -> None:
    first, second, third, cancelled, pending = (submit(ctx) for _ in range(5))
    retried = Attempt(task_id="r" * 32, compute_environment="ce", placed_at=NOW, stopped_at=NOW + 7)
    for job in (third, second, cancelled):
        set_status(ctx, job.job_id, S.RUNNABLE)
    set_status(ctx, first.job_id, S.RUNNABLE, attempts=(retried,))
    job_cancellation.cancel_job(ctx, job_id=cancelled.job_id, reason="no")
    set_status(ctx, pending.job_id, S.PENDING)
    running = submit(ctx)
    set_status(ctx, running.job_id, S.RUNNING)
    clock.now = NOW + 100

    snapshot = queue_snapshot.get_job_queue_snapshot(ctx, job_queue=IDENTITY.arn("job-queue", "q"))
    assert [(j.job_id, j.earliest_time_at_position) for j in snapshot.front_of_queue] == [
        (first.job_id, NOW + 7),
        (second.job_id, NOW),
        (third.job_id, NOW),
    ]
    assert snapshot.vcpus_in_use == 2.0  # the running job's definition asks for 2 vCPUs
    assert snapshot.fairshare is None
    assert snapshot.last_updated_at == NOW + 100

    response = wire(ctx, "GetJobQueueSnapshot", {"jobQueue": "q"})
    assert response["frontOfQueue"]["jobs"][0] == {
        "jobArn": IDENTITY.arn("job", first.job_id),
        "earliestTimeAtPosition": NOW + 7,
    }
    assert response["queueUtilization"] == {
        "totalCapacityUsage": [{"capacityUnit": "VCPU", "quantity": 2.0}],
        "lastUpdatedAt": NOW + 100,
    }
    assert shape_errors("GetJobQueueSnapshotResponse", response) == []
    rejected(
        lambda: queue_snapshot.get_job_queue_snapshot(ctx, job_queue="ghost"),
        "JobQueue ghost not found.",
    )


def test_fair_share_queue_snapshot(ctx: ServiceContext) -> None:
    def share_job(share: str, status: JobStatus) -> Job:
        job = submit(ctx, job_queue="fair", share_identifier=share)
        return set_status(ctx, job.job_id, status)

    a1 = share_job("a", S.RUNNABLE)
    a2 = share_job("a", S.RUNNABLE)
    b1 = share_job("b", S.RUNNABLE)
    share_job("a", S.RUNNING)
    share_job("c", S.STARTING)
    share_job("c", S.RUNNING)
    submit(ctx)  # another queue's job is not in this snapshot

    snapshot = queue_snapshot.get_job_queue_snapshot(ctx, job_queue="fair")
    # Share a holds 2 vCPUs and b none, so b goes first; then b and a tie and a's are earlier.
    assert [j.job_id for j in snapshot.front_of_queue] == [b1.job_id, a1.job_id, a2.job_id]
    assert snapshot.vcpus_in_use == 6.0
    assert snapshot.fairshare == queue_snapshot.FairshareUtilization(
        active_share_count=2,
        top_capacity_utilization=(
            queue_snapshot.ShareCapacity("c", 4.0),
            queue_snapshot.ShareCapacity("a", 2.0),
        ),
    )
    response = jobs_wire.job_queue_snapshot(snapshot, IDENTITY)
    assert response["queueUtilization"]["fairshareUtilization"] == {
        "activeShareCount": 2,
        "topCapacityUtilization": [
            {"shareIdentifier": "c", "capacityUsage": [{"capacityUnit": "VCPU", "quantity": 4.0}]},
            {"shareIdentifier": "a", "capacityUsage": [{"capacityUnit": "VCPU", "quantity": 2.0}]},
        ],
    }
    assert shape_errors("GetJobQueueSnapshotResponse", response) == []
