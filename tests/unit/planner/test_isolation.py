"""plan_isolating: a plan that raises is made again without the jobs (or, failing that, the
queues) that make it raise; a plan that does not raise is returned as it is."""

from __future__ import annotations

from dataclasses import replace

import pytest

from batchyard.domain.model import ComputeEnvironmentOrder, JobStatus, Resources
from batchyard.scheduling.isolation import plan_isolating
from batchyard.scheduling.planner import plan
from tests.builders import (
    NOW,
    a_compute_environment,
    a_fair_snapshot,
    a_job,
    a_queue,
    a_share_job,
    a_snapshot,
    needing,
)

S = JobStatus
NO_VCPUS = Resources(vcpus=None, memory_mib=1024)  # type: ignore[arg-type]


def test_a_plan_that_does_not_raise_is_returned_as_it_is() -> None:
    snapshot = a_snapshot(runnable=[a_job("j1"), a_job("j2")])
    isolated = plan_isolating(snapshot, NOW)
    assert isolated.plan == plan(snapshot, NOW)
    assert isolated.snapshot is snapshot
    assert (isolated.jobs, isolated.queues) == ({}, {})


def test_a_job_the_planner_raises_on_is_left_out_and_the_others_placed() -> None:
    snapshot = a_snapshot(
        runnable=[a_job("j1"), a_job("j2", resources=NO_VCPUS), a_job("j3")],
    )
    with pytest.raises(TypeError):
        plan(snapshot, NOW)
    isolated = plan_isolating(snapshot, NOW)
    assert list(isolated.jobs) == ["j2"]
    assert isinstance(isolated.jobs["j2"], TypeError)
    assert isolated.queues == {}
    assert sorted(isolated.plan.starts) == ["j1", "j3"]


def test_a_queue_the_planner_raises_on_waits_and_the_other_queues_are_planned() -> None:
    # An order that is no number: sorting the queue's compute environments raises, whatever
    # its jobs; no job is to blame.
    broken = replace(
        a_queue("broken", priority=20),
        compute_environment_order=(
            ComputeEnvironmentOrder(order=None, compute_environment="ce-a"),  # type: ignore[arg-type]
            ComputeEnvironmentOrder(order=1, compute_environment="ce-a"),
        ),
    )
    snapshot = a_snapshot(
        compute_environments=[a_compute_environment(max_vcpus=8)],
        job_queues=[broken, a_queue("high")],
        runnable=[a_job("b1", job_queue="broken"), a_job("h1"), a_job("h2")],
    )
    isolated = plan_isolating(snapshot, NOW)
    assert isolated.jobs == {}
    assert list(isolated.queues) == ["broken"]
    assert sorted(isolated.plan.starts) == ["h1", "h2"]


def test_several_jobs_of_one_queue_all_raising_blame_the_queue() -> None:
    # Each head of "wide" raises alone, none of its heads plans: not a bad job, a bad queue
    # (here a vCPU cap of text on its only compute environment); "high" is planned.
    snapshot = a_snapshot(
        compute_environments=[
            a_compute_environment("ce-a", max_vcpus=8),
            replace(a_compute_environment("ce-w"), compute_resources={"maxvCpus": "many"}),
        ],
        job_queues=[a_queue("high"), a_queue("wide", priority=5, compute_environments=["ce-w"])],
        runnable=[
            a_job("w1", job_queue="wide"),
            a_job("w2", job_queue="wide"),
            a_job("h1", resources=needing(2)),
        ],
    )
    with pytest.raises(ValueError, match="many"):
        plan(snapshot, NOW)
    isolated = plan_isolating(snapshot, NOW)
    assert isolated.jobs == {}
    assert list(isolated.queues) == ["wide"]
    assert list(isolated.plan.starts) == ["h1"]


def test_a_bad_job_and_a_bad_queue_are_both_left_out() -> None:
    # j2 raises alone; each head of "wide" raises alone too, which blames the queue, not them.
    # Without j2 the plan still raises (wide), so the queues are planned one by one as well.
    snapshot = a_snapshot(
        compute_environments=[
            a_compute_environment("ce-a", max_vcpus=8),
            replace(a_compute_environment("ce-w"), compute_resources={"maxvCpus": "many"}),
        ],
        job_queues=[a_queue("high"), a_queue("wide", priority=5, compute_environments=["ce-w"])],
        runnable=[
            a_job("j1"),
            a_job("j2", resources=NO_VCPUS),
            a_job("w1", job_queue="wide"),
            a_job("w2", job_queue="wide"),
        ],
    )
    isolated = plan_isolating(snapshot, NOW)
    assert list(isolated.jobs) == ["j2"]
    assert list(isolated.queues) == ["wide"]
    assert list(isolated.plan.starts) == ["j1"]


def test_a_bad_job_of_a_fair_share_queue_is_left_out() -> None:
    a1, a2 = a_share_job("A"), a_share_job("A", vcpus=None)  # type: ignore[arg-type]
    b1 = a_share_job("B")
    isolated = plan_isolating(a_fair_snapshot([a1, a2, b1]), NOW)
    assert list(isolated.jobs) == [a2.job_id]
    assert sorted(isolated.plan.starts) == sorted([a1.job_id, b1.job_id])


def test_trouble_in_no_one_job_or_queue_is_raised() -> None:
    # Priorities that cannot be ordered against each other: each queue plans alone, the two
    # together never do, whatever their jobs.
    snapshot = a_snapshot(
        job_queues=[a_queue("high"), a_queue("odd", priority=1j)],  # type: ignore[arg-type]
        runnable=[a_job("h1"), a_job("o1", job_queue="odd")],
    )
    with pytest.raises(TypeError):
        plan_isolating(snapshot, NOW)
