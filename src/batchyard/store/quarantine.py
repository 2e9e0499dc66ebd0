"""Records a store cannot read: what is shown of them, and what they are stored as.

A stored job whose document does not decode into a valid Job (past input that JSON could not
keep, such as a vCPU count of NaN stored as null; a document edited by hand; an unknown
status) must not stop the dispatcher or answer 500. The store hands out a stand-in built from
what it can read (the job's identity, queue and array links, in columns of their own),
FAILED with a status reason that says why, and keeps the dispatcher's snapshot free of it; the
dispatcher then has the store write the stand-in over the record (`Store.quarantine_jobs`),
keeping the unreadable text in the job's document, so that dependents and the array parent
follow as for any failed job. A job the planner cannot plan takes the same path.

Resources (compute environments, job queues, scheduling policies, job definitions, consumable
resources) that cannot be read are left out of what the store hands out, each logged once.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import orjson

from batchyard.domain import lifecycle
from batchyard.domain.model import Job, JobStatus

log = logging.getLogger("batchyard.store")

UNREADABLE_REASON = "Batchyard could not read this job's stored record: {error}"
UNPLANNABLE_REASON = "Batchyard could not schedule this job: {error}"
ORIGINAL_RECORD = "batchyard:unreadableRecord"
"""Key, in a quarantined job's `extra`, of the record as it was (kept, never shown)."""
_STATUS_BY_NAME = {status.value: status for status in JobStatus}
_REASON_LENGTH = 1024

T = TypeVar("T")


def describe(error: BaseException) -> str:
    """One line naming an error, for a status reason or a log line."""
    text = " ".join(str(error).split())
    name = type(error).__name__
    return f"{name}: {text}" if text else name


def unreadable_reason(error: BaseException) -> str:
    return UNREADABLE_REASON.format(error=describe(error))[:_REASON_LENGTH]


def unplannable_reason(error: BaseException) -> str:
    return UNPLANNABLE_REASON.format(error=describe(error))[:_REASON_LENGTH]


def stored_status(name: Any) -> JobStatus | None:
    """The status a status column names, or None for a name Batchyard does not know."""
    return _STATUS_BY_NAME.get(name) if isinstance(name, str) else None


def _int(value: Any, default: int) -> int:
    return value if type(value) is int else default


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _optional_text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def stand_in(
    *,
    job_id: str,
    job_name: Any,
    job_queue: Any,
    job_definition_arn: Any,
    job_definition_name: Any,
    status: Any,
    created_at: Any,
    seq: Any,
    stopped_at: Any,
    array_size: Any,
    array_index: Any,
    array_parent_id: Any,
    share_identifier: Any,
    run_order: Any,
    version: int,
    array_status_summary: Mapping[str, int] | None,
    reason: str,
) -> Job:
    """What can be read of a job whose document cannot: its columns, FAILED (SUCCEEDED if it
    had succeeded) with `reason`. Columns of the wrong type read as empty."""
    created = _int(created_at, 0)
    succeeded = stored_status(status) is JobStatus.SUCCEEDED
    return Job(
        job_id=job_id,
        job_name=_text(job_name),
        job_queue=_text(job_queue),
        job_definition_arn=_text(job_definition_arn),
        job_definition_name=_text(job_definition_name),
        status=JobStatus.SUCCEEDED if succeeded else JobStatus.FAILED,
        created_at=created,
        seq=_int(seq, 0),
        status_reason=reason,
        stopped_at=_int(stopped_at, created),
        array_size=array_size if type(array_size) is int else None,
        array_index=array_index if type(array_index) is int else None,
        array_parent_id=_optional_text(array_parent_id),
        share_identifier=_optional_text(share_identifier),
        run_order=_int(run_order, 0),
        version=version,
        array_status_summary=array_status_summary,
    )


def failed(job: Job, reason: str, now: int, original: Mapping[str, Any] | None) -> Job:
    """What a quarantined job is stored as: FAILED with `reason`, holding nothing; the record
    that could not be read (if any) kept in its `extra`."""
    extra = job.extra if original is None else {**job.extra, ORIGINAL_RECORD: dict(original)}
    return lifecycle.replace_job(
        job,
        status=JobStatus.FAILED,
        status_reason=reason,
        stopped_at=job.stopped_at if job.status.is_terminal and job.stopped_at else now,
        stop_cause=None,
        blocked_since=None,
        extra=extra,
    )


class Unreadable:
    """The stand-ins a store has handed out, by job id and the version they stand in for:
    a snapshot leaves them out (the planner never sees a stand-in) and names them instead."""

    def __init__(self) -> None:
        self._versions: dict[str, int] = {}
        self._reasons: dict[str, str] = {}
        self._lock = threading.Lock()

    def __bool__(self) -> bool:
        return bool(self._versions)

    def add(self, job: Job) -> None:
        """Note a stand-in just made; the first for a version of a job is logged."""
        with self._lock:
            if self._versions.get(job.job_id) == job.version:
                return
            self._versions[job.job_id] = job.version
            self._reasons[job.job_id] = job.status_reason or ""
        log.warning("job %s (queue %s): %s", job.job_id, job.job_queue, job.status_reason)

    def is_stand_in(self, job: Job) -> bool:
        return self._versions.get(job.job_id) == job.version

    def discard(self, job_ids: Iterable[str]) -> None:
        with self._lock:
            for job_id in job_ids:
                self._versions.pop(job_id, None)
                self._reasons.pop(job_id, None)

    def separate(self, jobs: tuple[Job, ...], found: dict[str, str]) -> tuple[Job, ...]:
        """`jobs` without stand-ins; each stand-in's id and reason go into `found`."""
        kept: list[Job] = []
        for job in jobs:
            if self.is_stand_in(job):
                found[job.job_id] = self._reasons.get(job.job_id, "")
            else:
                kept.append(job)
        return jobs if len(kept) == len(jobs) else tuple(kept)


_KINDS = {
    "compute_environments": "compute environment",
    "job_queues": "job queue",
    "scheduling_policies": "scheduling policy",
    "job_definitions": "job definition",
    "consumable_resources": "consumable resource",
}


def _name_in(text: str) -> str:
    try:
        found = orjson.loads(text)
    except orjson.JSONDecodeError:
        return "(name unreadable)"
    name = found.get("name") if isinstance(found, dict) else None
    return name if isinstance(name, str) else "(name unreadable)"


class UnreadableResources:
    """Decodes resource documents, leaving out (and logging once) those that do not decode."""

    def __init__(self) -> None:
        self._logged: set[tuple[str, str]] = set()

    def decode(self, table: str, text: str, decode: Callable[[str], T]) -> T | None:
        """decode(text), or None (logged once per table and text) if it raises."""
        try:
            return decode(text)
        except Exception as error:
            key = (table, text)
            if key not in self._logged:
                if len(self._logged) >= 1024:
                    self._logged.clear()
                self._logged.add(key)
                log.error(
                    "%s %s: its stored record cannot be read (%s); it is left out of "
                    "scheduling and of every answer until it is fixed or deleted; "
                    "record: %.300s",
                    _KINDS.get(table, table),
                    _name_in(text),
                    describe(error),
                    text,
                )
            return None
