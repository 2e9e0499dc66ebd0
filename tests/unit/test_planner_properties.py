"""Properties of plan() over random snapshots: capacity, dependencies, priority, legality, versions.

Each check re-derives what it asserts from the snapshot and the plan; it does not reuse the
planner's own helpers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    Attempt,
    ComputeEnvironment,
    ComputeEnvironmentOrder,
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
T = TypeVar("T")
ARN = "arn:aws:batch:us-east-1:000000000000"


@dataclass(frozen=True)
class Case:
    snapshot: Snapshot
    now: int

    def jobs(self) -> Iterator[Job]:
        yield from self.snapshot.to_evaluate
        yield from self.snapshot.active
        for jobs in self.snapshot.runnable.values():
            yield from jobs

    def original(self, job_id: str) -> Job:
        return next(job for job in self.jobs() if job.job_id == job_id)


# -- strategies --------------------------------------------------------------------------------
# Strategies are built once at import: building them inside the composite dominated run time.

resources = st.builds(
    Resources,
    vcpus=st.sampled_from([0.5, 1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 4.0, 9.0]),
    memory_mib=st.sampled_from([512, 1024, 1024, 4096, 20_000]),
    gpus=st.sampled_from([0] * 6 + [1, 2]),
)
host_resources = st.builds(
    Resources,
    vcpus=st.sampled_from([1.0, 2.0, 4.0, 16.0]),
    memory_mib=st.sampled_from([2048, 8192, 16_384]),
    gpus=st.sampled_from([0, 1, 2]),
)
coin = st.booleans()
# Mostly placeable, contended resources: placements and priority races are the point.
max_vcpus_caps = st.sampled_from([None, 2, 3, 4, 4, 6, 8])
resource_states = st.sampled_from([ResourceState.ENABLED] * 5 + [ResourceState.DISABLED])
resource_statuses = st.sampled_from(
    [ResourceStatus.VALID] * 6 + [ResourceStatus.INVALID, ResourceStatus.UPDATING]
)
time_limit_lists = st.lists(
    st.builds(
        JobStateTimeLimitAction,
        reason=st.sampled_from(sorted(set(lifecycle.BLOCKED_REASON_CODES.values()))),
        state=st.just("RUNNABLE"),
        max_time_seconds=st.sampled_from([600, 900]),
        action=st.just("CANCEL"),
    ),
    max_size=2,
)
small_counts = st.sampled_from([0, 1, 2, 3, 4, 5])
queue_counts = st.sampled_from([1, 2, 2, 3, 3])
ce_counts = st.sampled_from([1, 1, 2, 2, 3])
earlier_attempt_counts = st.sampled_from([0, 0, 0, 1, 2])
priorities = st.integers(0, 3)
ce_orders = st.integers(0, 9)
versions = st.integers(0, 50)
blocked_reasons = st.sampled_from([None, None, *sorted(lifecycle.BLOCKED_REASON_CODES)])
blocked_ages = st.integers(0, 900_000)
run_ages = st.integers(0, 200_000)
cancel_reasons = st.sampled_from([None] * 7 + ["user asked"])
terminate_reasons = st.sampled_from([None] * 4 + ["abort"])
placed_statuses = st.sampled_from([S.STARTING, S.RUNNING])
waiting_statuses = st.sampled_from([S.SUBMITTED, S.PENDING])
any_status = st.sampled_from(list(S))
exit_codes = st.sampled_from([None, 0, 1, 137])
container_reasons = st.none() | st.just("OutOfMemoryError: killed")
timeouts = st.none() | st.sampled_from([60, 120])
stop_causes = st.sampled_from([None, None, None, None, *StopCause])
retry_strategies = st.builds(
    RetryStrategy,
    attempts=st.sampled_from([1, 2, 3, 3]),
    evaluate_on_exit=st.lists(
        st.builds(
            EvaluateOnExit,
            action=st.sampled_from(["RETRY", "EXIT"]),
            on_exit_code=st.none() | st.sampled_from(["1", "13*", "*"]),
            on_reason=st.none() | st.sampled_from(["*", "OutOfMemory*"]),
        ),
        max_size=2,
    ).map(tuple),
)
DEPENDENCY_IDS = ("dep-0", "dep-1", "dep-2", "dep-3")


def some_of(draw: st.DrawFn, items: Iterable[T]) -> list[T]:
    return [item for item in items if draw(coin)]


def a_compute_environment(draw: st.DrawFn, name: str) -> ComputeEnvironment:
    max_vcpus = draw(max_vcpus_caps)
    return ComputeEnvironment(
        name=name,
        arn=f"{ARN}:compute-environment/{name}",
        type="MANAGED",
        state=draw(resource_states),
        status=draw(resource_statuses),
        status_reason="",
        runtime="process",
        compute_resources=None if max_vcpus is None else {"maxvCpus": max_vcpus},
    )


def a_queue(draw: st.DrawFn, name: str, ce_names: list[str]) -> JobQueue:
    ces = some_of(draw, ce_names) or ce_names[-1:]
    return JobQueue(
        name=name,
        arn=f"{ARN}:job-queue/{name}",
        state=draw(resource_states),
        status=ResourceStatus.VALID,
        status_reason="",
        priority=draw(priorities),
        compute_environment_order=tuple(
            ComputeEnvironmentOrder(order=draw(ce_orders), compute_environment=ce) for ce in ces
        ),
        job_state_time_limit_actions=tuple(draw(time_limit_lists)),
    )


class _Ids:
    def __init__(self) -> None:
        self.next = 0

    def job(self, draw: st.DrawFn, queue: str, status: JobStatus, **fields: Any) -> Job:
        self.next += 1
        seq = self.next
        return Job(
            job_id=f"job-{seq}",
            job_name=f"name-{seq}",
            job_queue=queue,
            job_definition_arn=f"{ARN}:job-definition/render:1",
            job_definition_name="render",
            status=status,
            created_at=0,
            seq=seq,
            run_order=-seq if draw(coin) else seq,
            resources=draw(resources),
            version=draw(versions),
            **fields,
        )


@st.composite
def cases(draw: st.DrawFn) -> Case:
    now = draw(st.integers(1_000_000, 3_000_000))
    ce_names = [f"ce-{i}" for i in range(draw(ce_counts))]
    ces = {name: a_compute_environment(draw, name) for name in ce_names}
    host_limits = {name: draw(host_resources) for name in some_of(draw, ce_names)}
    queues = tuple(a_queue(draw, f"q-{i}", ce_names) for i in range(draw(queue_counts)))
    queue_names = st.sampled_from([q.name for q in queues])
    placed_ces = st.sampled_from(ce_names)
    ids = _Ids()

    runnable: dict[str, tuple[Job, ...]] = {}
    for queue in queues:
        heads = []
        for _ in range(draw(small_counts)):
            blocked = draw(blocked_reasons)
            heads.append(
                ids.job(
                    draw,
                    queue.name,
                    S.RUNNABLE,
                    cancel_reason=draw(cancel_reasons),
                    status_reason=blocked,
                    blocked_since=None if blocked is None else now - draw(blocked_ages),
                )
            )
        runnable[queue.name] = tuple(heads)

    active = []
    for _ in range(draw(small_counts)):
        status = draw(placed_statuses)
        started_at = None if status is S.STARTING else now - draw(run_ages)
        ended = draw(coin)
        previous = tuple(
            Attempt(task_id=f"old-{i}", compute_environment=ce_names[0], placed_at=0, stopped_at=1)
            for i in range(draw(earlier_attempt_counts))
        )
        ce = draw(placed_ces)
        current = Attempt(
            task_id="current",
            compute_environment=ce,
            placed_at=0,
            started_at=started_at,
            stopped_at=now - 1 if ended else None,
            exit_code=draw(exit_codes) if ended else None,
            reason=draw(container_reasons) if ended else None,
        )
        active.append(
            ids.job(
                draw,
                draw(queue_names),
                status,
                attempts=(*previous, current),
                compute_environment=ce,
                started_at=started_at,
                timeout_seconds=draw(timeouts),
                terminate_reason=draw(terminate_reasons),
                stop_cause=draw(stop_causes),
                retry_strategy=draw(retry_strategies),
            )
        )

    # A dependency missing from dependency_status counts as FAILED; leave some out.
    dependency_status = {dep: draw(any_status) for dep in some_of(draw, DEPENDENCY_IDS)}
    waiting = [
        ids.job(
            draw,
            draw(queue_names),
            draw(waiting_statuses),
            wait_for=tuple(some_of(draw, DEPENDENCY_IDS)),
            cancel_reason=draw(cancel_reasons),
        )
        for _ in range(draw(small_counts))
    ]
    for _ in range(draw(st.integers(0, 2))):
        children = [draw(any_status) for _ in range(2 + draw(st.integers(0, 2)))]
        waiting.append(
            ids.job(
                draw,
                queues[0].name,
                draw(waiting_statuses),
                array_size=len(children),
                array_status_summary={s.value: children.count(s) for s in S},
                cancel_reason=draw(cancel_reasons),
            )
        )
    heads = [job for jobs in runnable.values() for job in jobs]
    to_evaluate = [*waiting, *some_of(draw, heads), *some_of(draw, active)]
    # Interleave kinds: the order of to_evaluate must not matter to the rules.
    to_evaluate.sort(key=lambda job: (draw(coin), job.seq))
    snapshot = Snapshot(
        compute_environments=ces,
        job_queues=queues,
        active=tuple(active),
        runnable=runnable,
        to_evaluate=tuple(to_evaluate),
        dependency_status=dependency_status,
        host_limits=host_limits,
    )
    return Case(snapshot, now)


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
