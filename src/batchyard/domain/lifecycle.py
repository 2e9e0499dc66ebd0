"""The rules of one job: legal transitions, retries, cancel/terminate requests, attempt events.

Pure functions from a Job (and facts) to its next version, or None when nothing changes.
No clock, no randomness, no I/O: callers pass `now` and the facts they observed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from dataclasses import fields, replace
from typing import Any

from batchyard.domain.model import Attempt, Job, JobStatus, StopCause

# -- exact AWS strings (docs/aws-behaviour.md#status-reasons) -------------------------------------
DEPENDENT_JOB_FAILED = "Dependent Job failed"
ARRAY_CHILD_JOB_FAILED = "Array Child Job failed"
ATTEMPT_TIMEOUT = "Job attempt duration exceeded timeout"
ESSENTIAL_CONTAINER_EXITED = "Essential container in task exited"
TASK_FAILED_TO_START = "Task failed to start"
TIME_LIMIT_CANCEL = "Canceled by JobStateTimeLimit action due to reason: {reason}"

COMPUTE_ENVIRONMENT_MAX_RESOURCE = (
    "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job queue "
    "cannot meet the CPU requirement of the job."
)
JOB_RESOURCE_REQUIREMENT = (
    "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement (vCPU/memory/GPU) "
    "is higher than that can be met by the CE(s) attached to the job queue."
)
CE_INVALID = "ACTION_REQUIRED - CE(s) associated with the job queue are invalid."

BLOCKED_REASON_CODES: Mapping[str, str] = {
    reason: reason.split(" - ", 1)[0]
    for reason in (COMPUTE_ENVIRONMENT_MAX_RESOURCE, JOB_RESOURCE_REQUIREMENT, CE_INVALID)
}
"""Blocked RUNNABLE statusReason -> the reason code jobStateTimeLimitActions name."""

# -- new versions ------------------------------------------------------------------------------

_JOB_FIELDS = tuple(f.name for f in fields(Job))
# Job's slots, written directly: a frozen dataclass's __init__ writes each field through
# object.__setattr__, which costs twice as much. Job validates nothing on construction.
_JOB_SLOTS = {name: getattr(Job, name).__set__ for name in _JOB_FIELDS}
assert not hasattr(Job, "__post_init__"), "replace_job would skip Job.__post_init__"


def _copier() -> Callable[[Job], Job]:
    """A function copying every field of a Job, written out field by field as dataclasses
    writes __init__: a loop over the fields costs twice as much
    (docs/performance.md#ledger-of-optimisations)."""
    setters = ", ".join(f"_set_{name}=_slots[{name!r}]" for name in _JOB_FIELDS)
    lines = [
        f"def copy_job(job, _new=object.__new__, _Job=_Job, {setters}):",
        "    new = _new(_Job)",
    ]
    lines += [f"    _set_{name}(new, job.{name})" for name in _JOB_FIELDS]
    lines.append("    return new")
    namespace: dict[str, Any] = {"_Job": Job, "_slots": _JOB_SLOTS}
    exec("\n".join(lines), namespace)  # the source is built above from Job's own fields
    copy: Callable[[Job], Job] = namespace["copy_job"]
    return copy


_copy_job = _copier()


def replace_job(job: Job, **changes: Any) -> Job:
    """dataclasses.replace for a Job, several times faster: every decision and every store
    write makes a new version of a job, thousands a second."""
    new = _copy_job(job)
    for name, value in changes.items():
        _JOB_SLOTS[name](new, value)
    return new


# -- transitions (docs/aws-behaviour.md#job-states) -----------------------------------------------
_S = JobStatus

LEGAL_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    # SUBMITTED -> SUCCEEDED only for an array parent whose children all ended before it was seen.
    _S.SUBMITTED: frozenset({_S.PENDING, _S.RUNNABLE, _S.FAILED, _S.SUCCEEDED}),
    # PENDING -> SUCCEEDED only for array parents.
    _S.PENDING: frozenset({_S.RUNNABLE, _S.FAILED, _S.SUCCEEDED}),
    _S.RUNNABLE: frozenset({_S.STARTING, _S.FAILED}),
    # STARTING -> SUCCEEDED: a runtime may report an exit before its start was recorded
    # (recovery, or both events in one batch); the job did run and succeed.
    _S.STARTING: frozenset({_S.RUNNING, _S.RUNNABLE, _S.FAILED, _S.SUCCEEDED}),
    _S.RUNNING: frozenset({_S.SUCCEEDED, _S.FAILED, _S.RUNNABLE}),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset(),
}
"""Every status change any job may make (union of ordinary jobs and array parents)."""

