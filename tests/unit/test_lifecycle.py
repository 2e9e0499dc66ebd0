"""The rules of one job (domain/lifecycle.py): transitions, retries, requests, attempt events."""

from __future__ import annotations

import re
from dataclasses import replace

import pytest

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    Attempt,
    EvaluateOnExit,
    Job,
    JobStatus,
    RetryStrategy,
    StopCause,
)
from tests.builders import a_job, an_attempt

S = JobStatus


def an_exit(
    exit_code: int | None, reason: str | None = None, status_reason: str | None = None
) -> Attempt:
    return an_attempt(
        stopped_at=19_000,
        exit_code=exit_code,
        reason=reason,
        status_reason=status_reason or lifecycle.ESSENTIAL_CONTAINER_EXITED,
    )


def retrying(attempts: int, *entries: EvaluateOnExit) -> RetryStrategy:
    return RetryStrategy(attempts=attempts, evaluate_on_exit=entries)


def a_retryable_job(*entries: EvaluateOnExit, attempts: int = 3) -> Job:
    return a_job(
        status=S.RUNNING,
        retry_strategy=retrying(attempts, *entries),
        attempts=(an_attempt(),),
    )


# -- exact strings -----------------------------------------------------------------------------


def test_status_reasons_are_the_exact_aws_strings() -> None:
    assert lifecycle.DEPENDENT_JOB_FAILED == "Dependent Job failed"
    assert lifecycle.ARRAY_CHILD_JOB_FAILED == "Array Child Job failed"
    assert lifecycle.ATTEMPT_TIMEOUT == "Job attempt duration exceeded timeout"
    assert lifecycle.ESSENTIAL_CONTAINER_EXITED == "Essential container in task exited"
    assert lifecycle.TASK_FAILED_TO_START == "Task failed to start"
    assert (
        lifecycle.TIME_LIMIT_CANCEL.format(reason="MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")
        == "Canceled by JobStateTimeLimit action due to reason: "
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT"
    )


def test_blocked_reasons_are_the_exact_aws_strings_with_their_codes() -> None:
    assert lifecycle.COMPUTE_ENVIRONMENT_MAX_RESOURCE == (
        "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE - CE(s) associated with the job "
        "queue cannot meet the CPU requirement of the job."
    )
    assert lifecycle.JOB_RESOURCE_REQUIREMENT == (
        "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT - The job resource requirement "
        "(vCPU/memory/GPU) is higher than that can be met by the CE(s) attached to the job queue."
    )
    assert (
        lifecycle.CE_INVALID == "ACTION_REQUIRED - CE(s) associated with the job queue are invalid."
    )
    codes = lifecycle.BLOCKED_REASON_CODES
    assert dict(codes) == {
        lifecycle.COMPUTE_ENVIRONMENT_MAX_RESOURCE: (
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
        ),
        lifecycle.JOB_RESOURCE_REQUIREMENT: "MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT",
        lifecycle.CE_INVALID: "ACTION_REQUIRED",
    }


# -- transitions -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "targets"),
    [
        (S.SUBMITTED, {S.PENDING, S.RUNNABLE, S.FAILED}),
        (S.PENDING, {S.RUNNABLE, S.FAILED}),
        (S.RUNNABLE, {S.STARTING, S.FAILED}),
        (S.STARTING, {S.RUNNING, S.RUNNABLE, S.FAILED, S.SUCCEEDED}),
        (S.RUNNING, {S.SUCCEEDED, S.FAILED, S.RUNNABLE}),
        (S.SUCCEEDED, set()),
        (S.FAILED, set()),
    ],
)
def test_an_ordinary_job_moves_only_along_the_aws_state_machine(
    source: JobStatus, targets: set[JobStatus]
) -> None:
    job = a_job(status=source)
    assert {to for to in S if lifecycle.is_legal_transition(job, to)} == targets
    assert targets <= lifecycle.LEGAL_TRANSITIONS[source]


@pytest.mark.parametrize(
    ("source", "targets"),
    [
        (S.SUBMITTED, {S.PENDING, S.SUCCEEDED, S.FAILED}),
        (S.PENDING, {S.SUCCEEDED, S.FAILED}),
        (S.SUCCEEDED, set()),
        (S.FAILED, set()),
    ],
)
def test_an_array_parent_only_shows_submitted_pending_and_terminal_statuses(
    source: JobStatus, targets: set[JobStatus]
) -> None:
    parent = a_job(status=source, array_size=4)
    assert {to for to in S if lifecycle.is_legal_transition(parent, to)} == targets
    assert targets <= lifecycle.LEGAL_TRANSITIONS[source]


def test_pending_to_succeeded_is_legal_only_for_array_parents() -> None:
    assert S.SUCCEEDED in lifecycle.LEGAL_TRANSITIONS[S.PENDING]
    assert not lifecycle.is_legal_transition(a_job(status=S.PENDING), S.SUCCEEDED)


