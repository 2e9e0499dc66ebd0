"""plan(snapshot, now): each scheduling rule on small snapshots built from domain-named fixtures."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import pytest

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    Attempt,
    ComputeEnvironment,
    ComputeEnvironmentOrder,
    Dependency,
    EvaluateOnExit,
    Job,
    JobQueue,
    JobStateTimeLimitAction,
    JobStatus,
    Resources,
    ResourceState,
    ResourceStatus,
    RetryStrategy,
    StopCause,
)
from batchyard.scheduling.planner import plan
from batchyard.scheduling.snapshot import Plan, Snapshot

S = JobStatus
NOW = 1_000_000
ARN = "arn:aws:batch:us-east-1:000000000000"


# -- fixtures ----------------------------------------------------------------------------------


def a_compute_environment(
    name: str = "ce-a",
    *,
    max_vcpus: int | None = 4,
    state: ResourceState = ResourceState.ENABLED,
    status: ResourceStatus = ResourceStatus.VALID,
) -> ComputeEnvironment:
    return ComputeEnvironment(
        name=name,
        arn=f"{ARN}:compute-environment/{name}",
        type="MANAGED",
        state=state,
        status=status,
        status_reason="",
        runtime="process",
        compute_resources=None if max_vcpus is None else {"maxvCpus": max_vcpus},
    )


def a_time_limit(reason: str, max_time_seconds: int = 600) -> JobStateTimeLimitAction:
    return JobStateTimeLimitAction(
        reason=reason, state="RUNNABLE", max_time_seconds=max_time_seconds, action="CANCEL"
    )


def a_queue(
    name: str = "high",
    *,
    priority: int = 10,
    compute_environments: Iterable[str] = ("ce-a",),
    state: ResourceState = ResourceState.ENABLED,
    time_limits: Iterable[JobStateTimeLimitAction] = (),
) -> JobQueue:
    return JobQueue(
        name=name,
        arn=f"{ARN}:job-queue/{name}",
        state=state,
        status=ResourceStatus.VALID,
        status_reason="",
        priority=priority,
        compute_environment_order=tuple(
            ComputeEnvironmentOrder(order=i + 1, compute_environment=ce)
            for i, ce in enumerate(compute_environments)
        ),
        job_state_time_limit_actions=tuple(time_limits),
    )


def a_job(job_id: str = "job-1", status: JobStatus = S.RUNNABLE, **fields: Any) -> Job:
    seq = fields.pop("seq", int("".join(c for c in job_id if c.isdigit()) or "1"))
    defaults: dict[str, Any] = {
        "job_id": job_id,
        "job_name": f"name-{job_id}",
        "job_queue": "high",
        "job_definition_arn": f"{ARN}:job-definition/render:1",
        "job_definition_name": "render",
        "status": status,
        "created_at": 1_000,
        "seq": seq,
        "run_order": seq,
        "resources": Resources(vcpus=1, memory_mib=1024, gpus=0),
        "version": 5,
    }
    defaults.update(fields)
    return Job(**defaults)


def needing(vcpus: float = 1, memory_mib: int = 1024, gpus: int = 0) -> Resources:
    return Resources(vcpus=vcpus, memory_mib=memory_mib, gpus=gpus)


def an_attempt(**fields: Any) -> Attempt:
    defaults: dict[str, Any] = {
        "task_id": "task-1",
        "compute_environment": "ce-a",
        "placed_at": 10_000,
        "started_at": 11_000,
    }
    defaults.update(fields)
    return Attempt(**defaults)


def a_running_job(job_id: str = "run-1", **fields: Any) -> Job:
    defaults: dict[str, Any] = {
        "compute_environment": "ce-a",
        "attempts": (an_attempt(),),
        "started_at": 11_000,
    }
    defaults.update(fields)
    status = defaults.pop("status", S.RUNNING)
    return a_job(job_id, status, **defaults)


def an_ended_job(
    exit_code: int | None,
    *,
    status_reason: str = lifecycle.ESSENTIAL_CONTAINER_EXITED,
    reason: str | None = None,
    previous: Iterable[Attempt] = (),
    **fields: Any,
) -> Job:
    ended = an_attempt(
        task_id=f"task-{len(tuple(previous)) + 1}",
        stopped_at=50_000,
        exit_code=exit_code,
        reason=reason,
        status_reason=status_reason,
    )
    return a_running_job(attempts=(*previous, ended), **fields)


def a_snapshot(
    *,
    compute_environments: Iterable[ComputeEnvironment] = (),
    job_queues: Iterable[JobQueue] = (),
    runnable: Iterable[Job] = (),
    active: Iterable[Job] = (),
    to_evaluate: Iterable[Job] = (),
    dependency_status: Mapping[str, JobStatus] | None = None,
    host_limits: Mapping[str, Resources] | None = None,
) -> Snapshot:
    by_queue: dict[str, list[Job]] = {}
    for job in runnable:
        by_queue.setdefault(job.job_queue, []).append(job)
    ces = tuple(compute_environments) or (a_compute_environment(),)
    queues = tuple(job_queues) or (a_queue(),)
    return Snapshot(
        compute_environments={ce.name: ce for ce in ces},
        job_queues=queues,
        active=tuple(active),
        runnable={name: tuple(jobs) for name, jobs in by_queue.items()},
        to_evaluate=tuple(to_evaluate),
        dependency_status=dict(dependency_status or {}),
        host_limits=dict(host_limits or {}),
    )


def update_of(result: Plan, job_id: str) -> Job:
    matches = [job for job in result.updates if job.job_id == job_id]
    assert len(matches) == 1, f"expected exactly one update of {job_id}, got {len(matches)}"
    return matches[0]


def no_update_of(result: Plan, job_id: str) -> bool:
    return all(job.job_id != job_id for job in result.updates)


def evaluate(*jobs: Job, **snapshot: Any) -> Plan:
    return plan(a_snapshot(to_evaluate=jobs, **snapshot), NOW)


# -- 1b. SUBMITTED / PENDING: dependencies -----------------------------------------------------


def test_a_job_without_dependencies_becomes_runnable() -> None:
    result = evaluate(a_job("job-1", S.SUBMITTED))
    job = update_of(result, "job-1")
    assert job.status is S.RUNNABLE
    assert job.status_reason is None
    assert job.version == 5
    assert result.evaluated == ()
    assert result.starts == ()  # it was not a RUNNABLE head of this snapshot


def test_a_job_with_unfinished_dependencies_waits_in_pending() -> None:
    job = a_job("job-2", S.SUBMITTED, wait_for=("job-1",))
    result = evaluate(job, dependency_status={"job-1": S.RUNNING})
    assert update_of(result, "job-2").status is S.PENDING


def test_a_pending_job_with_unfinished_dependencies_is_only_marked_evaluated() -> None:
    job = a_job("job-3", S.PENDING, wait_for=("job-1", "job-2"))
    result = evaluate(job, dependency_status={"job-1": S.SUCCEEDED, "job-2": S.RUNNABLE})
    assert result.updates == ()
    assert result.evaluated == (("job-3", 5),)


def test_a_pending_job_becomes_runnable_when_all_dependencies_succeeded() -> None:
    job = a_job("job-3", S.PENDING, wait_for=("job-1", "job-2"))
    result = evaluate(job, dependency_status={"job-1": S.SUCCEEDED, "job-2": S.SUCCEEDED})
    assert update_of(result, "job-3").status is S.RUNNABLE


@pytest.mark.parametrize("status", [S.SUBMITTED, S.PENDING])
def test_a_failed_dependency_fails_the_dependent_job(status: JobStatus) -> None:
    job = a_job("job-3", status, wait_for=("job-1", "job-2"))
    result = evaluate(job, dependency_status={"job-1": S.RUNNING, "job-2": S.FAILED})
    failed = update_of(result, "job-3")
    assert failed.status is S.FAILED
    assert failed.status_reason == "Dependent Job failed"
    assert failed.stopped_at == NOW
    assert not failed.is_cancelled
    assert failed.attempts == ()


def test_a_dependency_the_store_no_longer_knows_counts_as_failed() -> None:
    result = evaluate(a_job("job-2", S.PENDING, wait_for=("gone",)))
    assert update_of(result, "job-2").status_reason == lifecycle.DEPENDENT_JOB_FAILED


def test_n_to_n_children_wait_only_for_their_own_index() -> None:
    child = a_job(
        "B:1",
        S.PENDING,
        array_index=1,
        array_parent_id="B",
        depends_on=(Dependency(job_id="A", type="N_TO_N"),),
        wait_for=("A:1",),
    )
    result = evaluate(child, dependency_status={"A:0": S.FAILED, "A:1": S.SUCCEEDED})
    assert update_of(result, "B:1").status is S.RUNNABLE


def test_sequential_children_wait_for_the_previous_index() -> None:
    second = a_job(
        "P:1",
        S.PENDING,
        array_index=1,
        array_parent_id="P",
        depends_on=(Dependency(job_id=None, type="SEQUENTIAL"),),
        wait_for=("P:0",),
    )
    waiting = evaluate(second, dependency_status={"P:0": S.RUNNING})
    assert waiting.evaluated == (("P:1", 5),)
    failed = evaluate(second, dependency_status={"P:0": S.FAILED})
    assert update_of(failed, "P:1").status_reason == "Dependent Job failed"


# -- 1a. array parents -------------------------------------------------------------------------


def a_parent(status: JobStatus = S.PENDING, **counts: int) -> Job:
    summary = {s.value: 0 for s in S}
    summary.update(counts)
    return a_job("parent", status, array_size=3, array_status_summary=summary)


def test_a_new_array_parent_goes_pending_while_children_are_unfinished() -> None:
    result = evaluate(a_parent(S.SUBMITTED, PENDING=3))
    assert update_of(result, "parent").status is S.PENDING


def test_a_pending_array_parent_stays_pending_while_children_run() -> None:
    result = evaluate(a_parent(S.PENDING, RUNNING=1, SUCCEEDED=2))
    assert result.updates == ()
    assert result.evaluated == (("parent", 5),)


def test_an_array_parent_succeeds_when_every_child_succeeded() -> None:
    parent = update_of(evaluate(a_parent(S.PENDING, SUCCEEDED=3)), "parent")
    assert parent.status is S.SUCCEEDED
    assert parent.stopped_at == NOW
    assert parent.status_reason is None


def test_an_array_parent_fails_once_all_children_ended_and_one_failed() -> None:
    running = evaluate(a_parent(S.PENDING, FAILED=1, RUNNING=1, SUCCEEDED=1))
    assert running.updates == ()
    parent = update_of(evaluate(a_parent(S.PENDING, FAILED=1, SUCCEEDED=2)), "parent")
    assert parent.status is S.FAILED
    assert parent.status_reason == "Array Child Job failed"
    assert parent.stopped_at == NOW
    assert not parent.is_cancelled


def test_a_submitted_array_parent_whose_children_all_ended_goes_straight_to_terminal() -> None:
    assert update_of(evaluate(a_parent(S.SUBMITTED, SUCCEEDED=3)), "parent").status is S.SUCCEEDED


def test_a_cancelled_array_parent_fails_with_the_callers_reason() -> None:
    parent = replace(a_parent(S.PENDING, FAILED=3), cancel_reason="stop the batch")
    failed = update_of(evaluate(parent), "parent")
    assert (failed.status, failed.status_reason, failed.is_cancelled) == (
        S.FAILED,
        "stop the batch",
        True,
    )


def test_a_terminated_array_parent_fails_as_terminated() -> None:
    parent = replace(a_parent(S.PENDING, FAILED=2, SUCCEEDED=1), terminate_reason="abort")
    failed = update_of(evaluate(parent), "parent")
    assert (failed.status_reason, failed.is_terminated) == ("abort", True)


# -- 1b/1c. cancel and terminate before placement ----------------------------------------------


@pytest.mark.parametrize("request_field", ["cancel_reason", "terminate_reason"])
@pytest.mark.parametrize("status", [S.SUBMITTED, S.RUNNABLE])
def test_cancel_or_terminate_before_placement_fails_the_job_at_once(
    status: JobStatus, request_field: str
) -> None:
    job = a_job("job-1", status, wait_for=("job-0",), **{request_field: "user asked"})
    failed = update_of(evaluate(job, dependency_status={"job-0": S.RUNNING}), "job-1")
    assert failed.status is S.FAILED
    assert failed.status_reason == "user asked"
    assert failed.is_cancelled
    assert not failed.is_terminated
    assert failed.stopped_at == NOW


def test_cancelling_a_pending_job_waits_for_its_dependencies_to_finish() -> None:
    job = a_job("job-2", S.PENDING, wait_for=("job-1",), cancel_reason="user asked")
    waiting = evaluate(job, dependency_status={"job-1": S.RUNNING})
    assert waiting.updates == ()
    assert waiting.evaluated == (("job-2", 5),)
    done = evaluate(job, dependency_status={"job-1": S.SUCCEEDED})
    failed = update_of(done, "job-2")
    assert (failed.status, failed.status_reason, failed.is_cancelled) == (
        S.FAILED,
        "user asked",
        True,
    )


def test_a_job_cancelled_this_round_is_not_placed() -> None:
    job = a_job("job-1", S.RUNNABLE, cancel_reason="user asked")
    result = plan(a_snapshot(runnable=[job], to_evaluate=[job]), NOW)
    assert update_of(result, "job-1").status is S.FAILED
    assert result.starts == ()


def test_a_cancelled_head_missing_from_to_evaluate_is_still_not_placed() -> None:
    cancelled = a_job("job-1", S.RUNNABLE, cancel_reason="user asked")
    behind = a_job("job-2", S.RUNNABLE)
    result = plan(a_snapshot(runnable=[cancelled, behind]), NOW)
    assert update_of(result, "job-1").status is S.FAILED
    assert result.starts == ("job-2",)


# -- 1d. placed jobs: terminate, exits, retries ------------------------------------------------


@pytest.mark.parametrize("status", [S.STARTING, S.RUNNING])
def test_terminating_a_placed_job_orders_its_attempt_stopped(status: JobStatus) -> None:
    job = a_running_job(status=status, terminate_reason="abort")
    result = plan(a_snapshot(active=[job], to_evaluate=[job]), NOW)
    stopping = update_of(result, "run-1")
    assert stopping.status is status
    assert stopping.stop_cause is StopCause.TERMINATED
    assert result.stops == ("run-1",)


def test_a_stop_already_ordered_is_not_ordered_again() -> None:
    job = a_running_job(terminate_reason="abort", stop_cause=StopCause.TERMINATED)
    result = plan(a_snapshot(active=[job], to_evaluate=[job]), NOW)
    assert result.updates == ()
    assert result.stops == ()
    assert result.evaluated == (("run-1", 5),)


def test_a_terminated_attempt_that_exited_fails_the_job_as_terminated() -> None:
    job = an_ended_job(
        143,
        terminate_reason="abort",
        stop_cause=StopCause.TERMINATED,
        retry_strategy=RetryStrategy(attempts=5),
    )
    failed = update_of(evaluate(job), "run-1")
    assert failed.status is S.FAILED
    assert failed.status_reason == "abort"
    assert failed.is_terminated
    assert failed.stopped_at == 50_000


def test_an_attempt_that_exits_zero_succeeds_the_job() -> None:
    done = update_of(evaluate(an_ended_job(0)), "run-1")
    assert done.status is S.SUCCEEDED
    assert done.status_reason == "Essential container in task exited"
    assert (done.started_at, done.stopped_at) == (11_000, 50_000)


def test_a_failed_attempt_with_attempts_left_goes_to_the_front_of_its_queue() -> None:
    job = an_ended_job(1, retry_strategy=RetryStrategy(attempts=2), seq=40)
    retried = update_of(evaluate(job), "run-1")
    assert retried.status is S.RUNNABLE
    assert retried.run_order == -40
    assert retried.compute_environment is None
    assert retried.stop_cause is None
    assert retried.status_reason == "Essential container in task exited"
    assert len(retried.attempts) == 1


def test_a_failed_attempt_with_no_attempts_left_fails_the_job() -> None:
    first = an_attempt(task_id="task-1", stopped_at=20_000, exit_code=1)
    job = an_ended_job(2, previous=[first], retry_strategy=RetryStrategy(attempts=2))
    failed = update_of(evaluate(job), "run-1")
    assert failed.status is S.FAILED
    assert failed.status_reason == "Essential container in task exited"
    assert failed.stopped_at == 50_000


def test_evaluate_on_exit_decides_between_retry_and_exit() -> None:
    strategy = RetryStrategy(
        attempts=5,
        evaluate_on_exit=(
            EvaluateOnExit(action="RETRY", on_status_reason="Host EC2*"),
            EvaluateOnExit(action="EXIT", on_exit_code="4*"),
        ),
    )
    spot = an_ended_job(
        None, status_reason="Host EC2 (instance batchyard) terminated.", retry_strategy=strategy
    )
    assert update_of(evaluate(spot), "run-1").status is S.RUNNABLE
    bad_input = an_ended_job(42, retry_strategy=strategy)
    assert update_of(evaluate(bad_input), "run-1").status is S.FAILED
    crash = an_ended_job(139, retry_strategy=strategy)
    assert update_of(evaluate(crash), "run-1").status is S.RUNNABLE


def test_a_task_that_failed_to_start_is_retried_from_starting() -> None:
    job = an_ended_job(
        None,
        status_reason="Task failed to start",
        reason="CannotPullContainerError: no such image",
        retry_strategy=RetryStrategy(attempts=2),
    )
    job = replace(job, status=S.STARTING, started_at=None)
    retried = update_of(evaluate(job), "run-1")
    assert retried.status is S.RUNNABLE
    assert retried.status_reason == "Task failed to start"


def test_a_timed_out_attempt_fails_the_job_and_is_never_retried() -> None:
    job = an_ended_job(137, stop_cause=StopCause.TIMEOUT, retry_strategy=RetryStrategy(attempts=5))
    failed = update_of(evaluate(job), "run-1")
    assert failed.status is S.FAILED
    assert failed.status_reason == "Job attempt duration exceeded timeout"


def test_a_terminate_that_arrived_after_the_exit_is_not_retried() -> None:
    job = an_ended_job(1, terminate_reason="abort", retry_strategy=RetryStrategy(attempts=5))
    failed = update_of(evaluate(job), "run-1")
    assert (failed.status, failed.status_reason, failed.is_terminated) == (S.FAILED, "abort", True)


def test_a_running_job_with_nothing_new_is_only_marked_evaluated() -> None:
    job = a_running_job()
    result = plan(a_snapshot(active=[job], to_evaluate=[job]), NOW)
    assert result.updates == ()
    assert result.evaluated == (("run-1", 5),)


def test_a_retry_is_placed_the_next_round_with_a_new_attempt() -> None:
    retried = update_of(
        evaluate(an_ended_job(1, retry_strategy=RetryStrategy(attempts=2))), "run-1"
    )
    result = plan(a_snapshot(runnable=[retried]), NOW)
    placed = update_of(result, "run-1")
    assert placed.status is S.STARTING
    assert len(placed.attempts) == 2
    assert placed.attempts[-1].task_id == lifecycle.new_task_id("run-1", 2)


# -- 2. timeouts -------------------------------------------------------------------------------


def test_a_running_attempt_within_its_timeout_sets_the_next_wakeup() -> None:
    job = a_running_job(timeout_seconds=60)
    result = plan(a_snapshot(active=[job]), 70_999)
    assert result.updates == ()
    assert result.next_wakeup == 71_000  # started_at 11_000 + 60 s


def test_a_running_attempt_past_its_timeout_is_stopped() -> None:
    job = a_running_job(timeout_seconds=60)
    result = plan(a_snapshot(active=[job]), 71_000)
    stopping = update_of(result, "run-1")
    assert stopping.stop_cause is StopCause.TIMEOUT
    assert stopping.status is S.RUNNING
    assert result.stops == ("run-1",)
    assert result.next_wakeup is None


def test_the_timeout_clock_starts_at_running_not_at_placement() -> None:
    job = a_running_job(
        status=S.STARTING, timeout_seconds=60, attempts=(an_attempt(started_at=None),)
    )
    result = plan(a_snapshot(active=[job]), NOW)
    assert result.updates == ()
    assert result.next_wakeup is None


def test_a_timeout_does_not_override_a_terminate_stop() -> None:
    job = a_running_job(
        timeout_seconds=60, terminate_reason="abort", stop_cause=StopCause.TERMINATED
    )
    result = plan(a_snapshot(active=[job]), NOW)
    assert result.updates == ()
    assert result.stops == ()


def test_a_job_evaluated_and_timed_out_in_one_round_yields_one_update() -> None:
    job = a_running_job(timeout_seconds=60, terminate_reason="abort")
    result = plan(a_snapshot(active=[job], to_evaluate=[job]), NOW)
    stopping = update_of(result, "run-1")
    assert stopping.stop_cause is StopCause.TERMINATED
    assert result.stops == ("run-1",)


def test_next_wakeup_is_the_earliest_deadline() -> None:
    jobs = [
        a_running_job("run-1", timeout_seconds=120),
        a_running_job("run-2", timeout_seconds=90),
    ]
    assert plan(a_snapshot(active=jobs), 20_000).next_wakeup == 101_000


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
