"""plan() placing RUNNABLE heads: capacity, queue priority, compute environment order, blocked
heads and jobStateTimeLimitActions, and the same plan for the same snapshot."""

from __future__ import annotations

from dataclasses import replace

import pytest

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    Attempt,
    ComputeEnvironment,
    ComputeEnvironmentOrder,
    JobQueue,
    JobStatus,
    Resources,
    ResourceState,
    ResourceStatus,
    RetryStrategy,
)
from batchyard.scheduling.planner import plan
from batchyard.scheduling.snapshot import Plan, Snapshot
from tests.builders import (
    NOW,
    a_compute_environment,
    a_job,
    a_queue,
    a_running_job,
    a_snapshot,
    a_time_limit,
    an_ended_job,
    needing,
)
from tests.unit.planner.plans import no_update_of, update_of

S = JobStatus


# -- 3. placement ------------------------------------------------------------------------------


def test_a_runnable_head_is_placed_with_a_new_attempt() -> None:
    job = a_job("job-1", status_reason="Essential container in task exited")
    result = plan(a_snapshot(runnable=[job]), NOW)
    placed = update_of(result, "job-1")
    task_id = lifecycle.new_task_id("job-1", 1)
    assert placed.status is S.STARTING
    assert placed.compute_environment == "ce-a"
    assert placed.status_reason is None
    assert placed.version == 5
    assert placed.attempts == (
        Attempt(
            task_id=task_id,
            compute_environment="ce-a",
            placed_at=NOW,
            log_stream_name=f"render/default/{task_id}",
        ),
    )
    assert result.starts == ("job-1",)


def test_a_runnable_job_evaluated_and_placed_in_one_round_yields_one_update() -> None:
    job = a_job("job-1")
    result = plan(a_snapshot(runnable=[job], to_evaluate=[job]), NOW)
    assert update_of(result, "job-1").status is S.STARTING
    assert result.evaluated == ()


def test_jobs_are_placed_in_run_order_until_capacity_runs_out() -> None:
    jobs = [a_job(f"job-{i}", resources=needing(vcpus=2)) for i in (3, 1, 2)]
    result = plan(a_snapshot(runnable=jobs), NOW)  # ce-a: 4 vCPUs
    assert result.starts == ("job-1", "job-2")


def test_a_retried_job_is_placed_before_older_jobs() -> None:
    older = a_job("job-1", resources=needing(vcpus=4))
    retried = a_job("job-9", run_order=-9, resources=needing(vcpus=4))
    assert plan(a_snapshot(runnable=[older, retried]), NOW).starts == ("job-9",)


def test_an_unmanaged_compute_environment_is_capped_by_its_unmanaged_vcpus() -> None:
    # docs/aws-behaviour.md#queues-and-compute-environments ("UNMANAGED: unmanagedvCpus").
    ce = replace(a_compute_environment(max_vcpus=None), type="UNMANAGED", unmanagedv_cpus=2)
    jobs = [a_job(f"job-{i}") for i in (1, 2, 3)]
    result = plan(a_snapshot(compute_environments=[ce], runnable=jobs), NOW)
    assert result.starts == ("job-1", "job-2")


def test_running_jobs_hold_their_capacity() -> None:
    running = a_running_job(resources=needing(vcpus=3))
    result = plan(
        a_snapshot(active=[running], runnable=[a_job("job-1", resources=needing(2))]), NOW
    )
    assert result.starts == ()


def test_an_attempt_that_ended_this_round_frees_its_capacity() -> None:
    ended = an_ended_job(0, resources=needing(vcpus=4))
    waiting = a_job("job-1", resources=needing(vcpus=4))
    result = plan(a_snapshot(active=[ended], to_evaluate=[ended], runnable=[waiting]), NOW)
    assert update_of(result, "run-1").status is S.SUCCEEDED
    assert result.starts == ("job-1",)


@pytest.mark.parametrize(
    ("need", "fits"),
    [
        (needing(memory_mib=4096), True),
        (needing(memory_mib=4097), False),
        (needing(gpus=1), True),
        (needing(gpus=2), False),
    ],
)
def test_memory_and_gpus_are_capped_by_the_host(need: Resources, fits: bool) -> None:
    running = a_running_job(resources=needing(memory_mib=4096, gpus=1))
    host = {"ce-a": Resources(vcpus=64, memory_mib=8192, gpus=2)}
    result = plan(
        a_snapshot(active=[running], runnable=[a_job("job-1", resources=need)], host_limits=host),
        NOW,
    )
    assert (result.starts == ("job-1",)) is fits


