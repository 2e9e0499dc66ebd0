"""The order in which RUNNABLE work is considered: queues by priority, jobs FIFO by run order.

Only ordering lives here (fair share will join it); whether a job fits is the planner's call.
"""

from __future__ import annotations

from collections.abc import Iterable
from operator import attrgetter

from batchyard.domain.model import Job, JobQueue


def dispatch_order(job_queues: Iterable[JobQueue]) -> tuple[JobQueue, ...]:
    """Queues that may place jobs, highest priority first (SPEC §7.1).

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


_RUN_ORDER = attrgetter("run_order", "seq")
