"""CancelJob and TerminateJob, and their bulk forms CancelJobs and TerminateJobs: recording a
request to stop a job (and an array job's children). The planner carries it out
(domain/lifecycle.py request_cancel, request_terminate; docs/aws-behaviour.md#cancel-and-terminate).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from batchyard.domain import lifecycle
from batchyard.domain.errors import BatchError, ClientException
from batchyard.domain.model import Job
from batchyard.service import references
from batchyard.service.context import ServiceContext
from batchyard.service.job_properties import invalid
from batchyard.store.base import JobMutation

MAX_REASON = 1024
MAX_BULK_JOBS = 50


@dataclass(frozen=True, slots=True)
class BulkError:
    job_id: str
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class BulkResult:
    successful: tuple[str, ...]
    errors: tuple[BulkError, ...]


def _check_reason(reason: str) -> None:
    if len(reason) > MAX_REASON:
        raise invalid(f"reason must be at most {MAX_REASON} characters, got {len(reason)}.")


def _request(ctx: ServiceContext, job_id: str, mutation: JobMutation) -> Job | None:
    """Record a cancel/terminate request on a job and, for an array parent, its children."""
    job = ctx.store.mutate_job(job_id, mutation)
    if job is not None and job.is_array_parent:
        ctx.store.mutate_array_children(job.job_id, mutation)
    return job


def cancel_job(ctx: ServiceContext, *, job_id: str, reason: str) -> Job:
    """Ask for a job to be cancelled; placed or ended jobs are left alone (BM:CancelJob)."""
    _check_reason(reason)
    job = _request(ctx, references.job_id(job_id), lambda j: lifecycle.request_cancel(j, reason))
    if job is None:
        raise ClientException(f"Job {job_id} not found.")
    return job


def terminate_job(ctx: ServiceContext, *, job_id: str, reason: str) -> Job:
    """Ask for a job to be terminated: cancelled if not placed yet, stopped if it runs."""
    _check_reason(reason)
    job = _request(ctx, references.job_id(job_id), lambda j: lifecycle.request_terminate(j, reason))
    if job is None:
        raise ClientException(f"Job {job_id} not found.")
    return job


def _bulk(ctx: ServiceContext, job_ids: Sequence[str], mutation: JobMutation) -> BulkResult:
    if len(job_ids) > MAX_BULK_JOBS:
        raise invalid(f"At most {MAX_BULK_JOBS} jobs can be given, got {len(job_ids)}.")
    successful: list[str] = []
    errors: list[BulkError] = []
    for job_id in job_ids:
        try:
            # Unknown ids count as successful (BM:CancelJobs).
            _request(ctx, references.job_id(job_id), mutation)
        except BatchError as error:
            errors.append(BulkError(job_id, error.code, error.message))
        else:
            successful.append(job_id)
    return BulkResult(tuple(successful), tuple(errors))


def cancel_jobs(ctx: ServiceContext, *, job_ids: Sequence[str], reason: str) -> BulkResult:
    _check_reason(reason)
    return _bulk(ctx, job_ids, lambda j: lifecycle.request_cancel(j, reason))


def terminate_jobs(ctx: ServiceContext, *, job_ids: Sequence[str], reason: str) -> BulkResult:
    _check_reason(reason)
    return _bulk(ctx, job_ids, lambda j: lifecycle.request_terminate(j, reason))