def test_without_max_vcpus_the_host_caps_vcpus() -> None:
    ce = a_compute_environment(max_vcpus=None)
    host = {"ce-a": Resources(vcpus=2, memory_mib=8192, gpus=0)}
    jobs = [a_job(f"job-{i}") for i in (1, 2, 3)]
    result = plan(a_snapshot(compute_environments=[ce], runnable=jobs, host_limits=host), NOW)
    assert result.starts == ("job-1", "job-2")


def test_without_any_cap_every_head_is_placed() -> None:
    ce = a_compute_environment(max_vcpus=None)
    jobs = [a_job(f"job-{i}", resources=needing(vcpus=64)) for i in (1, 2, 3)]
    result = plan(a_snapshot(compute_environments=[ce], runnable=jobs), NOW)
    assert result.starts == ("job-1", "job-2", "job-3")


def test_the_next_compute_environment_in_order_takes_what_the_first_cannot() -> None:
    small = a_compute_environment("ce-a", max_vcpus=2)
    large = a_compute_environment("ce-b", max_vcpus=8)
    queue = a_queue(compute_environments=("ce-a", "ce-b"))
    jobs = [a_job(f"job-{i}", resources=needing(vcpus=2)) for i in (1, 2, 3)]
    result = plan(
        a_snapshot(compute_environments=[large, small], job_queues=[queue], runnable=jobs), NOW
    )
    assert [update_of(result, j.job_id).compute_environment for j in jobs] == [
        "ce-a",
        "ce-b",
        "ce-b",
    ]


def test_compute_environment_order_follows_order_not_listing() -> None:
    queue = replace(
        a_queue(),
        compute_environment_order=(
            ComputeEnvironmentOrder(order=2, compute_environment="ce-a"),
            ComputeEnvironmentOrder(order=1, compute_environment="ce-b"),
        ),
    )
    ces = [a_compute_environment("ce-a"), a_compute_environment("ce-b")]
    result = plan(
        a_snapshot(compute_environments=ces, job_queues=[queue], runnable=[a_job("job-1")]), NOW
    )
    assert update_of(result, "job-1").compute_environment == "ce-b"


@pytest.mark.parametrize(
    "unusable",
    [
        a_compute_environment("ce-a", state=ResourceState.DISABLED),
        a_compute_environment("ce-a", status=ResourceStatus.INVALID),
        a_compute_environment("ce-a", status=ResourceStatus.UPDATING),
    ],
)
def test_a_disabled_or_invalid_compute_environment_gets_no_placement(
    unusable: ComputeEnvironment,
) -> None:
    fallback = a_compute_environment("ce-b")
    queue = a_queue(compute_environments=("ce-a", "ce-b"))
    result = plan(
        a_snapshot(
            compute_environments=[unusable, fallback], job_queues=[queue], runnable=[a_job()]
        ),
        NOW,
    )
    assert update_of(result, "job-1").compute_environment == "ce-b"


def test_a_disabled_queue_places_nothing() -> None:
    queue = a_queue(state=ResourceState.DISABLED)
    result = plan(a_snapshot(job_queues=[queue], runnable=[a_job()]), NOW)
    assert result.starts == ()
    assert result.updates == ()


def test_the_higher_priority_queue_gets_a_shared_compute_environment_first() -> None:
    low = a_queue("low", priority=1)
    high = a_queue("high", priority=10)
    jobs = [
        a_job("job-1", job_queue="low", resources=needing(vcpus=4)),
        a_job("job-2", job_queue="high", resources=needing(vcpus=4)),
    ]
    result = plan(a_snapshot(job_queues=[low, high], runnable=jobs), NOW)
    assert result.starts == ("job-2",)


def test_a_lower_priority_queue_uses_what_the_higher_one_leaves() -> None:
    low = a_queue("low", priority=1)
    high = a_queue("high", priority=10)
    jobs = [
        a_job("job-1", job_queue="low", resources=needing(vcpus=1)),
        a_job("job-2", job_queue="high", resources=needing(vcpus=3)),
        a_job("job-3", job_queue="high", resources=needing(vcpus=3)),
    ]
    result = plan(a_snapshot(job_queues=[low, high], runnable=jobs), NOW)
    assert result.starts == ("job-2", "job-1")


def test_equal_priorities_are_ordered_by_queue_name() -> None:
    queues = [a_queue("beta", priority=5), a_queue("alpha", priority=5)]
    jobs = [
        a_job("job-1", job_queue="beta", resources=needing(vcpus=4)),
        a_job("job-2", job_queue="alpha", resources=needing(vcpus=4)),
    ]
    assert plan(a_snapshot(job_queues=queues, runnable=jobs), NOW).starts == ("job-2",)


