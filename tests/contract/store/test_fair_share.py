"""The store contract for fair share: share usage rows, accruals, and RUNNABLE heads per
share. For MemoryStore and SqlStore alike."""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any

import pytest

from batchyard.domain.model import (
    Job,
    JobStatus,
    ShareUsage,
)
from batchyard.scheduling import fairshare
from batchyard.scheduling.snapshot import Plan, UsageAccrual
from batchyard.store.base import SnapshotLimits
from tests.builders import (
    FAIR_POLICY_ARN,
    a_complete_consumable_resource,
    a_complete_queue,
    a_submitted_job,
)
from tests.contract.store.steps import (
    AnyStore,
    fair_queues,
    needs,
    placed,
    set_status,
)

S = JobStatus


# -- fair share: share usage rows and accruals -----------------------------------------------------


def test_share_rows_are_created_at_insert(store: AnyStore) -> None:
    fair_queues(store)
    store.insert_jobs(
        [
            a_submitted_job("a", job_queue="fq", share_identifier="blue", created_at=100),
            a_submitted_job("b", job_queue="fq", share_identifier="blue", created_at=50),
            a_submitted_job("c", job_queue="fq", share_identifier="red", created_at=300),
            a_submitted_job("other", job_queue="fq2", share_identifier="blue", created_at=400),
            a_submitted_job("fifo", created_at=500),
        ]
    )
    store.insert_jobs(
        [a_submitted_job("d", job_queue="fq", share_identifier="red", created_at=900)]
    )
    snap = store.snapshot()
    assert snap.share_usage == {
        "fq": {
            "blue": ShareUsage("fq", "blue", 0.0, 100),
            "red": ShareUsage("fq", "red", 0.0, 300),
        }
    }
    assert "q1" not in snap.share_usage


def test_share_identifiers_seen_and_active(store: AnyStore) -> None:
    fair_queues(store)
    store.insert_jobs(
        [
            a_submitted_job("a", job_queue="fq", share_identifier="blue"),
            a_submitted_job("b", job_queue="fq", share_identifier="red", status=JobStatus.RUNNING),
            a_submitted_job(
                "c", job_queue="fq", share_identifier="green", status=JobStatus.SUCCEEDED
            ),
            a_submitted_job("d", job_queue="fq2", share_identifier="gold"),
            a_submitted_job("fifo"),
        ]
    )
    assert store.seen_share_count("fq") == 3
    assert store.active_share_identifiers("fq") == {"blue", "red"}
    store.mutate_job("a", lambda j: replace(j, status=JobStatus.FAILED, stopped_at=5))
    assert store.active_share_identifiers("fq") == {"red"}
    assert store.seen_share_count("fq") == 3
    assert store.active_share_identifiers("fq2") == {"gold"}
    assert store.seen_share_count("q1") == 0


def test_accruals_apply_only_with_their_jobs_update(store: AnyStore) -> None:
    fair_queues(store)
    a, b = store.insert_jobs(
        [
            a_submitted_job(
                "a", job_queue="fq", share_identifier="blue", status=S.RUNNING, created_at=0
            ),
            a_submitted_job(
                "b", job_queue="fq", share_identifier="blue", status=S.RUNNING, created_at=0
            ),
        ]
    )
    store.mutate_job("b", lambda j: replace(j, status_reason="moved on"))  # b's read is stale
    window = 60_000
    plan = Plan(
        updates=(
            replace(a, status=S.SUCCEEDED, stopped_at=1_000),
            replace(b, status=S.SUCCEEDED, stopped_at=1_000),
        ),
        accruals=(
            UsageAccrual("a", "fq", "blue", 2.0, 1_000, window),
            UsageAccrual("b", "fq", "blue", 5.0, 1_000, window),
            UsageAccrual("a", "fq", "green", 0.5, 1_000, window),  # a share with no row yet
        ),
    )
    assert store.commit(plan) == {"a"}
    usage = store.snapshot().share_usage["fq"]
    assert usage["blue"] == ShareUsage("fq", "blue", 2.0, 1_000)
    assert usage["green"] == ShareUsage("fq", "green", 0.5, 1_000)

    later = store.get_job("b")
    assert later is not None
    plan = Plan(
        updates=(replace(later, status=S.SUCCEEDED, stopped_at=61_000),),
        accruals=(UsageAccrual("b", "fq", "blue", 1.0, 61_000, window),),
    )
    assert store.commit(plan) == {"b"}
    blue = store.snapshot().share_usage["fq"]["blue"]
    assert blue.at == 61_000
    assert blue.value == pytest.approx(2.0 / math.e + 1.0)
    assert blue.value == fairshare.decayed(2.0, 1_000, 61_000, window) + 1.0


