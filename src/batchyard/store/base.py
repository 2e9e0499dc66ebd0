"""The Store protocol: durable state of every Batch object, and how plans are applied to it.

A store saves and applies; it never decides. Its only bookkeeping is mechanical: versions,
the evaluation flag, array child counts, and flagging the dependents of a job that ended.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from batchyard.domain.model import (
    ComputeEnvironment,
    ConsumableResource,
    Job,
    JobDefinition,
    JobQueue,
    JobStatus,
    SchedulingPolicy,
)
from batchyard.scheduling.snapshot import Plan, Snapshot


class StoreError(Exception):
    """The store cannot be opened or used (unreadable file, foreign schema, ...)."""


class ConflictError(Exception):
    """A write lost a race: the object changed or already exists."""


@dataclass(frozen=True, slots=True)
class JobQuery:
    """A ListJobs query. Exactly one of job_queue / array_job_id / multi_node_job_id is set."""

    job_queue: str | None = None
    array_job_id: str | None = None
    multi_node_job_id: str | None = None
    status: JobStatus | None = None  # None: every status
    job_name_prefix: str | None = None  # case-insensitive prefix
    job_name: str | None = None  # case-insensitive exact
    job_definition_name: str | None = None  # any revision
    job_definition_name_prefix: str | None = None
    job_definition_arn: str | None = None
    created_before: int | None = None  # epoch ms, exclusive
    created_after: int | None = None  # epoch ms, exclusive
    share_identifier: str | None = None
    limit: int = 100
    # Keyset cursor: the `seq` of the last job of the previous page (newest first), or for
    # array children the last array_index (ascending).
    after: int | None = None

    def __post_init__(self) -> None:
        selectors = (self.job_queue, self.array_job_id, self.multi_node_job_id)
        if sum(s is not None for s in selectors) != 1:
            raise ValueError(
                "JobQuery needs exactly one of job_queue, array_job_id, multi_node_job_id"
            )

    def matches(self, job: Job) -> bool:
        """The filters (not the selector) applied to one job: what MemoryStore applies in
        Python and SqlStore in SQL (store/sql/jobs.py `filtered`); test_list_jobs_filters
        holds the two together."""
        if self.status is not None and job.status is not self.status:
            return False
        if self.job_name is not None and job.job_name.lower() != self.job_name.lower():
            return False
        if self.job_name_prefix is not None and not job.job_name.lower().startswith(
            self.job_name_prefix.lower()
        ):
            return False
        if (
            self.job_definition_name is not None
            and job.job_definition_name != self.job_definition_name
        ):
            return False
        if self.job_definition_name_prefix is not None and not job.job_definition_name.startswith(
            self.job_definition_name_prefix
        ):
            return False
        if (
            self.job_definition_arn is not None
            and job.job_definition_arn != self.job_definition_arn
        ):
            return False
        if self.created_before is not None and not job.created_at < self.created_before:
            return False
        if self.created_after is not None and not job.created_at > self.created_after:
            return False
        return self.share_identifier is None or job.share_identifier == self.share_identifier


@dataclass(frozen=True, slots=True)
class ConsumableJobQuery:
    """A ListJobsByConsumableResource query: jobs that require `resource`, newest first."""

    resource: str  # name
    status: JobStatus | None = None
    job_name: str | None = None  # case-insensitive exact
    job_name_prefix: str | None = None  # case-insensitive prefix (a trailing `*` in AWS)
    limit: int = 100
    after: int | None = None  # keyset cursor: the `seq` of the last job of the previous page

    def matches(self, job: Job) -> bool:
        """The filters (not the resource) applied to one job."""
        if self.status is not None and job.status is not self.status:
            return False
        if self.job_name is not None and job.job_name.lower() != self.job_name.lower():
            return False
        return self.job_name_prefix is None or job.job_name.lower().startswith(
            self.job_name_prefix.lower()
        )


@dataclass(frozen=True, slots=True)
class SnapshotLimits:
    # RUNNABLE heads read per FIFO queue, and per share of a fair-share queue...
    runnable_per_queue: int = 256
    to_evaluate: int = 4096
    # ...unless this names the queue: a queue whose placement stops at its first head needs
    # few, so the dispatcher reads each queue's heads by what its last rounds took.
    runnable_read: Mapping[str, int] = field(default_factory=dict)

    def heads_of(self, job_queue: str) -> int:
        """How many RUNNABLE heads to read of this queue (of each share, under fair share)."""
        return self.runnable_read.get(job_queue, self.runnable_per_queue)


JobMutation = Callable[[Job], Job | None]
"""Given the current job, return its new version, or None to leave it unchanged."""

ConsumableResourceMutation = Callable[[ConsumableResource], ConsumableResource]
"""Given the current resource, return its new version (it may raise to abort)."""


# The protocol in three parts by concept (Nomad's state store is cut the same way), composed
# into Store, which both stores implement whole. A caller may declare the part it uses.


class ResourceStore(Protocol):
    """Named resources: compute environments, job queues, scheduling policies, consumable
    resources and job definitions."""

    # -- compute environments, job queues, scheduling policies -----------------------------
    def put_compute_environment(self, ce: ComputeEnvironment, *, create: bool) -> None:
        """Insert (create=True; ConflictError if the name exists) or replace."""
        ...

    def get_compute_environment(self, name: str) -> ComputeEnvironment | None: ...
    def list_compute_environments(self) -> list[ComputeEnvironment]: ...
    def delete_compute_environment(self, name: str) -> None: ...

    def put_job_queue(self, queue: JobQueue, *, create: bool) -> None: ...
    def get_job_queue(self, name: str) -> JobQueue | None: ...
    def list_job_queues(self) -> list[JobQueue]: ...
    def delete_job_queue(self, name: str) -> None: ...

    def put_scheduling_policy(self, policy: SchedulingPolicy, *, create: bool) -> None: ...
    def get_scheduling_policy(self, name: str) -> SchedulingPolicy | None: ...
    def list_scheduling_policies(self) -> list[SchedulingPolicy]: ...
    def delete_scheduling_policy(self, name: str) -> None: ...

    # -- consumable resources ---------------------------------------------------------------
    def put_consumable_resource(self, resource: ConsumableResource, *, create: bool) -> None:
        """Insert (create=True; ConflictError if the name exists) or replace (tags)."""
        ...

    def get_consumable_resource(self, name: str) -> ConsumableResource | None: ...
    def list_consumable_resources(self) -> list[ConsumableResource]:
        """Every consumable resource, ordered by name."""
        ...

    def delete_consumable_resource(self, name: str) -> None: ...

    def mutate_consumable_resource(
        self, name: str, mutation: ConsumableResourceMutation
    ) -> ConsumableResource | None:
        """Read-modify-write one resource in a transaction (UpdateConsumableResource).

        Returns the stored new version, or None if it does not exist. `in_use_quantity` is
        the store's: a mutation cannot change it.
        """
        ...

    # -- job definitions --------------------------------------------------------------------
    def add_job_definition(self, build: Callable[[int], JobDefinition]) -> JobDefinition:
        """Atomically allocate the next revision of a name and store build(revision).

        build is called with the new revision number; the name is build(...).name.
        """
        ...

    def put_job_definition(self, definition: JobDefinition) -> None:
        """Replace an existing revision (status, tags)."""
        ...

    def get_job_definition(self, name: str, revision: int) -> JobDefinition | None: ...
    def latest_job_definition(self, name: str, *, active_only: bool) -> JobDefinition | None: ...
    def list_job_definitions(self) -> list[JobDefinition]:
        """Every revision, ordered by (name, revision)."""
        ...


class JobStore(Protocol):
    """Jobs: insert, read, list, mutate, delete when finished; the share queries SubmitJob
    asks."""

    def insert_jobs(self, jobs: Sequence[Job]) -> list[Job]:
        """Store new jobs in one transaction and flag them for evaluation.

        Assigns seq and run_order in the given order; returns the stored jobs. Array children
        are counted in their parent's array_status_summary.
        """
        ...

    def get_job(self, job_id: str) -> Job | None: ...

    def get_jobs(self, job_ids: Iterable[str]) -> list[Job]:
        """Known jobs among job_ids, in the order given; unknown ids are left out."""
        ...

    def mutate_job(self, job_id: str, mutation: JobMutation) -> Job | None:
        """Read-modify-write one job in a transaction; flags it for evaluation.

        Returns the stored new version, the unchanged job if mutation returned None, or None
        if the job does not exist.
        """
        ...

    def mutate_jobs(self, mutations: Sequence[tuple[str, JobMutation]]) -> int:
        """mutate_job for each (job_id, mutation) in order, in one transaction.

        Mutations of the same job apply one after the other, each to the result of the one
        before. Unknown ids are skipped. Each job that changed is stored once (one new
        version) and flagged for evaluation; returns how many jobs changed.
        """
        ...

    def mutate_array_children(self, parent_id: str, mutation: JobMutation) -> int:
        """Apply mutation to every child of an array parent; returns how many changed."""
        ...

    def list_jobs_by_consumable_resource(self, query: ConsumableJobQuery) -> list[Job]:
        """Jobs whose consumable_resources name query.resource, newest first."""
        ...

    def list_jobs(self, query: JobQuery) -> list[Job]:
        """Top-level jobs of a queue newest first, or the children of a parent by index."""
        ...

    def delete_jobs_finished_before(self, cutoff_ms: int) -> list[Job]:
        """Remove terminal jobs that stopped before cutoff; returns what was removed."""
        ...

    def seen_share_count(self, job_queue: str) -> int:
        """How many share identifiers a queue has seen (each has a usage row)."""
        ...

    def active_share_identifiers(self, job_queue: str) -> set[str]:
        """The share identifiers of a queue's jobs not yet SUCCEEDED or FAILED (reads the
        queue's unfinished jobs: call it when seen_share_count says it matters)."""
        ...


