"""The only loop: snapshot -> plan -> commit -> start/stop attempts -> record what runtimes report.

The dispatcher decides nothing: pure functions do, and it applies what they return. The planner
decides about jobs (scheduling/planner.py), resource_status.settle where resources in flux
settle, HeadReads how many heads of each queue to read, attempt_environment what an attempt's
environment holds. The dispatcher records facts (an attempt started, an attempt exited), applies
plans and changes through the store, and carries them out on the runtimes.

Two reads happen outside the round's snapshot, because the snapshot does not carry what they
need: an array parent's size when its first child starts (remembered per array), and the jobs
of a deleted queue, read a page per status each round while the queue drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine, Mapping
from dataclasses import replace
from typing import Any

from batchyard import disk_full, health
from batchyard.domain import lifecycle
from batchyard.domain.clock import Clock
from batchyard.domain.job_environment import attempt_environment
from batchyard.domain.model import ComputeEnvironment, Job, JobStatus
from batchyard.runtimes.base import (
    AttemptExited,
    AttemptRef,
    AttemptSpec,
    AttemptStarted,
    Runtime,
    RuntimeEvent,
    failed_to_start,
    host_lost,
)
from batchyard.scheduling import resource_status
from batchyard.scheduling.head_reads import HeadReads
from batchyard.scheduling.isolation import plan_isolating
from batchyard.scheduling.planner import heads_taken, plan
from batchyard.scheduling.snapshot import Plan, Snapshot
from batchyard.store import quarantine
from batchyard.store.base import JobMutation, JobQuery, SnapshotLimits, Store

log = logging.getLogger("batchyard.dispatcher")

JOB_QUEUE_DELETED = "JobQueue deleted"
NETWORK_MODE_TAG = "batchyard:network-mode"  # a compute environment's container network
# A round runs on the event loop the API shares: evaluating a few hundred jobs at a time keeps
# each round (and so the wait of a request that arrives during one) in tens of milliseconds,
# while a new 10,000-child array still takes only a handful of rounds.
DEFAULT_LIMITS = SnapshotLimits(to_evaluate=1024)
# RUNNABLE heads read of a queue in a round, at least. A round places at most what its free
# capacity allows, usually a few jobs, and a queue below one whose head is blocked places none,
# so reading up to limits.runnable_per_queue heads of every queue would mostly read jobs that
# stay put: each queue's read follows what its last rounds took (scheduling/head_reads.py).
_RUNNABLE_READ = 4
# How long the next round may wait for runtime reports after a round that changed jobs.
_GATHER_SECONDS = 0.001
# Array sizes remembered for AWS_BATCH_JOB_ARRAY_SIZE: the most recent arrays' (a few KB).
_ARRAY_SIZES_KEPT = 1024
# After a failed round, or while a disk is full: how long until the next try.
_RETRY_SECONDS = 0.5
_UNFINISHED = (
    JobStatus.SUBMITTED,
    JobStatus.PENDING,
    JobStatus.RUNNABLE,
    JobStatus.STARTING,
    JobStatus.RUNNING,
)


class Dispatcher:
    def __init__(
        self,
        store: Store,
        runtimes: Mapping[str, Runtime],
        clock: Clock,
        *,
        log_group: str = "/aws/batch/job",
        stop_grace_seconds: float = 30.0,
        limits: SnapshotLimits = DEFAULT_LIMITS,
    ) -> None:
        self.store = store
        self.runtimes = dict(runtimes)
        self.clock = clock
        self.log_group = log_group
        self.stop_grace_seconds = stop_grace_seconds
        self.limits = limits
        self._head_reads = HeadReads(
            least=min(_RUNNABLE_READ, limits.runnable_per_queue),
            full=limits.runnable_per_queue,
        )
        self._more_to_evaluate = False
        self._wake = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._array_sizes: dict[str, int] = {}
        self._runtime_of_job: dict[str, str] = {}
        # What runtimes reported since the last round: recorded in one write at its start.
        self._reported: list[RuntimeEvent] = []

    # -- wiring ----------------------------------------------------------------------------

    def wake(self) -> None:
        """Ask for a new round soon. Safe to call from any thread."""
        loop = self._loop
        if loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            with contextlib.suppress(RuntimeError):  # loop closed during shutdown
                loop.call_soon_threadsafe(self._wake.set)

    async def open(self) -> None:
        """Bind to the running loop, open runtimes, and reconcile attempts left by a restart."""
        self._loop = asyncio.get_running_loop()
        self.store.on_change(self.wake)
        for runtime in self.runtimes.values():
            await runtime.open(self.record)
        await self._recover()

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        for runtime in self.runtimes.values():
            await runtime.close()
        try:
            self._record_reported()  # facts already heard of are kept, not heard again
        except Exception as error:
            if not disk_full.is_disk_full(error):
                log.exception("recording the last runtime events failed")
            # Else the next start's recovery finds what it can (process exit codes stay).

    async def run(self) -> None:
        """Rounds forever: a round whenever something changed or a deadline is due."""
        reports = health.current()
        while True:
            try:
                result = await self.step()
            except Exception as error:
                if not disk_full.is_disk_full(error):  # the store warned of that once
                    log.exception("dispatch round failed; retrying")
                reports.round_failed(error)
                await asyncio.sleep(_RETRY_SECONDS)
                continue
            reports.round_succeeded()
            if result.updates or self._more_to_evaluate:
                # Decisions beget decisions (dependents, array parents), and flagged jobs may
                # remain: go again soon, once the attempts just placed have started and the
                # API had its turn. A plan that only marked jobs evaluated changed nothing
                # another round could act on.
                await asyncio.sleep(0)
            else:
                timeout = None
                if result.next_wakeup is not None:
                    timeout = max(0.0, (result.next_wakeup - self.clock.now_ms()) / 1000)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout)
            # Give what follows a moment to arrive (runtime reports come in bursts, clients
            # submit in parallel): it joins the next round instead of each making its own.
            # A round costs about as much for one job as for several.
            await asyncio.sleep(_GATHER_SECONDS)

    # -- one round -------------------------------------------------------------------------

    async def step(self) -> Plan:
        # 1. Record what the runtimes reported since the last round, in one write.
        self._record_reported()
        if disk_full.episodes.full():
            # A placement now would start an attempt that may find no room for its
            # directory, and a plan could not be stored: wait for space (the exits heard of
            # meanwhile are recorded at the start of each round).
            self._wake.clear()
            self._more_to_evaluate = False
            return Plan(next_wakeup=self.clock.now_ms() + int(_RETRY_SECONDS * 1000))
        # 2. Read a bounded snapshot. Resources whose status is in flux (CREATING, UPDATING,
        #    DELETING) settle first, then the snapshot is read again.
        reads = self._head_reads
        snapshot = self._snapshot(reads)
        if self._settle_resources(snapshot):
            snapshot = self._snapshot(reads)
        # Every write so far (the reports just recorded, settled resources) is in this
        # snapshot: the wake-ups they caused are answered by this round.
        self._wake.clear()
        self._more_to_evaluate = len(snapshot.to_evaluate) >= self.limits.to_evaluate
        # 3. Decide.
        snapshot, decided = self._plan(snapshot, reads, self.clock.now_ms())
        if decided.is_empty:
            return decided
        # 4. Apply; only what committed is carried out. The store's wake-up for this write
        #    is not needed: the loop goes again after a round that changed jobs.
        applied = self.store.commit(decided)
        self._wake.clear()
        updated = {job.job_id: job for job in decided.updates if job.job_id in applied}
        # 5. Start placed attempts and stop what must stop.
        for job_id in decided.starts:
            if job_id in updated:
                ce = snapshot.compute_environments[updated[job_id].compute_environment or ""]
                self._spawn(self._start(updated[job_id], ce))
        for job_id in decided.stops:
            if job_id in updated:
                job = updated[job_id]
                placed_on = snapshot.compute_environments.get(job.compute_environment or "")
                runtime = self._runtime_of_job.get(job_id) or (placed_on and placed_on.runtime)
                self._spawn(self._stop(job, runtime or ""))
        return decided

    def _plan(self, snapshot: Snapshot, reads: HeadReads, now: int) -> tuple[Snapshot, Plan]:
        """The plan for `snapshot`, read with `reads`. A plan that took every RUNNABLE head
        read of a queue might have placed more: plan again on a snapshot with more heads of
        that queue, as `reads.grown` says. Sets the reads of the next round."""
        snapshot, decided = self._plan_once(snapshot, now)
        while True:
            taken = heads_taken(snapshot, decided, reads.of)
            grown = reads.grown(taken)
            if grown is None:
                break
            reads = grown
            snapshot, decided = self._plan_once(self._snapshot(reads), now)
        self._head_reads = reads.next_round(taken)
        return snapshot, decided

    def _plan_once(self, snapshot: Snapshot, now: int) -> tuple[Snapshot, Plan]:
        """plan(snapshot, now); if it raises, the plan without the jobs it cannot plan (stored
        FAILED) or the queues it cannot (left for this round), and the snapshot planned."""
        try:
            return snapshot, plan(snapshot, now)
        except Exception:
            log.exception("planning failed; planning each job alone to find the ones to blame")
        isolated = plan_isolating(snapshot, now)
        for name, error in isolated.queues.items():
            log.error(
                "job queue %s cannot be planned (%s); its jobs wait this round",
                name,
                quarantine.describe(error),
            )
        if isolated.jobs:
            self._quarantine(
                {
                    job_id: quarantine.unplannable_reason(error)
                    for job_id, error in isolated.jobs.items()
                }
            )
        return isolated.snapshot, isolated.plan

    def _quarantine(self, reasons: Mapping[str, str]) -> None:
        """Have the store fail jobs that cannot be read or planned, each logged. If that write
        fails the round goes on without them (the snapshot and plan leave them out), and the
        next round tries again."""
        try:
            stored = self.store.quarantine_jobs(reasons, self.clock.now_ms())
        except Exception:
            log.exception("storing jobs %s as FAILED failed; trying next round", sorted(reasons))
            return
        for job_id in stored:
            log.error("job %s stored as FAILED: %s", job_id, reasons[job_id])

    def _snapshot(self, reads: HeadReads) -> Snapshot:
        """A snapshot with the RUNNABLE heads `reads` says, and the runtimes' host limits."""
        read = replace(self.limits, runnable_per_queue=reads.least, runnable_read=reads.more)
        snapshot = self.store.snapshot(read)
        if snapshot.unreadable:
            self._quarantine(snapshot.unreadable)
        host_limits = {}
        for name, ce in snapshot.compute_environments.items():
            runtime = self.runtimes.get(ce.runtime)
            if runtime is not None:
                host_limits[name] = runtime.host_limits()
        return replace(snapshot, host_limits=host_limits)

    def _spawn(self, coroutine: Coroutine[Any, Any, None]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _start(self, job: Job, ce: ComputeEnvironment) -> None:
        attempt = job.current_attempt
        assert attempt is not None
        runtime = self.runtimes.get(ce.runtime)
        if runtime is None:
            self._failed_to_start(
                job.job_id, attempt.task_id, f"runtime {ce.runtime} is not configured"
            )
            return
        self._runtime_of_job[job.job_id] = ce.runtime
        try:
            await runtime.start(self._attempt_spec(job, ce))
        except Exception as exc:
            log.exception("runtime %s could not start job %s", ce.runtime, job.job_id)
            self._failed_to_start(job.job_id, attempt.task_id, str(exc))

    def _failed_to_start(self, job_id: str, task_id: str, why: str) -> None:
        """Record the attempt's exit as AWS reports a container that could not start."""
        reason = f"CannotStartContainerError: {why}"
        self.record(failed_to_start(job_id, task_id, self.clock.now_ms(), reason))

    async def _stop(self, job: Job, runtime_name: str) -> None:
        attempt = job.current_attempt
        runtime = self.runtimes.get(runtime_name)
        if attempt is None or runtime is None:
            return
        try:
            await runtime.stop(job.job_id, attempt.task_id, self.stop_grace_seconds)
        except Exception:
            log.exception("runtime could not stop job %s", job.job_id)

    def _attempt_spec(self, job: Job, ce: ComputeEnvironment) -> AttemptSpec:
        attempt = job.current_attempt
        assert attempt is not None
        array_size = None
        if job.array_parent_id is not None:
            array_size = self._array_size(job.array_parent_id)
        return AttemptSpec(
            job_id=job.job_id,
            task_id=attempt.task_id,
            attempt_number=len(job.attempts),
            job_queue=job.job_queue,
            compute_environment=ce.name,
            job_definition_name=job.job_definition_name,
            command=tuple(job.container.get("command") or ()),
            environment=attempt_environment(job, ce.name, array_size),
            resources=job.resources,
            container=job.container,
            log_group=self.log_group,
            log_stream_name=attempt.log_stream_name
            or lifecycle.log_stream_name(job.job_definition_name, attempt.task_id),
            network_mode=ce.tags.get(NETWORK_MODE_TAG),
        )

    def _array_size(self, parent_id: str) -> int:
        """The array parent's size, read once per array: its children start one after another,
        and each would otherwise read its parent. The snapshot does not carry parents, so this
        is the one store read a start makes; the memo keeps the latest arrays only."""
        size = self._array_sizes.get(parent_id)
        if size is None:
            parent = self.store.get_job(parent_id)
            size = parent.array_size if parent is not None and parent.array_size else 0
            if len(self._array_sizes) >= _ARRAY_SIZES_KEPT:
                del self._array_sizes[next(iter(self._array_sizes))]  # the oldest array
            self._array_sizes[parent_id] = size
        return size

    # -- facts from runtimes ---------------------------------------------------------------

    def record(self, event: RuntimeEvent) -> None:
        """Take note of what a runtime reported; the next round records it in the store.

        Called by runtimes on the dispatcher's loop. Reports that arrive together (a burst of
        exits) are recorded in one store write instead of one each.
        """
        self._reported.append(event)
        if isinstance(event, AttemptExited):
            self._runtime_of_job.pop(event.job_id, None)
        self.wake()

    def _record_reported(self) -> None:
        if not self._reported:
            return
        reported, self._reported = self._reported, []
        try:
            self.store.mutate_jobs([(event.job_id, _fact(event)) for event in reported])
        except BaseException:
            self._reported[:0] = reported  # not recorded: try again next round
            raise
        for event in reported:
            if isinstance(event, AttemptExited) and event.recorded is not None:
                try:
                    event.recorded()
                except Exception:
                    log.exception("Releasing the exit record of %s failed", event.task_id)

    async def _recover(self) -> None:
        """Attempts the store says are placed or running: re-attach, or let them fail.

        Every runtime is asked, even with nothing to re-attach, so it can reap what a previous
        server left behind (finished containers, orphaned attempt directories)."""
        by_runtime: dict[str, list[AttemptRef]] = {name: [] for name in self.runtimes}
        to_stop: list[tuple[Job, str]] = []
        runtime_of_ce: dict[str, str] = {}  # compute environment -> its runtime ("" if gone)
        for job in self.store.active_jobs():
            attempt = job.current_attempt
            if attempt is None or attempt.has_ended:
                continue
            placed_on = job.compute_environment or ""
            if placed_on not in runtime_of_ce:
                ce = self.store.get_compute_environment(placed_on) if placed_on else None
                runtime_of_ce[placed_on] = ce.runtime if ce is not None else ""
            runtime_name = runtime_of_ce[placed_on]
            self._runtime_of_job[job.job_id] = runtime_name
            by_runtime.setdefault(runtime_name, []).append(
                AttemptRef(
                    job_id=job.job_id,
                    task_id=attempt.task_id,
                    log_group=self.log_group,
                    log_stream_name=attempt.log_stream_name
                    or lifecycle.log_stream_name(job.job_definition_name, attempt.task_id),
                    runtime_handle=attempt.runtime_handle,
                )
            )
            if job.stop_cause is not None:
                to_stop.append((job, runtime_name))
        for name, refs in by_runtime.items():
            runtime = self.runtimes.get(name)
            if runtime is None:
                for ref in refs:
                    reason = f"runtime {name} is not configured on this server"
                    self.record(host_lost(ref.job_id, ref.task_id, self.clock.now_ms(), reason))
                continue
            await runtime.recover(refs)
        for job, runtime_name in to_stop:
            self._spawn(self._stop(job, runtime_name))

    # -- resources -------------------------------------------------------------------------

    def _settle_resources(self, snapshot: Snapshot) -> bool:
        """Apply where the snapshot's resources in flux settle (scheduling/resource_status.py);
        True if any was in flux."""
        changes = resource_status.settle(
            snapshot.compute_environments.values(),
            snapshot.job_queues,
            self.runtimes.keys(),
            self.clock.now_ms(),
        )
        for change in changes:
            if isinstance(change, resource_status.ComputeEnvironmentSettled):
                self.store.put_compute_environment(change.compute_environment, create=False)
            elif isinstance(change, resource_status.ComputeEnvironmentDeleted):
                self.store.delete_compute_environment(change.name)
            elif isinstance(change, resource_status.JobQueueSettled):
                self.store.put_job_queue(change.job_queue, create=False)
            elif self._drain_deleted_queue(change.name):
                self.store.delete_job_queue(change.name)
        return bool(changes)

    def _drain_deleted_queue(self, queue: str) -> bool:
        """Ask every unfinished job of a deleted queue to end; True once none is left.

        The jobs of a queue are not in the bounded snapshot, so this reads them from the store
        (a page of each unfinished status per round, while the queue is DELETING) and asks them
        to end in one write; the planner then ends each as it would a TerminateJob."""
        left = False
        asked: list[tuple[str, JobMutation]] = []
        parents: list[str] = []
        for status in _UNFINISHED:
            for job in self.store.list_jobs(JobQuery(job_queue=queue, status=status, limit=1000)):
                left = True
                asked.append((job.job_id, _terminate_for_deleted_queue))
                if job.array_size is not None:
                    parents.append(job.job_id)
        if asked:
            self.store.mutate_jobs(asked)
        for parent_id in parents:
            self.store.mutate_array_children(parent_id, _terminate_for_deleted_queue)
        return not left


def _terminate_for_deleted_queue(job: Job) -> Job | None:
    return lifecycle.request_terminate(job, JOB_QUEUE_DELETED)


def _fact(event: RuntimeEvent) -> JobMutation:
    """The store mutation that records one runtime report on its job."""
    if isinstance(event, AttemptStarted):
        return lambda job: lifecycle.attempt_started(
            job, event.task_id, event.started_at, event.runtime_handle
        )
    return lambda job: lifecycle.attempt_exited(
        job,
        event.task_id,
        event.stopped_at,
        event.exit_code,
        event.reason,
        event.status_reason,
    )