def test_accrual_of_a_refused_placement_is_not_applied(store: AnyStore) -> None:
    fair_queues(store)
    store.put_consumable_resource(a_complete_consumable_resource("lic", 0), create=True)
    store.insert_jobs(
        [
            a_submitted_job(
                "a", job_queue="fq", share_identifier="blue", status=S.RUNNABLE, created_at=0
            )
        ]
    )
    store.mutate_job("a", lambda j: replace(j, consumable_resources=needs(lic=1)))
    current = store.get_job("a")
    assert current is not None
    plan = Plan(
        updates=(placed(current),),
        accruals=(UsageAccrual("a", "fq", "blue", 3.0, 5, 1_000),),
    )
    assert store.commit(plan) == set()
    assert store.snapshot().share_usage["fq"]["blue"] == ShareUsage("fq", "blue", 0.0, 0)


# -- fair share: heads per share -------------------------------------------------------------------


def test_runnable_by_share_order_and_bounds(store: AnyStore) -> None:
    fair_queues(store)
    store.put_job_queue(
        a_complete_queue("empty-fq", scheduling_policy_arn=FAIR_POLICY_ARN), create=True
    )

    def fair(job_id: str, share: str, priority: int | None = None, **fields: Any) -> Job:
        return a_submitted_job(
            job_id,
            job_queue="fq",
            share_identifier=share,
            scheduling_priority=priority,
            status=fields.pop("status", S.RUNNABLE),
            **fields,
        )

    store.insert_jobs(
        [
            fair("b1", "blue"),
            fair("b2", "blue", 5),
            fair("b3", "blue", 0),
            fair("b4", "blue", 5),
            fair("b5", "blue", 9),
            fair("r1", "red", 1),
            fair("r2", "red", status=S.PENDING),
            fair("g1", "green", status=S.RUNNING),  # a share with no RUNNABLE job
            a_submitted_job("f1", status=S.RUNNABLE),
        ]
    )
    # A retry jumps ahead within its priority.
    store.mutate_job("b4", lambda j: replace(j, run_order=0))
    snap = store.snapshot(SnapshotLimits(runnable_per_queue=4))
    heads = {
        queue: {share: [j.job_id for j in jobs] for share, jobs in shares.items()}
        for queue, shares in snap.runnable_by_share.items()
    }
    assert heads == {
        "fq": {"blue": ["b5", "b4", "b2", "b1"], "red": ["r1"]},
        "empty-fq": {},
    }
    assert set(snap.runnable) == {"q1"}  # fair-share queues have no FIFO heads
    assert [j.job_id for j in snap.runnable["q1"]] == ["f1"]
    assert set(snap.share_usage["fq"]) == {"blue", "red", "green"}
    assert snap.share_usage["empty-fq"] == {}

    # A priority change and a status change move a job within and out of its share's heads.
    store.mutate_job("b1", lambda j: replace(j, scheduling_priority=10))
    store.mutate_job("b5", set_status(S.FAILED, stopped_at=1))
    store.mutate_job("r2", set_status(S.RUNNABLE))
    snap = store.snapshot(SnapshotLimits(runnable_per_queue=3))
    assert {s: [j.job_id for j in jobs] for s, jobs in snap.runnable_by_share["fq"].items()} == {
        "blue": ["b1", "b4", "b2"],
        "red": ["r1", "r2"],
    }
    assert snap.runnable_by_share["fq"]["blue"][0] == store.get_job("b1")