def test_a_head_that_does_not_fit_now_blocks_the_jobs_behind_it() -> None:
    running = a_running_job(resources=needing(vcpus=2))
    head = a_job("job-1", resources=needing(vcpus=4))
    small = a_job("job-2", resources=needing(vcpus=1))
    other_queue = a_queue("other", priority=1)
    other = a_job("job-3", job_queue="other", resources=needing(vcpus=1))
    result = plan(
        a_snapshot(
            job_queues=[a_queue(), other_queue], active=[running], runnable=[head, small, other]
        ),
        NOW,
    )
    assert result.starts == ("job-3",)
    assert no_update_of(result, "job-1")  # waiting for capacity is not a blocked reason


# -- 3. blocked heads and jobStateTimeLimitActions ---------------------------------------------


def test_a_head_needing_more_vcpus_than_any_compute_environment_is_blocked() -> None:
    head = a_job("job-1", resources=needing(vcpus=16))
    result = plan(a_snapshot(runnable=[head, a_job("job-2")]), NOW)
    blocked = update_of(result, "job-1")
    assert blocked.status is S.RUNNABLE
    assert blocked.status_reason == lifecycle.COMPUTE_ENVIRONMENT_MAX_RESOURCE
    assert blocked.blocked_since == NOW
    assert result.starts == ()  # head-of-line
    assert result.next_wakeup is None  # no time-limit action on this queue


def test_a_head_needing_more_memory_than_any_host_is_blocked() -> None:
    head = a_job("job-1", resources=needing(memory_mib=1_000_000))
    host = {"ce-a": Resources(vcpus=8, memory_mib=8192, gpus=0)}
    blocked = update_of(plan(a_snapshot(runnable=[head], host_limits=host), NOW), "job-1")
    assert blocked.status_reason == lifecycle.JOB_RESOURCE_REQUIREMENT


def test_a_head_needing_gpus_no_host_has_is_blocked() -> None:
    head = a_job("job-1", resources=needing(gpus=1))
    host = {"ce-a": Resources(vcpus=8, memory_mib=8192, gpus=0)}
    blocked = update_of(plan(a_snapshot(runnable=[head], host_limits=host), NOW), "job-1")
    assert blocked.status_reason == lifecycle.JOB_RESOURCE_REQUIREMENT


def test_a_head_too_big_in_different_ways_for_each_compute_environment_is_blocked() -> None:
    ces = [a_compute_environment("ce-a", max_vcpus=2), a_compute_environment("ce-b", max_vcpus=8)]
    host = {"ce-b": Resources(vcpus=8, memory_mib=2048, gpus=0)}
    queue = a_queue(compute_environments=("ce-a", "ce-b"))
    head = a_job("job-1", resources=needing(vcpus=4, memory_mib=4096))
    result = plan(
        a_snapshot(compute_environments=ces, job_queues=[queue], runnable=[head], host_limits=host),
        NOW,
    )
    assert update_of(result, "job-1").status_reason == lifecycle.JOB_RESOURCE_REQUIREMENT


def test_a_queue_whose_compute_environments_are_all_invalid_blocks_its_head() -> None:
    ce = a_compute_environment(status=ResourceStatus.INVALID)
    blocked = update_of(
        plan(a_snapshot(compute_environments=[ce], runnable=[a_job()]), NOW), "job-1"
    )
    assert (
        blocked.status_reason
        == "ACTION_REQUIRED - CE(s) associated with the job queue are invalid."
    )


def test_a_disabled_compute_environment_is_waited_for_without_a_reason() -> None:
    ce = a_compute_environment(state=ResourceState.DISABLED)
    result = plan(a_snapshot(compute_environments=[ce], runnable=[a_job()]), NOW)
    assert result.updates == ()


def test_a_head_already_blocked_for_the_same_reason_is_not_rewritten() -> None:
    head = a_job(
        "job-1",
        resources=needing(vcpus=16),
        status_reason=lifecycle.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
        blocked_since=NOW - 5_000,
    )
    assert plan(a_snapshot(runnable=[head]), NOW).is_empty


def test_a_blocked_reason_is_cleared_once_the_head_only_waits_for_capacity() -> None:
    running = a_running_job(resources=needing(vcpus=4))
    head = a_job(
        "job-1",
        status_reason=lifecycle.CE_INVALID,
        blocked_since=NOW - 5_000,
    )
    result = plan(a_snapshot(active=[running], runnable=[head]), NOW)
    cleared = update_of(result, "job-1")
    assert (cleared.status, cleared.status_reason, cleared.blocked_since) == (
        S.RUNNABLE,
        None,
        None,
    )


def max_resource_queue(max_time_seconds: int = 600) -> JobQueue:
    return a_queue(
        time_limits=[
            a_time_limit("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", 60),  # another reason
            a_time_limit("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE", max_time_seconds),
        ]
    )


