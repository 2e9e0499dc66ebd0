"""CancelJob and TerminateJob in the service layer, one job and in bulk."""

from __future__ import annotations

from typing import Any

import pytest

from batchyard.domain.model import (
    JobStatus,
)
from batchyard.service import job_cancellation
from batchyard.service.context import ServiceContext
from tests.unit.service.context import IDENTITY, rejected, set_status, submit

S = JobStatus


# -- CancelJob / TerminateJob -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "recorded"),
    [
        (S.SUBMITTED, True),
        (S.PENDING, True),
        (S.RUNNABLE, True),
        (S.STARTING, False),
        (S.RUNNING, False),
        (S.SUCCEEDED, False),
        (S.FAILED, False),
    ],
)
def test_cancel_job_by_status(ctx: ServiceContext, status: JobStatus, recorded: bool) -> None:
    job = set_status(ctx, submit(ctx).job_id, status)
    result = job_cancellation.cancel_job(ctx, job_id=job.job_id, reason="no longer needed")
    assert result.cancel_reason == ("no longer needed" if recorded else None)
    stored = ctx.store.get_job(job.job_id)
    assert stored is not None
    assert stored.cancel_reason == result.cancel_reason
    assert stored.status is status  # the planner applies the request, not the service


@pytest.mark.parametrize(
    ("status", "recorded"),
    [
        (S.SUBMITTED, True),
        (S.PENDING, True),
        (S.RUNNABLE, True),
        (S.STARTING, True),
        (S.RUNNING, True),
        (S.SUCCEEDED, False),
        (S.FAILED, False),
    ],
)
def test_terminate_job_by_status(ctx: ServiceContext, status: JobStatus, recorded: bool) -> None:
    job = set_status(ctx, submit(ctx).job_id, status)
    result = job_cancellation.terminate_job(
        ctx, job_id=IDENTITY.arn("job", job.job_id), reason="stop"
    )
    assert result.terminate_reason == ("stop" if recorded else None)


def test_cancel_and_terminate_checks(ctx: ServiceContext) -> None:
    job = submit(ctx)
    rejected(lambda: job_cancellation.cancel_job(ctx, job_id="ghost", reason="r"), "ghost")
    rejected(lambda: job_cancellation.terminate_job(ctx, job_id="ghost", reason="r"), "ghost")
    rejected(lambda: job_cancellation.cancel_job(ctx, job_id=job.job_id, reason="x" * 1025), "1024")
    assert (
        job_cancellation.cancel_job(ctx, job_id=job.job_id, reason="x" * 1024).cancel_reason
        == "x" * 1024
    )


@pytest.mark.parametrize("operation", [job_cancellation.cancel_job, job_cancellation.terminate_job])
def test_array_parent_request_reaches_every_child(ctx: ServiceContext, operation: Any) -> None:
    parent = submit(ctx, array_properties={"size": 4})
    set_status(ctx, f"{parent.job_id}:3", S.SUCCEEDED)
    operation(ctx, job_id=parent.job_id, reason="whole array")
    children = ctx.store.get_jobs(f"{parent.job_id}:{i}" for i in range(4))
    field = "cancel_reason" if operation is job_cancellation.cancel_job else "terminate_reason"
    assert [getattr(c, field) for c in children] == ["whole array"] * 3 + [None]
    stored_parent = ctx.store.get_job(parent.job_id)
    assert stored_parent is not None
    assert getattr(stored_parent, field) == "whole array"


def test_child_request_leaves_siblings(ctx: ServiceContext) -> None:
    parent = submit(ctx, array_properties={"size": 3})
    job_cancellation.cancel_job(ctx, job_id=f"{parent.job_id}:1", reason="one")
    children = ctx.store.get_jobs(f"{parent.job_id}:{i}" for i in range(3))
    assert [c.cancel_reason for c in children] == [None, "one", None]


@pytest.mark.parametrize(
    ("operation", "field"),
    [
        (job_cancellation.cancel_jobs, "cancel_reason"),
        (job_cancellation.terminate_jobs, "terminate_reason"),
    ],
)
def test_bulk_requests(ctx: ServiceContext, operation: Any, field: str) -> None:
    a, b = submit(ctx), submit(ctx)
    result = operation(ctx, job_ids=[a.job_id, "ghost", b.job_id], reason="bulk")
    assert result.successful == (a.job_id, "ghost", b.job_id)
    assert result.errors == ()
    for job in ctx.store.get_jobs([a.job_id, b.job_id]):
        assert getattr(job, field) == "bulk"
    rejected(lambda: operation(ctx, job_ids=["x"] * 51, reason="r"), "50")
    rejected(lambda: operation(ctx, job_ids=["x"], reason="r" * 1025), "1024")