def test_array_parent_outcome_leaves_other_jobs_and_ended_parents_alone() -> None:
    all_succeeded = {S.SUCCEEDED.value: 2}
    waiting = a_job("parent", S.PENDING, array_size=2, array_status_summary=all_succeeded)
    ended = replace(waiting, status=S.SUCCEEDED, stopped_at=5_000)
    assert lifecycle.array_parent_outcome(waiting, 9_000) == replace(ended, stopped_at=9_000)
    assert lifecycle.array_parent_outcome(ended, 9_000) is None  # decided once, not again
    assert lifecycle.array_parent_outcome(a_job("job-1", S.PENDING), 9_000) is None  # not a parent


# -- evaluateOnExit globs ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "value", "matches"),
    [
        ("1", "1", True),
        ("1", "10", False),
        ("40*", "404", True),
        ("40*", "40", True),
        ("40*", "4", False),
        ("*", "", True),
        ("*", "anything at all", True),
        ("Host EC2*", "Host EC2 (instance i-0abc) terminated.", True),
        ("host EC2*", "Host EC2 (instance i-0abc) terminated.", False),
        ("Task failed to start", "Task failed to start", True),
        ("Task failed", "Task failed to start", False),
    ],
)
def test_glob_matches_exactly_or_by_trailing_star_prefix(
    pattern: str, value: str, matches: bool
) -> None:
    assert lifecycle.glob_matches(pattern, value) is matches


# -- should_retry ------------------------------------------------------------------------------


def test_no_retry_strategy_means_one_attempt_and_no_retry() -> None:
    job = a_job(status=S.RUNNING, attempts=(an_attempt(),))
    assert lifecycle.should_retry(job, an_exit(1)) is False


def test_a_failure_with_attempts_left_and_no_evaluate_on_exit_is_retried() -> None:
    assert lifecycle.should_retry(a_retryable_job(), an_exit(1)) is True


def test_no_retry_once_the_attempts_are_used_up() -> None:
    job = a_job(
        status=S.RUNNING,
        retry_strategy=retrying(2),
        attempts=(an_attempt(), an_attempt(task_id="t2")),
    )
    assert lifecycle.should_retry(job, an_exit(1)) is False


def test_exit_code_glob_with_exit_action_stops_retries() -> None:
    job = a_retryable_job(EvaluateOnExit(action="EXIT", on_exit_code="40*"))
    assert lifecycle.should_retry(job, an_exit(404)) is False
    assert lifecycle.should_retry(job, an_exit(5)) is True  # no match -> retry


def test_first_matching_entry_wins() -> None:
    job = a_retryable_job(
        EvaluateOnExit(action="RETRY", on_status_reason="Host EC2*"),
        EvaluateOnExit(action="EXIT", on_reason="*"),
    )
    spot = an_exit(None, status_reason="Host EC2 (instance i-0abc) terminated.")
    assert lifecycle.should_retry(job, spot) is True
    assert lifecycle.should_retry(job, an_exit(1, reason="OutOfMemoryError: killed")) is False


def test_the_action_is_case_insensitive() -> None:
    assert (
        lifecycle.should_retry(a_retryable_job(EvaluateOnExit(action="exit")), an_exit(1)) is False
    )
    assert (
        lifecycle.should_retry(a_retryable_job(EvaluateOnExit(action="retry")), an_exit(1)) is True
    )


def test_an_entry_matches_only_when_all_its_fields_match() -> None:
    job = a_retryable_job(
        EvaluateOnExit(action="EXIT", on_exit_code="137", on_reason="OutOfMemoryError*")
    )
    assert lifecycle.should_retry(job, an_exit(137, reason="OutOfMemoryError: killed")) is False
    assert lifecycle.should_retry(job, an_exit(137, reason="Something else")) is True
    assert lifecycle.should_retry(job, an_exit(1, reason="OutOfMemoryError: killed")) is True


def test_an_attempt_without_exit_code_never_matches_an_exit_code_pattern() -> None:
    job = a_retryable_job(EvaluateOnExit(action="EXIT", on_exit_code="*"))
    assert lifecycle.should_retry(job, an_exit(None, status_reason="Task failed to start")) is True
    assert lifecycle.should_retry(job, an_exit(0)) is False


def test_a_missing_reason_is_matched_as_the_empty_string() -> None:
    job = a_retryable_job(EvaluateOnExit(action="EXIT", on_reason="*"))
    assert lifecycle.should_retry(job, an_exit(1, reason=None)) is False
    only_named = a_retryable_job(EvaluateOnExit(action="EXIT", on_reason="Cannot*"))
    assert lifecycle.should_retry(only_named, an_exit(1, reason=None)) is True


def test_status_reason_glob() -> None:
    job = a_retryable_job(EvaluateOnExit(action="EXIT", on_status_reason="Task failed to start"))
    assert lifecycle.should_retry(job, an_exit(None, status_reason="Task failed to start")) is False
    assert lifecycle.should_retry(job, an_exit(2)) is True


# -- cancel / terminate requests ---------------------------------------------------------------


@pytest.mark.parametrize("status", [S.SUBMITTED, S.PENDING, S.RUNNABLE])
def test_cancel_is_recorded_before_placement(status: JobStatus) -> None:
    job = a_job(status=status)
    assert lifecycle.request_cancel(job, "no longer needed") == replace(
        job, cancel_reason="no longer needed"
    )


