"""Properties of plan() over random snapshots: capacity, dependencies, priority, legality, versions.

Each check re-derives what it asserts from the snapshot and the plan; it does not reuse the
planner's own helpers.
"""

from __future__ import annotations

import math

from hypothesis import HealthCheck, given, settings

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    Job,
    JobQueue,
    JobStatus,
    Resources,
    ResourceState,
)
from batchyard.scheduling.planner import plan
from batchyard.scheduling.snapshot import Plan
from tests.unit.planner.strategies import Case, cases

S = JobStatus

# -- independent arithmetic --------------------------------------------------------------------


def vcpu_cap(case: Case, ce: str) -> float:
    compute_environment = case.snapshot.compute_environments[ce]
    if compute_environment.max_vcpus is not None:
        return compute_environment.max_vcpus
    host = case.snapshot.host_limits.get(ce)
    return math.inf if host is None else host.vcpus


def fits(case: Case, ce: str, used: Resources, need: Resources) -> bool:
    host = case.snapshot.host_limits.get(ce)
    if used.vcpus + need.vcpus > vcpu_cap(case, ce):
        return False
    if host is None:
        return True
    return (
        used.memory_mib + need.memory_mib <= host.memory_mib and used.gpus + need.gpus <= host.gpus
    )


def plus(a: Resources, b: Resources) -> Resources:
    return Resources(a.vcpus + b.vcpus, a.memory_mib + b.memory_mib, a.gpus + b.gpus)


ZERO = Resources(0.0, 0, 0)


def final(result: Plan, job: Job) -> Job:
    return next((u for u in result.updates if u.job_id == job.job_id), job)


def usage_before_placements(case: Case, result: Plan) -> dict[str, Resources]:
    used: dict[str, Resources] = {}
    for job in case.snapshot.active:
        after = final(result, job)
        if after.status.is_active and after.compute_environment is not None:
            used[after.compute_environment] = plus(
                used.get(after.compute_environment, ZERO), after.resources
            )
    return used


def queue_of(case: Case, name: str) -> JobQueue:
    return next(queue for queue in case.snapshot.job_queues if queue.name == name)


# -- properties --------------------------------------------------------------------------------


def capacity_is_never_exceeded(case: Case, result: Plan) -> None:
    """Jobs still placed plus this round's placements stay within each CE that took one."""
    used = usage_before_placements(case, result)
    placed_on: set[str] = set()
    for job_id in result.starts:
        placed = final(result, case.original(job_id))
        assert placed.compute_environment is not None
        placed_on.add(placed.compute_environment)
        used[placed.compute_environment] = plus(
            used.get(placed.compute_environment, ZERO), placed.resources
        )
    for ce in placed_on:
        assert fits(case, ce, used[ce], ZERO), (ce, used[ce])


def only_runnable_jobs_are_placed_only_satisfied_jobs_become_runnable(
    case: Case, result: Plan
) -> None:
    runnable_ids = {job.job_id for jobs in case.snapshot.runnable.values() for job in jobs}
    for job_id in result.starts:
        assert job_id in runnable_ids
        original = case.original(job_id)
        assert original.status is S.RUNNABLE
        assert original.cancel_reason is None
        assert original.terminate_reason is None
        placed = final(result, original)
        assert placed.status is S.STARTING
        assert len(placed.attempts) == len(original.attempts) + 1
        assert placed.attempts[-1].placed_at == case.now
    for update in result.updates:
        original = case.original(update.job_id)
        if update.status is S.RUNNABLE and original.status in (S.SUBMITTED, S.PENDING):
            assert all(
                case.snapshot.dependency_status.get(dep) is S.SUCCEEDED for dep in original.wait_for
            )
    assert set(result.starts) == {
        u.job_id for u in result.updates if u.status is S.STARTING and u.job_id in runnable_ids
    }


def nothing_is_placed_on_disabled_queues_or_unplaceable_ces(case: Case, result: Plan) -> None:
    for job_id in result.starts:
        placed = final(result, case.original(job_id))
        queue = queue_of(case, placed.job_queue)
        assert queue.state is ResourceState.ENABLED
        assert placed.compute_environment in queue.compute_environment_names
        assert placed.compute_environment is not None
        assert case.snapshot.compute_environments[placed.compute_environment].can_place


