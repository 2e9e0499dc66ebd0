"""plan(snapshot, now): every scheduling decision (status changes, placements, stops, wake-up).

Pure and deterministic: the same snapshot and `now` give the same plan. It never reads a
clock, never mutates its input, and never touches a job's `version` (the store checks it).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    Attempt,
    ComputeEnvironment,
    Document,
    Job,
    JobQueue,
    JobStatus,
    Resources,
    ResourceStatus,
)
from batchyard.scheduling import dependencies, fairshare, ordering
from batchyard.scheduling.snapshot import Plan, Snapshot, UsageAccrual


@dataclass(slots=True)
class _Round:
    """The latest version of every job this round touched, so each job yields one update."""

    snapshot: Snapshot
    now: int
    changed: dict[str, Job] = field(default_factory=dict)
    starts: list[str] = field(default_factory=list)
    stops: list[str] = field(default_factory=list)
    wakeups: list[int] = field(default_factory=list)

    def latest(self, job: Job) -> Job:
        return self.changed.get(job.job_id, job)

    def write(self, job: Job) -> None:
        self.changed[job.job_id] = job

    def wake_at(self, when: int) -> None:
        if when > self.now:
            self.wakeups.append(when)


@dataclass(slots=True)
class _Capacity:
    """What is in use on each compute environment, and what each can hold."""

    snapshot: Snapshot
    used: dict[str, list[float]]  # per compute environment: vCPUs, memory MiB, GPUs

    def vcpu_cap(self, ce: ComputeEnvironment) -> float:
        if ce.max_vcpus is not None:
            return ce.max_vcpus
        host = self.snapshot.host_limits.get(ce.name)
        return host.vcpus if host is not None else math.inf

    def can_ever_fit(self, ce: ComputeEnvironment, need: Resources) -> bool:
        if need.vcpus > self.vcpu_cap(ce):
            return False
        host = self.snapshot.host_limits.get(ce.name)
        return host is None or (need.memory_mib <= host.memory_mib and need.gpus <= host.gpus)

    def fits_now(self, ce: ComputeEnvironment, need: Resources) -> bool:
        vcpus, memory_mib, gpus = self.used.get(ce.name, _NOTHING_USED)
        if vcpus + need.vcpus > self.vcpu_cap(ce):
            return False
        host = self.snapshot.host_limits.get(ce.name)
        return host is None or (
            memory_mib + need.memory_mib <= host.memory_mib and gpus + need.gpus <= host.gpus
        )

    def take(self, ce_name: str, need: Resources) -> None:
        self.take_from(self.used, ce_name, need)

    @staticmethod
    def take_from(used: dict[str, list[float]], ce_name: str, need: Resources) -> None:
        # In place: every round adds up each job holding capacity, hundreds of them.
        held = used.get(ce_name)
        if held is None:
            used[ce_name] = [need.vcpus, need.memory_mib, need.gpus]
        else:
            held[0] += need.vcpus
            held[1] += need.memory_mib
            held[2] += need.gpus


@dataclass(slots=True)
class _Consumables:
    """What each consumable resource has available, less what this round's placements took."""

    available: dict[str, int]

    def fits(self, job: Job) -> bool:
        return all(
            name in self.available and quantity <= self.available[name]
            for name, quantity in _requirements(job).items()
        )

    def take(self, job: Job) -> None:
        for name, quantity in _requirements(job).items():
            self.available[name] -= quantity


@dataclass(slots=True)
class _Reservation:
    """computeReservation on a fair-share queue: what its active shares may hold together."""

    usable_vcpus: float
    held_vcpus: float

    def fits(self, job: Job) -> bool:
        # A hair of slack so that float rounding of the fraction never refuses an exact fit.
        return self.held_vcpus + job.resources.vcpus <= self.usable_vcpus + 1e-9

    def take(self, job: Job) -> None:
        self.held_vcpus += job.resources.vcpus


_HOLDING = frozenset(status for status in JobStatus if status.is_active)