@pytest.mark.parametrize("status", [S.STARTING, S.RUNNING, S.SUCCEEDED, S.FAILED])
def test_cancel_has_no_effect_once_placed_or_ended(status: JobStatus) -> None:
    assert lifecycle.request_cancel(a_job(status=status), "too late") is None


def test_a_second_cancel_keeps_the_first_reason() -> None:
    job = a_job(status=S.RUNNABLE, cancel_reason="first")
    assert lifecycle.request_cancel(job, "second") is None


@pytest.mark.parametrize("status", [S.SUBMITTED, S.PENDING, S.RUNNABLE, S.STARTING, S.RUNNING])
def test_terminate_is_recorded_in_every_non_terminal_status(status: JobStatus) -> None:
    job = a_job(status=status)
    assert lifecycle.request_terminate(job, "stop it") == replace(job, terminate_reason="stop it")


@pytest.mark.parametrize("status", [S.SUCCEEDED, S.FAILED])
def test_terminate_is_a_no_op_on_ended_jobs(status: JobStatus) -> None:
    assert lifecycle.request_terminate(a_job(status=status), "stop it") is None


def test_a_second_terminate_keeps_the_first_reason() -> None:
    assert (
        lifecycle.request_terminate(a_job(status=S.RUNNING, terminate_reason="first"), "second")
        is None
    )


# -- attempt events ----------------------------------------------------------------------------


def a_placed_job() -> Job:
    return a_job(
        status=S.STARTING,
        attempts=(an_attempt(started_at=None),),
        compute_environment="ce-a",
        version=3,
    )


def test_attempt_started_moves_starting_to_running() -> None:
    started = lifecycle.attempt_started(a_placed_job(), "task-1", 12_000, "pid:42")
    assert started is not None
    assert started.status is S.RUNNING
    assert started.started_at == 12_000
    assert started.attempts[-1].started_at == 12_000
    assert started.attempts[-1].runtime_handle == "pid:42"
    assert started.version == 3


def test_attempt_started_ignores_another_task_a_repeat_and_an_ended_attempt() -> None:
    job = a_placed_job()
    assert lifecycle.attempt_started(job, "task-0", 12_000, "pid:42") is None
    started = lifecycle.attempt_started(job, "task-1", 12_000, "pid:42")
    assert started is not None
    assert lifecycle.attempt_started(started, "task-1", 12_100, "pid:43") is None
    ended = lifecycle.attempt_exited(job, "task-1", 12_000, None, None, "Task failed to start")
    assert ended is not None
    assert lifecycle.attempt_started(ended, "task-1", 12_100, "pid:43") is None
    assert lifecycle.attempt_started(a_job(status=S.RUNNABLE), "task-1", 12_100, "pid:43") is None


def test_attempt_exited_records_the_exit_and_leaves_the_status_to_the_planner() -> None:
    job = a_job(status=S.RUNNING, attempts=(an_attempt(),))
    ended = lifecycle.attempt_exited(
        job, "task-1", 19_000, 137, "OutOfMemoryError: killed", lifecycle.ESSENTIAL_CONTAINER_EXITED
    )
    assert ended is not None
    assert ended.status is S.RUNNING
    assert ended.attempts[-1] == replace(
        job.attempts[-1],
        stopped_at=19_000,
        exit_code=137,
        reason="OutOfMemoryError: killed",
        status_reason=lifecycle.ESSENTIAL_CONTAINER_EXITED,
    )
    assert lifecycle.attempt_exited(ended, "task-1", 19_100, 0, None, None) is None


def test_attempt_exited_after_a_timeout_stop_says_so() -> None:
    job = a_job(status=S.RUNNING, attempts=(an_attempt(),), stop_cause=StopCause.TIMEOUT)
    ended = lifecycle.attempt_exited(
        job, "task-1", 19_000, 137, None, "Essential container in task exited"
    )
    assert ended is not None
    assert ended.attempts[-1].status_reason == lifecycle.ATTEMPT_TIMEOUT


def test_attempt_exited_only_touches_the_current_attempt() -> None:
    job = a_job(status=S.RUNNING, attempts=(an_exit(1), an_attempt(task_id="task-2")))
    assert lifecycle.attempt_exited(job, "task-1", 19_500, 1, None, None) is None
    ended = lifecycle.attempt_exited(job, "task-2", 19_500, 0, None, None)
    assert ended is not None
    assert ended.attempts[0] == job.attempts[0]
    assert ended.attempts[1].exit_code == 0


# -- names -------------------------------------------------------------------------------------


def test_task_ids_are_32_hex_deterministic_and_distinct_per_attempt() -> None:
    first = lifecycle.new_task_id("job-1", 1)
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert first == lifecycle.new_task_id("job-1", 1)
    assert first != lifecycle.new_task_id("job-1", 2)
    assert first != lifecycle.new_task_id("job-2", 1)


def test_log_stream_name_uses_the_first_200_chars_of_the_definition_name() -> None:
    assert lifecycle.log_stream_name("render", "abc") == "render/default/abc"
    assert lifecycle.log_stream_name("x" * 250, "abc") == "x" * 200 + "/default/abc"