def no_higher_priority_head_is_skipped(case: Case, result: Plan) -> None:
    """When a lower-priority queue places on CE X, each higher-priority queue sharing X has no
    remaining head that fits X at that moment. Usage only grows during a round and higher
    queues are walked first, so a head that fits now would have fit when its queue was walked.
    """
    started = set(result.starts)
    used = usage_before_placements(case, result)
    for job_id in result.starts:
        placed = final(result, case.original(job_id))
        ce = placed.compute_environment
        assert ce is not None
        lower = queue_of(case, placed.job_queue)
        for higher in case.snapshot.job_queues:
            if (
                higher.priority <= lower.priority
                or higher.state is not ResourceState.ENABLED
                or ce not in higher.compute_environment_names
            ):
                continue
            waiting = sorted(
                (
                    job
                    for job in case.snapshot.runnable.get(higher.name, ())
                    if job.job_id not in started and final(result, job).status is S.RUNNABLE
                ),
                key=lambda job: (job.run_order, job.seq),
            )
            if waiting:
                head = waiting[0]
                assert not fits(case, ce, used.get(ce, ZERO), head.resources), (
                    f"{lower.name} placed {job_id} on {ce} while {higher.name}'s head "
                    f"{head.job_id} fit there"
                )
        used[ce] = plus(used.get(ce, ZERO), placed.resources)


def each_queue_places_a_fifo_prefix(case: Case, result: Plan) -> None:
    """Head-of-line: a queue places nothing behind a job it left waiting
    (docs/aws-behaviour.md#queues-and-compute-environments)."""
    started = set(result.starts)
    for queue in case.snapshot.job_queues:
        in_order = sorted(
            case.snapshot.runnable.get(queue.name, ()), key=lambda job: (job.run_order, job.seq)
        )
        left_waiting = False
        for job in in_order:
            if job.job_id in started:
                assert not left_waiting, f"{queue.name} placed {job.job_id} behind a waiting job"
            elif final(result, job).status is S.RUNNABLE:
                left_waiting = True


def every_status_change_is_legal(case: Case, result: Plan) -> None:
    for update in result.updates:
        original = case.original(update.job_id)
        if update.status is not original.status:
            assert lifecycle.is_legal_transition(original, update.status), (
                original.status,
                update.status,
                original.is_array_parent,
            )
            assert update.status in lifecycle.LEGAL_TRANSITIONS[original.status]


def one_update_per_job_at_the_version_read(case: Case, result: Plan) -> None:
    updated = [u.job_id for u in result.updates]
    assert len(updated) == len(set(updated))
    for update in result.updates:
        assert update.version == case.original(update.job_id).version
    evaluated_ids = [job_id for job_id, _ in result.evaluated]
    assert len(evaluated_ids) == len(set(evaluated_ids))
    assert not set(evaluated_ids) & set(updated)
    to_evaluate = {job.job_id: job.version for job in case.snapshot.to_evaluate}
    assert dict(result.evaluated) == {
        job_id: version for job_id, version in to_evaluate.items() if job_id not in updated
    }
    assert set(result.stops) <= set(updated)
    assert set(result.starts) <= set(updated)


def plans_are_deterministic_and_wake_in_the_future(case: Case, result: Plan) -> None:
    assert result == plan(case.snapshot, case.now)
    assert result.next_wakeup is None or result.next_wakeup > case.now
    for job_id in result.stops:
        stopping = final(result, case.original(job_id))
        assert stopping.stop_cause is not None
        assert case.original(job_id).stop_cause is None


PROPERTIES = (
    capacity_is_never_exceeded,
    only_runnable_jobs_are_placed_only_satisfied_jobs_become_runnable,
    nothing_is_placed_on_disabled_queues_or_unplaceable_ces,
    no_higher_priority_head_is_skipped,
    each_queue_places_a_fifo_prefix,
    every_status_change_is_legal,
    one_update_per_job_at_the_version_read,
    plans_are_deterministic_and_wake_in_the_future,
)


# Generating a snapshot costs far more than planning it, so every generated snapshot is
# checked against every property rather than drawing a fresh set per property.
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cases())
def test_every_planner_property_holds_on_random_snapshots(case: Case) -> None:
    result = plan(case.snapshot, case.now)
    for check in PROPERTIES:
        check(case, result)
