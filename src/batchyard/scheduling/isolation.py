"""When plan() raises: find the jobs, or failing that the job queues, it cannot plan, and plan
without them, so that one bad record does not stop every decision.

plan() itself has no guard per job: a try in its loops would cost every round, and plan()
raising is rare (stores refuse to hand out records they cannot decode). Only after it raised is
each job of the snapshot planned alone, with every resource of the snapshot but no other job:
a job that raises alone is the planner's trouble, provided the resources alone plan and not
every one of several jobs of its queue raises (then the queue is to blame). If the
plan still raises without those jobs, each job queue is planned alone with its own jobs, and
the queues that raise wait this round. Pure, like the planner.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace

from batchyard.domain.model import Job
from batchyard.scheduling.planner import plan
from batchyard.scheduling.snapshot import Plan, Snapshot


@dataclass(frozen=True, slots=True)
class Isolated:
    """A plan, the snapshot it was made from, and what was left out of it."""

    snapshot: Snapshot
    plan: Plan
    # Jobs that cannot be planned, by id: what planning one alone raised. Not in `snapshot`.
    jobs: Mapping[str, Exception] = field(default_factory=dict)
    # Job queues left out this round, by name: what planning one alone raised.
    queues: Mapping[str, Exception] = field(default_factory=dict)


def plan_isolating(snapshot: Snapshot, now: int) -> Isolated:
    """plan(snapshot, now), or when it raises, the plan without what makes it raise. Raises
    only when even that plan raises (the trouble is not in one job or queue)."""
    try:
        return Isolated(snapshot, plan(snapshot, now))
    except Exception:
        pass
    jobs = unplannable_jobs(snapshot, now)
    if jobs:
        snapshot = _keep(snapshot, lambda job: job.job_id not in jobs)
        try:
            return Isolated(snapshot, plan(snapshot, now), jobs)
        except Exception:
            pass
    queues = unplannable_queues(snapshot, now)
    left = _without_queues(snapshot, set(queues))
    return Isolated(left, plan(left, now), jobs, queues)


def unplannable_jobs(snapshot: Snapshot, now: int) -> dict[str, Exception]:
    """The jobs of `snapshot` that plan() raises on when each is planned alone (none when the
    snapshot's resources alone do not plan: then no job is to blame)."""
    try:
        plan(_keep(snapshot, lambda job: False), now)
    except Exception:
        return {}
    found: dict[str, Exception] = {}
    queue_of: dict[str, str] = {}
    for job in _jobs(snapshot):
        queue_of[job.job_id] = job.job_queue
    for job_id in queue_of:
        try:
            plan(_keep(snapshot, _is(job_id)), now)
        except Exception as error:
            found[job_id] = error
    # Several jobs of a queue, every one raising alone: the queue (or where it places) is
    # to blame, not its jobs.
    plannable = {queue_of[job_id] for job_id in queue_of if job_id not in found}
    raising: dict[str, int] = {}
    for job_id in found:
        raising[queue_of[job_id]] = raising.get(queue_of[job_id], 0) + 1
    blamed = {name for name, count in raising.items() if count > 1 and name not in plannable}
    return {job_id: error for job_id, error in found.items() if queue_of[job_id] not in blamed}


def unplannable_queues(snapshot: Snapshot, now: int) -> dict[str, Exception]:
    """The job queues plan() raises on when each is planned alone, with only its jobs."""
    found: dict[str, Exception] = {}
    for queue in snapshot.job_queues:
        alone = _keep(replace(snapshot, job_queues=(queue,)), _in_queue(queue.name))
        try:
            plan(alone, now)
        except Exception as error:
            found[queue.name] = error
    return found


def _is(job_id: str) -> Callable[[Job], bool]:
    return lambda job: job.job_id == job_id


def _in_queue(name: str) -> Callable[[Job], bool]:
    return lambda job: job.job_queue == name


def _jobs(snapshot: Snapshot) -> Iterator[Job]:
    yield from snapshot.to_evaluate
    yield from snapshot.active
    for heads in snapshot.runnable.values():
        yield from heads
    for shares in snapshot.runnable_by_share.values():
        for heads in shares.values():
            yield from heads


def _keep(snapshot: Snapshot, keep: Callable[[Job], bool]) -> Snapshot:
    """`snapshot` with only the jobs `keep` says (every resource stays)."""
    return replace(
        snapshot,
        to_evaluate=tuple(job for job in snapshot.to_evaluate if keep(job)),
        active=tuple(job for job in snapshot.active if keep(job)),
        runnable={
            name: tuple(job for job in heads if keep(job))
            for name, heads in snapshot.runnable.items()
        },
        runnable_by_share={
            name: {share: tuple(job for job in heads if keep(job)) for share, heads in s.items()}
            for name, s in snapshot.runnable_by_share.items()
        },
    )


def _without_queues(snapshot: Snapshot, names: set[str]) -> Snapshot:
    """`snapshot` without these queues and the jobs that wait in them. Their jobs holding
    capacity stay: what they hold is not free for other queues."""
    if not names:
        return snapshot
    waiting = _keep(
        replace(snapshot, active=()),
        lambda job: job.job_queue not in names,
    )
    return replace(
        waiting,
        job_queues=tuple(queue for queue in snapshot.job_queues if queue.name not in names),
        active=snapshot.active,
        runnable={n: heads for n, heads in waiting.runnable.items() if n not in names},
        runnable_by_share={
            n: shares for n, shares in waiting.runnable_by_share.items() if n not in names
        },
    )