class SchedulingStore(Protocol):
    """What the dispatcher reads and writes each round: the snapshot, the commit of a plan,
    the active jobs (restart recovery), and the quarantine of records it cannot use."""

    def snapshot(self, limits: SnapshotLimits = SnapshotLimits()) -> Snapshot:
        """The planner's view. A queue whose scheduling_policy_arn is set is a fair-share
        queue: its heads are read per share (runnable_by_share) and its shares' usage rows
        come along (share_usage); other queues' heads go to `runnable`."""
        ...

    def commit(self, plan: Plan) -> set[str]:
        """Apply a plan's updates whose versions still match, in one transaction.

        Returns the ids of the jobs whose update was applied. An update that would move a job
        into STARTING while a consumable resource it requires has less available than it
        takes is not applied (as if its version had changed). The accruals of applied jobs
        are added to their share's usage.
        """
        ...

    def active_jobs(self) -> list[Job]:
        """Every job in STARTING or RUNNING (for restart recovery)."""
        ...

    def quarantine_jobs(self, reasons: Mapping[str, str], now: int) -> list[str]:
        """Store each job of `reasons` (job id -> status reason) as FAILED at `now`, read or
        not: its record cannot be read (Snapshot.unreadable) or planned. It releases what it
        held of consumable resources, and its dependents and array parent are flagged as for
        any job that ends; a record that could not be read is kept in the job's document.
        Returns the ids stored (unknown ids, and jobs already stored so, are left out)."""
        ...


class Store(ResourceStore, JobStore, SchedulingStore, Protocol):
    """The whole protocol: the three parts, and change notification."""

    def close(self) -> None: ...

    def change_counter(self) -> int:
        """A number that grows on every job write (used to wake the dispatcher)."""
        ...

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call listener after every committed write (jobs or resources), outside any lock."""
        ...