def plan(snapshot: Snapshot, now: int) -> Plan:
    """Decide what happens next to the jobs of `snapshot` at time `now` (epoch ms)."""
    round_ = _Round(snapshot, now)

    # 1. Evaluate the jobs something happened to: dependencies, array parents, cancel and
    #    terminate requests, ended attempts.
    for job in snapshot.to_evaluate:
        current = round_.latest(job)
        decided = _evaluate(current, snapshot, now)
        if decided is not None:
            round_.write(decided)
            if decided.stop_cause is not None and current.stop_cause is None:
                round_.stops.append(job.job_id)

    # 2. Timeouts: order a stop for every running attempt past its deadline. The jobs that
    #    still hold capacity are those whose attempt did not end in step 1; the others hold
    #    nothing any more, but their fair-share usage counts from this round on, not from the
    #    next snapshot's stored rows. (One pass: hundreds of jobs hold capacity every round.)
    holding: list[Job] = []
    ended: list[Job] = []  # as the snapshot had them, with the attempt that ended
    for job in snapshot.active:
        current = round_.latest(job)
        if current.status not in _HOLDING:
            ended.append(job)
            continue
        if current.timeout_seconds is not None:
            stopped = lifecycle.order_timeout_stop(current, now)
            if stopped is not None:
                round_.write(stopped)
                round_.stops.append(job.job_id)
                current = stopped
            else:
                deadline = lifecycle.attempt_deadline(current)
                if deadline is not None and current.stop_cause is None:
                    round_.wake_at(deadline)
        holding.append(current)

    # 3. Placement: queues by priority, each in its order (FIFO or fair share) up to its
    #    first job that does not fit.
    capacity = _Capacity(snapshot, _used_capacity(holding))
    consumables = _Consumables(
        {name: r.available_quantity for name, r in snapshot.consumable_resources.items()}
    )
    accruals = _accruals(round_, ended)
    for queue in ordering.dispatch_order(snapshot.job_queues):
        policy = ordering.fair_share_policy(snapshot, queue)
        if policy is None:
            fifo = ordering.fifo_order(snapshot.runnable.get(queue.name, ()))
            _place_queue(round_, capacity, consumables, queue, fifo, None)
        else:
            in_queue = [a for a in accruals if a.job_queue == queue.name]
            _place_fair_share_queue(round_, capacity, consumables, queue, policy, holding, in_queue)

    # 4. Assemble: one update per changed job, the rest of to_evaluate is marked evaluated.
    evaluated: list[tuple[str, int]] = []
    seen: set[str] = set()
    for job in snapshot.to_evaluate:
        if job.job_id not in round_.changed and job.job_id not in seen:
            seen.add(job.job_id)
            evaluated.append((job.job_id, job.version))
    return Plan(
        updates=tuple(round_.changed.values()),
        evaluated=tuple(evaluated),
        starts=tuple(round_.starts),
        stops=tuple(round_.stops),
        accruals=accruals,
        next_wakeup=min(round_.wakeups) if round_.wakeups else None,
    )


def heads_taken(
    snapshot: Snapshot, decided: Plan, read: Callable[[str], int]
) -> dict[str, tuple[int, bool]]:
    """Per queue: how many of its RUNNABLE heads `decided` took (placed, or ended this round;
    under fair share, the most of any one share), and whether it went past the last head of
    a read that `read(queue)` may have cut short. A snapshot holding more heads of that queue
    could then give another plan; otherwise more heads change nothing, since placement in the
    queue stopped at a head it was given."""
    status = {job.job_id: job.status for job in decided.updates}

    def taken(heads: Sequence[Job]) -> int:
        return sum(
            status.get(job.job_id, JobStatus.RUNNABLE) is not JobStatus.RUNNABLE for job in heads
        )

    def reached_the_last(heads: Sequence[Job], last: Job, limit: int) -> bool:
        return (
            len(heads) >= limit
            and status.get(last.job_id, JobStatus.RUNNABLE) is not JobStatus.RUNNABLE
        )

    result: dict[str, tuple[int, bool]] = {}
    for name, heads in snapshot.runnable.items():
        if heads:
            last = ordering.fifo_order(heads)[-1]
            result[name] = (taken(heads), reached_the_last(heads, last, read(name)))
    for name, shares in snapshot.runnable_by_share.items():
        # Each share's heads are read up to the limit: a share that ran out of heads hands
        # its turn to the others, which more heads of its own might have taken.
        most, short = 0, False
        for heads in shares.values():
            if heads:
                most = max(most, taken(heads))
                last = ordering.share_order(heads)[-1]
                short = short or reached_the_last(heads, last, read(name))
        result[name] = (most, short)
    return result


