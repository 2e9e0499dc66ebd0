"""Both stores give the same per-share heads and the same answers after any sequence of fair-share
writes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchyard.domain.model import (
    Job,
    JobStatus,
)
from batchyard.scheduling.snapshot import Plan, Snapshot, UsageAccrual
from batchyard.store.base import JobMutation, SnapshotLimits
from batchyard.store.memory import MemoryStore
from batchyard.store.sql import SqlStore
from tests.builders import (
    FAIR_POLICY_ARN,
    a_complete_consumable_resource,
    a_complete_queue,
    a_complete_scheduling_policy,
    a_submitted_job,
)
from tests.contract.store.steps import (
    fair_queues,
    needs,
    place,
    set_status,
)

S = JobStatus
_example = iter(range(1_000_000))


# -- both stores agree -----------------------------------------------------------------------------


def test_memory_and_sql_snapshots_agree(tmp_path: Path) -> None:
    memory, sql = MemoryStore(), SqlStore(f"sqlite:///{tmp_path / 'pair.db'}")
    try:
        for store in (memory, sql):
            fair_queues(store)
            store.put_consumable_resource(a_complete_consumable_resource("lic", 3), create=True)
            store.insert_jobs(
                [
                    a_submitted_job(
                        f"j{i}",
                        job_queue="fq",
                        share_identifier=f"s{i % 3}",
                        status=S.RUNNABLE,
                        scheduling_priority=i % 2 or None,
                        consumable_resources=needs(lic=1),
                        created_at=i,
                    )
                    for i in range(12)
                ]
            )
            place(store, "j0", "j1", "j2", "j3")
            store.mutate_job("j1", set_status(S.SUCCEEDED, stopped_at=40))
            j2 = store.get_job("j2")
            assert j2 is not None
            store.commit(
                Plan(
                    updates=(replace(j2, status=S.FAILED, stopped_at=50),),
                    accruals=(UsageAccrual("j2", "fq", "s2", 0.25, 50, 600_000),),
                )
            )
        assert memory.snapshot() == sql.snapshot()
        assert memory.list_consumable_resources() == sql.list_consumable_resources()
    finally:
        sql.close()


# Share names whose order differs between case, length and code point (SQL and Python must agree).
_SHARES = ("a", "B", "b", "a b", "ab", "10", "9", "\u00e9", "z" * 40)
_PRIORITIES = (None, 0, 1, 5, 9999)
_STATUSES = (S.RUNNABLE, S.RUNNABLE, S.RUNNABLE, S.PENDING, S.RUNNING, S.SUCCEEDED)
# A fair-share job: (queue 0/1, share among the example's, scheduling_priority, status).
_fair_job = st.tuples(
    st.integers(0, 1),
    st.integers(0, len(_SHARES) - 1),
    st.sampled_from(_PRIORITIES),
    st.sampled_from(_STATUSES),
)
# A later change of job i: its priority, a retry's run order (ahead of others), or its status.
_change = st.one_of(
    st.tuples(st.just("scheduling_priority"), st.integers(0), st.sampled_from(_PRIORITIES)),
    st.tuples(st.just("run_order"), st.integers(0), st.integers(0, 150)),
    st.tuples(st.just("status"), st.integers(0), st.sampled_from(_STATUSES)),
)


def _expected_heads(jobs: list[Job], queue: str, limit: int) -> list[tuple[str, list[str]]]:
    """The documented heads: per share seen, in share order, its first RUNNABLE jobs by
    schedulingPriority descending (absent = 0), then run order."""
    shares = sorted({j.share_identifier or "" for j in jobs if j.job_queue == queue})
    heads = []
    for share in shares:
        runnable = sorted(
            (
                j
                for j in jobs
                if j.job_queue == queue and j.share_identifier == share and j.status is S.RUNNABLE
            ),
            key=lambda j: (-(j.scheduling_priority or 0), j.run_order, j.seq),
        )
        if runnable:  # even when none is to be read (limit 0)
            heads.append((share, [j.job_id for j in runnable[:limit]]))
    return heads


def _heads(snap: Snapshot) -> dict[str, list[tuple[str, list[str]]]]:
    """runnable_by_share with its order made visible (dict equality ignores order)."""
    return {
        queue: [(share, [j.job_id for j in jobs]) for share, jobs in shares.items()]
        for queue, shares in snap.runnable_by_share.items()
    }


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shares=st.lists(st.sampled_from(_SHARES), min_size=1, max_size=len(_SHARES), unique=True),
    jobs=st.lists(_fair_job, min_size=20, max_size=120),
    batches=st.integers(1, 3),
    changes=st.lists(_change, max_size=40),
    per_queue=st.integers(1, 5),
    read=st.dictionaries(st.sampled_from(["fa", "fb", "fifo"]), st.integers(0, 5), max_size=3),
)
def test_runnable_by_share_is_the_same_in_both_stores(
    tmp_path: Path,
    shares: list[str],
    jobs: list[tuple[int, int, int | None, JobStatus]],
    batches: int,
    changes: list[tuple[str, int, Any]],
    per_queue: int,
    read: dict[str, int],
) -> None:
    memory = MemoryStore()
    sql = SqlStore(f"sqlite:///{tmp_path / f'heads{next(_example)}.db'}")
    try:
        submitted = [
            a_submitted_job(
                f"j{i}",
                job_queue=("fa", "fb")[queue],
                share_identifier=shares[share % len(shares)],
                scheduling_priority=priority,
                status=status,
            )
            for i, (queue, share, priority, status) in enumerate(jobs)
        ]
        for store in (memory, sql):
            store.put_scheduling_policy(a_complete_scheduling_policy("fair"), create=True)
            for name in ("fa", "fb", "idle"):
                store.put_job_queue(
                    a_complete_queue(name, scheduling_policy_arn=FAIR_POLICY_ARN), create=True
                )
            store.put_job_queue(a_complete_queue("fifo"), create=True)
            size = -(-len(submitted) // batches) or 1
            for start in range(0, len(submitted), size):
                store.insert_jobs(submitted[start : start + size])
            store.insert_jobs([a_submitted_job("f0", job_queue="fifo", status=S.RUNNABLE)])
            for field, index, value in changes:
                store.mutate_job(f"j{index % len(submitted)}", _set_field(field, value))
        limits = SnapshotLimits(runnable_per_queue=per_queue, runnable_read=read)
        from_memory, from_sql = memory.snapshot(limits), sql.snapshot(limits)
        assert _heads(from_sql) == _heads(from_memory)
        assert from_sql.runnable_by_share == from_memory.runnable_by_share  # the same jobs
        assert from_sql.share_usage == from_memory.share_usage
        stored = sql.get_jobs([f"j{i}" for i in range(len(submitted))])
        assert _heads(from_sql) == {
            queue: _expected_heads(stored, queue, limits.heads_of(queue))
            for queue in ("fa", "fb", "idle")
        }
    finally:
        sql.close()


def _set_field(name: str, value: Any) -> JobMutation:
    def mutation(current: Job) -> Job:
        return replace(current, **{name: value})

    return mutation