ARRAY_PARENT_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    _S.SUBMITTED: frozenset({_S.PENDING, _S.SUCCEEDED, _S.FAILED}),
    _S.PENDING: frozenset({_S.SUCCEEDED, _S.FAILED}),
    _S.RUNNABLE: frozenset(),
    _S.STARTING: frozenset(),
    _S.RUNNING: frozenset(),
    _S.SUCCEEDED: frozenset(),
    _S.FAILED: frozenset(),
}

_ORDINARY_TRANSITIONS: Mapping[JobStatus, frozenset[JobStatus]] = {
    status: targets
    - (frozenset({_S.SUCCEEDED}) if status in (_S.SUBMITTED, _S.PENDING) else frozenset())
    for status, targets in LEGAL_TRANSITIONS.items()
}


def is_legal_transition(job: Job, to: JobStatus) -> bool:
    """Whether `job` (as it was) may move to `to`, given whether it is an array parent."""
    table = ARRAY_PARENT_TRANSITIONS if job.is_array_parent else _ORDINARY_TRANSITIONS
    return to in table[job.status]


# -- retry (docs/aws-behaviour.md#retries) --------------------------------------------------------


def glob_matches(pattern: str, value: str) -> bool:
    """evaluateOnExit matching: exact, or a trailing `*` for a prefix (a lone `*` matches all)."""
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    return pattern == value


def should_retry(job: Job, attempt: Attempt) -> bool:
    """Whether the failed `attempt` earns the job another one (attempts left, no EXIT match)."""
    if len(job.attempts) >= job.retry_strategy.attempts:
        return False
    for entry in job.retry_strategy.evaluate_on_exit:
        if entry.on_exit_code is not None and (
            attempt.exit_code is None
            or not glob_matches(entry.on_exit_code, str(attempt.exit_code))
        ):
            continue
        if entry.on_reason is not None and not glob_matches(entry.on_reason, attempt.reason or ""):
            continue
        if entry.on_status_reason is not None and not glob_matches(
            entry.on_status_reason, attempt.status_reason or ""
        ):
            continue
        return entry.action.upper() == "RETRY"
    return True


# -- requests (docs/aws-behaviour.md#cancel-and-terminate) ----------------------------------------


def request_cancel(job: Job, reason: str) -> Job | None:
    """Record a CancelJob; the planner applies it. No effect once the job is placed or ended."""
    if job.status.is_terminal or job.status.is_active or job.cancel_reason is not None:
        return None
    return replace_job(job, cancel_reason=reason)


def request_terminate(job: Job, reason: str) -> Job | None:
    """Record a TerminateJob; the planner cancels or stops the job."""
    if job.status.is_terminal or job.terminate_reason is not None:
        return None
    return replace_job(job, terminate_reason=reason)


# -- attempt events reported by a runtime ---------------------------------------------------------


def _replace_current_attempt(job: Job, attempt: Attempt) -> tuple[Attempt, ...]:
    return (*job.attempts[:-1], attempt)


def attempt_started(job: Job, task_id: str, started_at: int, runtime_handle: str) -> Job | None:
    """The attempt's container runs: STARTING -> RUNNING. None if stale or already recorded."""
    current = job.current_attempt
    if (
        current is None
        or current.task_id != task_id
        or current.started_at is not None
        or current.has_ended
    ):
        return None
    attempt = replace(current, started_at=started_at, runtime_handle=runtime_handle)
    status = JobStatus.RUNNING if job.status is JobStatus.STARTING else job.status
    return replace_job(
        job,
        attempts=_replace_current_attempt(job, attempt),
        status=status,
        started_at=started_at,
    )


def attempt_exited(
    job: Job,
    task_id: str,
    stopped_at: int,
    exit_code: int | None,
    reason: str | None,
    status_reason: str | None,
) -> Job | None:
    """Record how the current attempt ended; the job's next status is the planner's decision."""
    current = job.current_attempt
    if current is None or current.task_id != task_id or current.has_ended:
        return None
    if job.stop_cause is StopCause.TIMEOUT:
        status_reason = ATTEMPT_TIMEOUT
    attempt = replace(
        current,
        stopped_at=stopped_at,
        exit_code=exit_code,
        reason=reason,
        status_reason=status_reason,
    )
    return replace_job(job, attempts=_replace_current_attempt(job, attempt))


# -- names ---------------------------------------------------------------------------------------


def new_task_id(job_id: str, attempt_number: int) -> str:
    """The task id of a job's n-th attempt: 32 lowercase hex, the same on every replay."""
    digest = hashlib.md5(f"{job_id}#{attempt_number}".encode(), usedforsecurity=False)
    return digest.hexdigest()


def log_stream_name(job_definition_name: str, task_id: str) -> str:
    return f"{job_definition_name[:200]}/default/{task_id}"


# -- decisions the planner composes --------------------------------------------------------------


