"""The order in which RUNNABLE work is considered: queues by priority; jobs FIFO by run order,
or on a fair-share queue share by share, lowest usage first (docs/aws-behaviour.md#fair-share,
#queues-and-compute-environments).

Only ordering lives here; whether a job fits is the planner's call. The planner walks exactly
the order `front_of_queue` reports, so GetJobQueueSnapshot shows the order jobs start in.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import islice
from operator import attrgetter

from batchyard.domain import lifecycle
from batchyard.domain.model import Document, Job, JobQueue, JobStatus
from batchyard.scheduling import fairshare
from batchyard.scheduling.snapshot import Snapshot


def dispatch_order(job_queues: Iterable[JobQueue]) -> tuple[JobQueue, ...]:
    """Queues that may place jobs, highest priority first
    (docs/aws-behaviour.md#queues-and-compute-environments).

    Equal priorities are undefined in AWS; the name breaks the tie so a plan is reproducible.
    A DISABLED queue places nothing new.
    """
    enabled = (queue for queue in job_queues if queue.accepts_jobs)
    return tuple(sorted(enabled, key=lambda queue: (-queue.priority, queue.name)))


def fifo_order(jobs: Iterable[Job]) -> tuple[Job, ...]:
    """RUNNABLE jobs of one queue in dispatch order: run order (retries first), then submission."""
    # The store already hands them over in this order; sorting again (linear on sorted input)
    # keeps the planner correct for any snapshot, e.g. one built by a test or the simulator.
    return tuple(sorted(jobs, key=_RUN_ORDER))


def share_order(jobs: Iterable[Job]) -> tuple[Job, ...]:
    """RUNNABLE jobs of one share: schedulingPriority descending, then run order."""
    return tuple(sorted(jobs, key=_share_key))


def fair_share_policy(snapshot: Snapshot, queue: JobQueue) -> Document | None:
    """The fairsharePolicy a queue is scheduled by, or None for a FIFO queue.

    The store reads the heads of any queue with a scheduling policy share by share, so such a
    queue is walked share by share even when its policy has no fairsharePolicy (defaults).
    """
    if queue.scheduling_policy_arn is None:
        return None
    policy = snapshot.scheduling_policies.get(queue.scheduling_policy_arn)
    if policy is None or policy.fairshare_policy is None:
        return {}
    return policy.fairshare_policy


def is_waiting(job: Job) -> bool:
    """A RUNNABLE job the planner may place (no cancel or terminate request pending)."""
    return job.status is JobStatus.RUNNABLE and lifecycle.requested_stop_reason(job) is None


@dataclass(frozen=True, slots=True)
class FairShare:
    """A fair-share queue's shares at one moment, before this round's placements."""

    window_ms: int
    compute_reservation: int
    # Shares with RUNNABLE heads or jobs in STARTING/RUNNING.
    active_shares: frozenset[str]
    weights: Mapping[str, float]
    # weight x (vCPUs held + decayed past usage + usage of the running attempts), per share.
    usage: Mapping[str, float]
    # vCPUs held by the queue's STARTING/RUNNING jobs, every share together.
    held_vcpus: float

    def weight(self, share: str) -> float:
        return self.weights.get(share, 1.0)


def fair_share(
    snapshot: Snapshot,
    queue: JobQueue,
    policy: Document,
    heads: Mapping[str, Sequence[Job]],
    active: Iterable[Job],
    now: int,
    ended: Mapping[str, float] | None = None,
) -> FairShare:
    """The usage and weights of the shares of `queue`, from its heads in the snapshot, the jobs
    holding capacity (`active`, any queue: only this one's count), its stored usage rows, and
    `ended`: per share, the usage at `now` of attempts that ended since the rows were read.

    A share with heads in the snapshot is active even if this round ends them: the number of
    active shares must not depend on how many heads a snapshot holds beyond the first.
    """
    window = fairshare.decay_window_ms(policy)
    held: dict[str, float] = {}
    running: dict[str, float] = {}
    held_vcpus = 0.0
    for job in active:
        if job.job_queue != queue.name or not job.status.is_active:
            continue
        vcpus = job.resources.vcpus
        held_vcpus += vcpus
        share = job.share_identifier
        if share is None:
            continue
        held[share] = held.get(share, 0.0) + vcpus
        attempt = job.current_attempt
        if attempt is not None:
            running[share] = running.get(share, 0.0) + fairshare.attempt_usage(
                vcpus, attempt.placed_at, now, window
            )
    active_shares = frozenset(held) | frozenset(share for share, jobs in heads.items() if jobs)
    rows = snapshot.share_usage.get(queue.name, {})
    weights = fairshare.share_weights(policy, active_shares, active_shares)
    usage: dict[str, float] = {}
    for share in active_shares:
        row = rows.get(share)
        past = fairshare.decayed(row.value, row.at, now, window) if row is not None else 0.0
        if ended is not None:
            past += ended.get(share, 0.0)
        total = held.get(share, 0.0) + past + running.get(share, 0.0)
        usage[share] = weights[share] * total
    return FairShare(
        window_ms=window,
        compute_reservation=fairshare.compute_reservation(policy),
        active_shares=active_shares,
        weights=weights,
        usage=usage,
        held_vcpus=held_vcpus,
    )


def fair_share_order(
    heads: Mapping[str, Sequence[Job]],
    state: FairShare,
    waiting: Callable[[Job], bool] = is_waiting,
) -> Iterator[Job]:
    """Jobs of a fair-share queue in dispatch order (docs/aws-behaviour.md#fair-share).

    Repeatedly the share with the lowest usage that still has heads gives its next head (ties:
    the share whose next head is earliest in run order); each job counts towards its share's
    usage as if placed, so one round spreads its placements as the weights say.

    Heads that are not `waiting` (a cancel pending, or ended this round) come out where they
    stand, each followed in the same turn by its share's next job, and weigh nothing: the
    planner applies or skips them as it walks. Where the walk stops depends only on heads it
    reached, so a snapshot with more heads per share gives the same plan unless a share's
    last head was reached (planner.heads_taken).
    """
    pending = {share: share_order(jobs) for share, jobs in heads.items() if jobs}
    position = dict.fromkeys(pending, 0)
    usage = {share: state.usage.get(share, 0.0) for share in pending}

    def turn(share: str) -> tuple[float, int, int, str]:
        following = pending[share][position[share]]
        return (usage[share], following.run_order, following.seq, share)

    choice = [turn(share) for share in pending]
    heapq.heapify(choice)
    while choice:
        share = heapq.heappop(choice)[-1]
        jobs = pending[share]
        while position[share] < len(jobs):
            job = jobs[position[share]]
            position[share] += 1
            counts = waiting(job)  # before the walk acts on it
            yield job
            if counts:
                usage[share] += state.weight(share) * job.resources.vcpus
                break
        if position[share] < len(jobs):
            heapq.heappush(choice, turn(share))


def front_of_queue(snapshot: Snapshot, queue: JobQueue, now: int, limit: int) -> tuple[Job, ...]:
    """The first `limit` RUNNABLE jobs of `queue` in the order the planner considers them."""
    policy = fair_share_policy(snapshot, queue)
    if policy is None:
        heads = fifo_order(job for job in snapshot.runnable.get(queue.name, ()) if is_waiting(job))
        return heads[:limit]
    by_share = snapshot.runnable_by_share.get(queue.name, {})
    state = fair_share(snapshot, queue, policy, by_share, snapshot.active, now)
    order = (job for job in fair_share_order(by_share, state) if is_waiting(job))
    return tuple(islice(order, limit))


_RUN_ORDER = attrgetter("run_order", "seq")


def _share_key(job: Job) -> tuple[int, int, int]:
    return (-(job.scheduling_priority or 0), job.run_order, job.seq)
