"""Reading and making plans in planner tests: the one update of a job, a plan of jobs to
evaluate, and a snapshot cut to fewer RUNNABLE heads (as the store reads them).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from batchyard.domain.model import (
    Job,
)
from batchyard.scheduling.ordering import fifo_order
from batchyard.scheduling.planner import heads_taken, plan
from batchyard.scheduling.snapshot import Plan, Snapshot
from tests.builders import (
    NOW,
    a_snapshot,
)

WINDOW = 600_000  # shareDecaySeconds absent: AWS's 600 s default


def update_of(result: Plan, job_id: str) -> Job:
    matches = [job for job in result.updates if job.job_id == job_id]
    assert len(matches) == 1, f"expected exactly one update of {job_id}, got {len(matches)}"
    return matches[0]


def no_update_of(result: Plan, job_id: str) -> bool:
    return all(job.job_id != job_id for job in result.updates)


def evaluate(*jobs: Job, **snapshot: Any) -> Plan:
    return plan(a_snapshot(to_evaluate=jobs, **snapshot), NOW)


def cut(snapshot: Snapshot, limit: int | Mapping[str, int]) -> Snapshot:
    """The snapshot a store gives reading `limit` heads of each queue (or of each queue the
    mapping names; the others whole): the first heads in run order."""
    return replace(
        snapshot,
        runnable={
            name: fifo_order(heads)[: limit if isinstance(limit, int) else limit.get(name)]
            for name, heads in snapshot.runnable.items()
        },
    )


def cut_short(snapshot: Snapshot, decided: Plan, limit: int | Mapping[str, int]) -> bool:
    """Whether heads_taken says some queue's read was cut short."""

    def read(queue: str) -> int:
        return limit if isinstance(limit, int) else limit.get(queue, 1 << 30)

    return any(short for _, short in heads_taken(snapshot, decided, read).values())