def fail(
    job: Job,
    status_reason: str,
    now: int,
    *,
    cancelled: bool = False,
    terminated: bool = False,
) -> Job:
    """End a job that has no running attempt: FAILED with `status_reason`, stopped now."""
    return replace_job(
        job,
        status=JobStatus.FAILED,
        status_reason=status_reason,
        stopped_at=now,
        is_cancelled=job.is_cancelled or cancelled,
        is_terminated=job.is_terminated or terminated,
    )


def requested_stop_reason(job: Job) -> str | None:
    """The caller's reason of a pending CancelJob/TerminateJob, if any."""
    return job.cancel_reason or job.terminate_reason


def cancel_unstarted(job: Job, now: int) -> Job | None:
    """Apply a cancel/terminate request to a job that was never placed (or is waiting again)."""
    reason = requested_stop_reason(job)
    if reason is None:
        return None
    return fail(job, reason, now, cancelled=True)


def array_parent_outcome(job: Job, now: int) -> Job | None:
    """An array parent's status from its children's counts (docs/aws-behaviour.md#array-jobs)."""
    if job.array_size is None or job.status.is_terminal:
        return None
    summary = job.array_status_summary or {}
    succeeded = summary.get(JobStatus.SUCCEEDED.value, 0)
    failed = summary.get(JobStatus.FAILED.value, 0)
    if succeeded + failed == job.array_size:
        if failed == 0:
            return replace_job(job, status=JobStatus.SUCCEEDED, stopped_at=now)
        if job.cancel_reason is not None:
            return fail(job, job.cancel_reason, now, cancelled=True)
        if job.terminate_reason is not None:
            return fail(job, job.terminate_reason, now, terminated=True)
        return fail(job, ARRAY_CHILD_JOB_FAILED, now)
    if job.status is JobStatus.SUBMITTED:
        return replace_job(job, status=JobStatus.PENDING)
    return None


def order_terminate_stop(job: Job) -> Job | None:
    """A TerminateJob on a placed job: order its current attempt stopped."""
    current = job.current_attempt
    if (
        job.terminate_reason is None
        or job.stop_cause is not None
        or current is None
        or current.has_ended
    ):
        return None
    return replace_job(job, stop_cause=StopCause.TERMINATED)


def attempt_deadline(job: Job) -> int | None:
    """When the running attempt's timeout expires (the clock starts at its startedAt)."""
    current = job.current_attempt
    if (
        job.timeout_seconds is None
        or current is None
        or current.started_at is None
        or current.has_ended
    ):
        return None
    return current.started_at + job.timeout_seconds * 1000


def order_timeout_stop(job: Job, now: int) -> Job | None:
    """Stop an attempt whose timeout has expired, unless a stop is already ordered."""
    deadline = attempt_deadline(job)
    if deadline is None or job.stop_cause is not None or now < deadline:
        return None
    return replace_job(job, stop_cause=StopCause.TIMEOUT)


def settle_ended_attempt(job: Job) -> Job | None:
    """A placed job whose current attempt ended: SUCCEEDED, retried (RUNNABLE) or FAILED."""
    attempt = job.current_attempt
    if not job.status.is_active or attempt is None or attempt.stopped_at is None:
        return None
    started_at = attempt.started_at if attempt.started_at is not None else job.started_at
    # The job's times follow the attempt that ended (one new version, not two).
    ended: dict[str, Any] = {"stopped_at": attempt.stopped_at, "started_at": started_at}
    if job.stop_cause is StopCause.TERMINATED:
        return replace_job(
            job,
            **ended,
            status=JobStatus.FAILED,
            status_reason=job.terminate_reason,
            is_terminated=True,
        )
    if job.stop_cause is StopCause.TIMEOUT:
        return replace_job(job, **ended, status=JobStatus.FAILED, status_reason=ATTEMPT_TIMEOUT)
    if attempt.exit_code == 0:
        return replace_job(
            job, **ended, status=JobStatus.SUCCEEDED, status_reason=attempt.status_reason
        )
    if job.terminate_reason is not None:
        # TerminateJob arrived after the attempt ended but before this decision: terminated
        # jobs are never retried (docs/aws-behaviour.md#cancel-and-terminate).
        return replace_job(
            job,
            **ended,
            status=JobStatus.FAILED,
            status_reason=job.terminate_reason,
            is_terminated=True,
        )
    if should_retry(job, attempt):
        return replace_job(
            job,
            status=JobStatus.RUNNABLE,
            # A retry goes to the front of its queue (docs/aws-behaviour.md#retries).
            run_order=-job.seq,
            compute_environment=None,
            stop_cause=None,
            status_reason=attempt.status_reason,
            started_at=started_at,
            blocked_since=None,
        )
    return replace_job(job, **ended, status=JobStatus.FAILED, status_reason=attempt.status_reason)