def _evaluate(job: Job, snapshot: Snapshot, now: int) -> Job | None:
    """Step 1 for one job: its next version, or None when nothing changes."""
    if job.status.is_terminal:
        return None
    if job.is_array_parent:
        return dependencies.evaluate_array_parent(job, now)
    if job.status in (JobStatus.SUBMITTED, JobStatus.PENDING):
        return dependencies.evaluate_waiting(job, snapshot.dependency_status, now)
    if job.status is JobStatus.RUNNABLE:
        return lifecycle.cancel_unstarted(job, now)
    # STARTING / RUNNING
    settled = lifecycle.settle_ended_attempt(job)
    if settled is not None:
        return settled
    return lifecycle.order_terminate_stop(job)


_NOTHING_USED = (0.0, 0.0, 0.0)


def _used_capacity(holding: Iterable[Job]) -> dict[str, list[float]]:
    used: dict[str, list[float]] = {}
    for job in holding:
        if job.compute_environment is not None:
            _Capacity.take_from(used, job.compute_environment, job.resources)
    return used


def _place_fair_share_queue(
    round_: _Round,
    capacity: _Capacity,
    consumables: _Consumables,
    queue: JobQueue,
    policy: Document,
    holding: list[Job],
    ended: list[UsageAccrual],
) -> None:
    """Walk a fair-share queue in ordering.fair_share_order, within its compute reservation."""
    snapshot, now = round_.snapshot, round_.now
    heads = snapshot.runnable_by_share.get(queue.name, {})
    ended_usage: dict[str, float] = {}
    for accrual in ended:
        share = accrual.share_identifier
        ended_usage[share] = ended_usage.get(share, 0.0) + accrual.amount
    state = ordering.fair_share(snapshot, queue, policy, heads, holding, now, ended_usage)
    usable = sum(
        capacity.vcpu_cap(ce) for ce in _compute_environments(snapshot, queue) if ce.can_place
    )
    fraction = fairshare.usable_fraction(state.compute_reservation, len(state.active_shares))
    reservation = None
    if fraction < 1.0 and not math.isinf(usable):
        reservation = _Reservation(usable * fraction, state.held_vcpus)
    order = ordering.fair_share_order(
        heads, state, lambda job: ordering.is_waiting(round_.latest(job))
    )
    _place_queue(round_, capacity, consumables, queue, order, reservation)


def _place_queue(
    round_: _Round,
    capacity: _Capacity,
    consumables: _Consumables,
    queue: JobQueue,
    jobs: Iterable[Job],
    reservation: _Reservation | None,
) -> None:
    """Place `jobs` in the order given, up to the first that does not fit (head-of-line:
    docs/aws-behaviour.md#queues-and-compute-environments)."""
    now = round_.now
    known = _compute_environments(round_.snapshot, queue)
    usable = [ce for ce in known if ce.can_place]
    for job in jobs:
        current = round_.latest(job)
        if current.status is not JobStatus.RUNNABLE:
            continue  # ended earlier this round
        cancelled = lifecycle.cancel_unstarted(current, now)
        if cancelled is not None:
            # A cancel whose evaluation did not make this snapshot's to_evaluate.
            round_.write(cancelled)
            continue
        target = next((ce for ce in usable if capacity.fits_now(ce, current.resources)), None)
        if (
            target is not None
            and consumables.fits(current)
            and (reservation is None or reservation.fits(current))
        ):
            round_.write(_place(current, target.name, now))
            round_.starts.append(job.job_id)
            capacity.take(target.name, current.resources)
            consumables.take(current)
            if reservation is not None:
                reservation.take(current)
            continue
        if not _blocked_head(round_, capacity, queue, current, known, usable):
            return


def _compute_environments(snapshot: Snapshot, queue: JobQueue) -> list[ComputeEnvironment]:
    return [
        snapshot.compute_environments[name]
        for name in queue.compute_environment_names
        if name in snapshot.compute_environments
    ]


