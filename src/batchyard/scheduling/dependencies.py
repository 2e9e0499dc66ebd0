"""Jobs waiting to run: SUBMITTED/PENDING -> PENDING/RUNNABLE/FAILED, and array parent status.

dependsOn (plain, N_TO_N, SEQUENTIAL) is already expanded into `wait_for` ids at submit, so
here a dependency is just a job id and its current status. Pure: reads only what it is given.
"""

from __future__ import annotations

from collections.abc import Mapping

from batchyard.domain import lifecycle
from batchyard.domain.model import Job, JobStatus


def _status_of(job_id: str, dependency_status: Mapping[str, JobStatus]) -> JobStatus:
    # A dependency the store no longer knows (expired, deleted) can never succeed.
    return dependency_status.get(job_id, JobStatus.FAILED)


def dependencies_terminal(job: Job, dependency_status: Mapping[str, JobStatus]) -> bool:
    return all(_status_of(dep, dependency_status).is_terminal for dep in job.wait_for)


def evaluate_waiting(job: Job, dependency_status: Mapping[str, JobStatus], now: int) -> Job | None:
    """The next version of a SUBMITTED or PENDING job (not an array parent), or None."""
    if job.status not in (JobStatus.SUBMITTED, JobStatus.PENDING):
        return None
    if lifecycle.requested_stop_reason(job) is not None:
        # CancelJob on a PENDING job takes effect only once its dependencies completed
        # (docs/aws-behaviour.md#cancel-and-terminate).
        if job.status is JobStatus.SUBMITTED or dependencies_terminal(job, dependency_status):
            return lifecycle.cancel_unstarted(job, now)
        return None
    statuses = [_status_of(dep, dependency_status) for dep in job.wait_for]
    if any(status is JobStatus.FAILED for status in statuses):
        return lifecycle.fail(job, lifecycle.DEPENDENT_JOB_FAILED, now)
    if all(status is JobStatus.SUCCEEDED for status in statuses):
        return lifecycle.replace_job(job, status=JobStatus.RUNNABLE, status_reason=None)
    if job.status is JobStatus.SUBMITTED:
        return lifecycle.replace_job(job, status=JobStatus.PENDING)
    return None


def evaluate_array_parent(job: Job, now: int) -> Job | None:
    """An array parent follows its children's counts (docs/aws-behaviour.md#array-jobs)."""
    return lifecycle.array_parent_outcome(job, now)
