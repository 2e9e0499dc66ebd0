"""The immutable view the planner reads and the plan it returns.

A snapshot is bounded: it carries the jobs that need a decision, the heads of the RUNNABLE
queues and the jobs holding capacity, never the whole queue, so a decision's cost does not grow
with the queue's length.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from batchyard.domain.model import (
    ComputeEnvironment,
    ConsumableResource,
    Job,
    JobQueue,
    JobStatus,
    Resources,
    SchedulingPolicy,
    ShareUsage,
)


@dataclass(frozen=True, slots=True)
class Snapshot:
    compute_environments: Mapping[str, ComputeEnvironment]
    job_queues: tuple[JobQueue, ...]
    scheduling_policies: Mapping[str, SchedulingPolicy] = field(default_factory=dict)
    # Jobs in STARTING or RUNNING: they hold capacity and may need a stop.
    active: tuple[Job, ...] = ()
    # Per FIFO queue name, the first RUNNABLE jobs in run order (bounded).
    runnable: Mapping[str, tuple[Job, ...]] = field(default_factory=dict)
    # Per fair-share queue name, per share identifier, the first RUNNABLE jobs of that share
    # in share order: schedulingPriority descending, then run order (bounded per share).
    # Fair-share queues have no entry in `runnable`.
    runnable_by_share: Mapping[str, Mapping[str, tuple[Job, ...]]] = field(default_factory=dict)
    # Per fair-share queue name, the stored usage of each share it has seen.
    share_usage: Mapping[str, Mapping[str, ShareUsage]] = field(default_factory=dict)
    # Every consumable resource by name.
    consumable_resources: Mapping[str, ConsumableResource] = field(default_factory=dict)
    # Jobs something happened to since their last decision (bounded): new submissions,
    # a dependency or child that changed, a cancel/terminate request, an attempt that ended.
    to_evaluate: tuple[Job, ...] = ()
    # Current status of every job named in to_evaluate's wait_for.
    dependency_status: Mapping[str, JobStatus] = field(default_factory=dict)
    # What each compute environment's runtime host holds in total (vCPUs, memory, GPUs): placed
    # jobs together never exceed it. Filled by the dispatcher from its runtimes, not the store.
    host_limits: Mapping[str, Resources] = field(default_factory=dict)
    # Jobs the store read but could not decode, by id: why. They are in no other field: the
    # planner never sees them; the dispatcher has the store fail them.
    unreadable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class UsageAccrual:
    """Fair-share usage of an attempt that ended, to add to its share's stored usage.

    The store applies it only if the update of job `job_id` in the same plan applied:
    stored.value = decayed(stored.value, stored.at -> at, window_ms) + amount; stored.at = at.
    """

    job_id: str
    job_queue: str
    share_identifier: str
    amount: float  # valued at `at`
    at: int
    window_ms: int


@dataclass(frozen=True, slots=True)
class Plan:
    """What should happen next. The store applies it; the dispatcher carries it out."""

    # New versions of jobs. Each carries the version it was read at; the store applies an
    # update only if the job has not changed since (otherwise it is decided again next round).
    updates: tuple[Job, ...] = ()
    # Jobs looked at that need no change: (job_id, version) whose evaluation flag is cleared.
    evaluated: tuple[tuple[str, int], ...] = ()
    # Job ids placed this round (their update is STARTING with a new attempt): start them.
    starts: tuple[str, ...] = ()
    # Job ids whose current attempt must be stopped (their update carries stop_cause).
    stops: tuple[str, ...] = ()
    # Fair-share usage of attempts that ended this round (fair-share queues only).
    accruals: tuple[UsageAccrual, ...] = ()
    # The earliest future time (epoch ms) at which a decision is due with no other event
    # (a timeout, a time-limit action); None when nothing is due.
    next_wakeup: int | None = None

    @property
    def is_empty(self) -> bool:
        return not (self.updates or self.evaluated)
