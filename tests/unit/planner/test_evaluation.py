"""plan() on jobs not yet placed: dependencies, array parents, cancel and terminate before
placement, on small snapshots built from domain-named builders."""

from __future__ import annotations

from dataclasses import replace

import pytest

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    Dependency,
    Job,
    JobStatus,
)
from batchyard.scheduling import dependencies
from batchyard.scheduling.planner import plan
from tests.builders import (
    NOW,
    a_job,
    a_snapshot,
)
from tests.unit.planner.plans import evaluate, update_of

S = JobStatus


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


@pytest.mark.parametrize("status", [S.RUNNABLE, S.STARTING, S.RUNNING, S.SUCCEEDED])
def test_only_submitted_and_pending_jobs_wait_for_dependencies(status: JobStatus) -> None:
    job = a_job("job-2", status, wait_for=("job-1",))
    done = {"job-1": S.SUCCEEDED}
    assert dependencies.evaluate_waiting(job, done, NOW) is None
    waiting = dependencies.evaluate_waiting(replace(job, status=S.PENDING), done, NOW)
    assert waiting is not None
    assert waiting.status is S.RUNNABLE


def test_a_job_that_already_ended_is_only_marked_evaluated() -> None:
    # C waits for A and B; A failed, so C failed. When B ends, the store flags B's dependents
    # again, C among them: the planner leaves the ended job as it is.
    ended = a_job(
        "job-3", S.FAILED, wait_for=("job-1", "job-2"), status_reason="Dependent Job failed"
    )
    result = evaluate(ended, dependency_status={"job-1": S.FAILED, "job-2": S.SUCCEEDED})
    assert result.updates == ()
    assert result.evaluated == (("job-3", 5),)


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
