"""What the store contract tests do to a store and read back from it: clear evaluation flags,
mutate a job's status, place jobs as the planner would, count an array's children, and read
a consumable resource's (in use, total). Either store: AnyStore.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from batchyard.domain.model import (
    ALL_JOB_STATUSES,
    Attempt,
    ConsumableRequirement,
    Job,
    JobStatus,
)
from batchyard.scheduling.snapshot import Plan
from batchyard.store.base import ConsumableJobQuery, JobMutation, JobQuery, SnapshotLimits
from batchyard.store.memory import MemoryStore
from batchyard.store.sql import SqlStore
from tests.builders import FAIR_POLICY_ARN, a_complete_queue, a_complete_scheduling_policy

AnyStore = MemoryStore | SqlStore
S = JobStatus


def flagged_ids(store: AnyStore) -> list[str]:
    return [j.job_id for j in store.snapshot(SnapshotLimits(to_evaluate=100_000)).to_evaluate]


def evaluate_all(store: AnyStore) -> None:
    """Clear every evaluation flag, as a planner that decided nothing would."""
    snap = store.snapshot(SnapshotLimits(to_evaluate=100_000))
    store.commit(Plan(evaluated=tuple((j.job_id, j.version) for j in snap.to_evaluate)))


def set_status(status: JobStatus, **fields: Any) -> JobMutation:
    def mutation(current: Job) -> Job:
        return replace(current, status=status, **fields)

    return mutation


def summary(**counts: int) -> dict[str, int]:
    """An array_status_summary: every status, zero unless given."""
    return {status.value: counts.get(status.value, 0) for status in ALL_JOB_STATUSES}


def recount(store: AnyStore, parent_id: str) -> dict[str, int]:
    counts = dict.fromkeys((s.value for s in ALL_JOB_STATUSES), 0)
    after = None
    while True:
        page = store.list_jobs(JobQuery(array_job_id=parent_id, limit=7, after=after))
        if not page:
            return counts
        for child in page:
            counts[child.status.value] += 1
        after = page[-1].array_index


def needs(**quantities: int) -> tuple[ConsumableRequirement, ...]:
    return tuple(ConsumableRequirement(name, q) for name, q in quantities.items())


def placed(current: Job, at: int = 10) -> Job:
    """The planner's placement of a RUNNABLE job: STARTING with a new attempt."""
    attempt = Attempt(f"{current.job_id}-{len(current.attempts)}", "ce", placed_at=at)
    return replace(
        current,
        status=S.STARTING,
        attempts=(*current.attempts, attempt),
        compute_environment="ce",
    )


def place(store: AnyStore, *job_ids: str) -> set[str]:
    updates = []
    for job_id in job_ids:
        current = store.get_job(job_id)
        assert current is not None
        updates.append(placed(current))
    return store.commit(Plan(updates=tuple(updates), starts=job_ids))


def held(store: AnyStore, name: str) -> tuple[int, int]:
    """(in_use, total) of a resource."""
    found = store.get_consumable_resource(name)
    assert found is not None
    return found.in_use_quantity, found.total_quantity


def fair_queues(store: AnyStore) -> None:
    """Policy "fair", fair-share queue "fq" under it and FIFO queue "q1"."""
    store.put_scheduling_policy(a_complete_scheduling_policy("fair"), create=True)
    store.put_job_queue(a_complete_queue("fq", scheduling_policy_arn=FAIR_POLICY_ARN), create=True)
    store.put_job_queue(a_complete_queue("q1"), create=True)


def listed_by_resource(store: AnyStore, **query: Any) -> list[str]:
    """The ids ListJobs by consumable resource answers for `query`."""
    return [j.job_id for j in store.list_jobs_by_consumable_resource(ConsumableJobQuery(**query))]