def _requirements(job: Job) -> dict[str, int]:
    needs: dict[str, int] = {}
    for requirement in job.consumable_resources:
        needs[requirement.resource] = needs.get(requirement.resource, 0) + requirement.quantity
    return needs


def _accruals(round_: _Round, ended: Iterable[Job]) -> tuple[UsageAccrual, ...]:
    """The fair-share usage of each attempt of a fair-share queue that ended this round
    (`ended`: the jobs as the snapshot had them, before this round)."""
    snapshot, now = round_.snapshot, round_.now
    queues = {queue.name: queue for queue in snapshot.job_queues}
    accruals: list[UsageAccrual] = []
    for job in ended:
        queue = queues.get(job.job_queue)
        attempt = job.current_attempt
        share = job.share_identifier
        if queue is None or attempt is None or share is None:
            continue
        policy = ordering.fair_share_policy(snapshot, queue)
        if policy is None:
            continue
        window = fairshare.decay_window_ms(policy)
        last = next(
            (a for a in round_.latest(job).attempts if a.task_id == attempt.task_id), attempt
        )
        stopped = last.stopped_at if last.stopped_at is not None else now
        usage = fairshare.attempt_usage(job.resources.vcpus, attempt.placed_at, stopped, window)
        accruals.append(
            UsageAccrual(
                job_id=job.job_id,
                job_queue=queue.name,
                share_identifier=share,
                amount=fairshare.decayed(usage, stopped, now, window),
                at=now,
                window_ms=window,
            )
        )
    return tuple(accruals)


def _place(job: Job, ce_name: str, now: int) -> Job:
    task_id = lifecycle.new_task_id(job.job_id, len(job.attempts) + 1)
    attempt = Attempt(
        task_id=task_id,
        compute_environment=ce_name,
        placed_at=now,
        log_stream_name=lifecycle.log_stream_name(job.job_definition_name, task_id),
    )
    return lifecycle.replace_job(
        job,
        status=JobStatus.STARTING,
        compute_environment=ce_name,
        attempts=(*job.attempts, attempt),
        status_reason=None,
        blocked_since=None,
        stop_cause=None,
    )


def _blocked_reason(
    capacity: _Capacity,
    job: Job,
    known: list[ComputeEnvironment],
    usable: list[ComputeEnvironment],
) -> str | None:
    """Why a head job that does not fit now can never fit; None if it only has to wait."""
    if not usable:
        if known and all(ce.status is ResourceStatus.INVALID for ce in known):
            return lifecycle.CE_INVALID
        return None  # DISABLED or changing CEs: wait for them
    if any(capacity.can_ever_fit(ce, job.resources) for ce in usable):
        return None
    if all(job.resources.vcpus > capacity.vcpu_cap(ce) for ce in usable):
        return lifecycle.COMPUTE_ENVIRONMENT_MAX_RESOURCE
    return lifecycle.JOB_RESOURCE_REQUIREMENT


def _blocked_head(
    round_: _Round,
    capacity: _Capacity,
    queue: JobQueue,
    job: Job,
    known: list[ComputeEnvironment],
    usable: list[ComputeEnvironment],
) -> bool:
    """Record why the head job is stuck; True when a time-limit action cancelled it."""
    now = round_.now
    reason = _blocked_reason(capacity, job, known, usable)
    if reason is None:
        if job.blocked_since is not None or job.status_reason in lifecycle.BLOCKED_REASON_CODES:
            round_.write(lifecycle.replace_job(job, status_reason=None, blocked_since=None))
        return False
    if job.status_reason != reason or job.blocked_since is None:
        job = lifecycle.replace_job(job, status_reason=reason, blocked_since=now)
        round_.write(job)
    blocked_since = job.blocked_since if job.blocked_since is not None else now
    code = lifecycle.BLOCKED_REASON_CODES[reason]
    limits = [
        action.max_time_seconds
        for action in queue.job_state_time_limit_actions
        if action.state == JobStatus.RUNNABLE.value and action.reason == code
    ]
    if not limits:
        return False
    deadline = blocked_since + min(limits) * 1000
    if now >= deadline:
        round_.write(
            lifecycle.fail(
                job, lifecycle.TIME_LIMIT_CANCEL.format(reason=code), now, cancelled=True
            )
        )
        return True
    round_.wake_at(deadline)
    return False
