"""plan() on placed jobs: terminate, exits, retries (evaluateOnExit) and attempt timeouts."""

from __future__ import annotations

from dataclasses import replace

import pytest

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    EvaluateOnExit,
    JobStatus,
    RetryStrategy,
    StopCause,
)
from batchyard.scheduling.planner import plan
from tests.builders import (
    NOW,
    a_running_job,
    a_snapshot,
    an_attempt,
    an_ended_job,
)
from tests.unit.planner.plans import evaluate, update_of

S = JobStatus


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
