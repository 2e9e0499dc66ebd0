"""Hypothesis strategies of planner snapshots: random compute environments, queues and jobs
in every state the planner reads, drawn into a Case (a snapshot and a time).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

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
from batchyard.scheduling.snapshot import Snapshot
from tests.builders import a_compute_environment, a_job, a_queue

S = JobStatus
T = TypeVar("T")


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


def drawn_compute_environment(draw: st.DrawFn, name: str) -> ComputeEnvironment:
    return a_compute_environment(
        name,
        max_vcpus=draw(max_vcpus_caps),
        state=draw(resource_states),
        status=draw(resource_statuses),
    )


def drawn_queue(draw: st.DrawFn, name: str, ce_names: list[str]) -> JobQueue:
    ces = some_of(draw, ce_names) or ce_names[-1:]
    return a_queue(
        name,
        state=draw(resource_states),
        priority=draw(priorities),
        compute_environment_order=tuple(
            ComputeEnvironmentOrder(order=draw(ce_orders), compute_environment=ce) for ce in ces
        ),
        time_limits=draw(time_limit_lists),
    )


class _Ids:
    def __init__(self) -> None:
        self.next = 0

    def job(self, draw: st.DrawFn, queue: str, status: JobStatus, **fields: Any) -> Job:
        self.next += 1
        seq = self.next
        return a_job(
            f"job-{seq}",
            status,
            job_name=f"name-{seq}",
            job_queue=queue,
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
    ces = {name: drawn_compute_environment(draw, name) for name in ce_names}
    host_limits = {name: draw(host_resources) for name in some_of(draw, ce_names)}
    queues = tuple(drawn_queue(draw, f"q-{i}", ce_names) for i in range(draw(queue_counts)))
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