def test_a_blocked_head_is_cancelled_by_the_time_limit_action_then_the_next_job_runs() -> None:
    head = a_job(
        "job-1",
        resources=needing(vcpus=16),
        status_reason=lifecycle.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
        blocked_since=NOW - 600_000,
    )
    result = plan(
        a_snapshot(job_queues=[max_resource_queue()], runnable=[head, a_job("job-2")]), NOW
    )
    cancelled = update_of(result, "job-1")
    assert cancelled.status is S.FAILED
    assert cancelled.status_reason == (
        "Canceled by JobStateTimeLimit action due to reason: "
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
    )
    assert cancelled.is_cancelled
    assert cancelled.stopped_at == NOW
    assert result.starts == ("job-2",)


def test_a_blocked_head_before_its_time_limit_sets_the_next_wakeup() -> None:
    head = a_job(
        "job-1",
        resources=needing(vcpus=16),
        status_reason=lifecycle.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
        blocked_since=NOW - 599_999,
    )
    result = plan(
        a_snapshot(job_queues=[max_resource_queue()], runnable=[head, a_job("job-2")]), NOW
    )
    assert result.updates == ()
    assert result.starts == ()
    assert result.next_wakeup == NOW + 1


def test_a_newly_blocked_head_starts_its_time_limit_now() -> None:
    head = a_job("job-1", resources=needing(vcpus=16))
    result = plan(a_snapshot(job_queues=[max_resource_queue(900)], runnable=[head]), NOW)
    assert update_of(result, "job-1").blocked_since == NOW
    assert result.next_wakeup == NOW + 900_000


def test_a_time_limit_for_another_reason_does_not_cancel() -> None:
    queue = a_queue(time_limits=[a_time_limit("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT", 600)])
    head = a_job(
        "job-1",
        resources=needing(vcpus=16),
        status_reason=lifecycle.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
        blocked_since=0,
    )
    result = plan(a_snapshot(job_queues=[queue], runnable=[head]), NOW)
    assert result.updates == ()
    assert result.next_wakeup is None


def test_a_change_of_blocked_reason_restarts_the_time_limit() -> None:
    head = a_job(
        "job-1",
        resources=needing(vcpus=16),
        status_reason=lifecycle.JOB_RESOURCE_REQUIREMENT,
        blocked_since=0,
    )
    result = plan(a_snapshot(job_queues=[max_resource_queue()], runnable=[head]), NOW)
    blocked = update_of(result, "job-1")
    assert blocked.status is S.RUNNABLE
    assert (blocked.status_reason, blocked.blocked_since) == (
        lifecycle.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
        NOW,
    )


# -- determinism -------------------------------------------------------------------------------


def a_busy_snapshot() -> Snapshot:
    ces = [a_compute_environment("ce-a", max_vcpus=4), a_compute_environment("ce-b", max_vcpus=2)]
    queues = [
        a_queue("high", priority=10, compute_environments=("ce-a", "ce-b")),
        a_queue("low", priority=1, compute_environments=("ce-b",)),
    ]
    runnable = [
        a_job("job-1", job_queue="high", resources=needing(vcpus=3)),
        a_job("job-2", job_queue="high", resources=needing(vcpus=2)),
        a_job("job-3", job_queue="low", resources=needing(vcpus=1)),
    ]
    running = a_running_job("run-9", timeout_seconds=60, resources=needing(vcpus=1))
    ended = an_ended_job(1, retry_strategy=RetryStrategy(attempts=3))
    submitted = a_job("job-5", S.SUBMITTED, wait_for=("run-9",))
    return a_snapshot(
        compute_environments=ces,
        job_queues=queues,
        runnable=runnable,
        active=[running, ended],
        to_evaluate=[submitted, ended],
        dependency_status={"run-9": S.RUNNING},
    )


def test_the_same_snapshot_and_time_give_the_same_plan() -> None:
    first = plan(a_busy_snapshot(), 40_000)
    assert first == plan(a_busy_snapshot(), 40_000)
    # run-1's retry frees ce-a; job-2 falls back to ce-b, which leaves the low queue nothing.
    assert first.starts == ("job-1", "job-2")
    assert {job.job_id: (job.status, job.compute_environment) for job in first.updates} == {
        "job-5": (S.PENDING, None),
        "run-1": (S.RUNNABLE, None),
        "job-1": (S.STARTING, "ce-a"),
        "job-2": (S.STARTING, "ce-b"),
    }
    assert first.next_wakeup == 71_000


def test_an_empty_snapshot_gives_an_empty_plan() -> None:
    result = plan(a_snapshot(), NOW)
    assert result == Plan()
    assert result.is_empty
