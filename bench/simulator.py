"""The scheduler simulator: the real Dispatcher and planner on the memory store with the fake
runtime, on a virtual clock; and scenario 6 (dispatch decisions per second of wall time with a
short and with a very long RUNNABLE backlog). Drives src only through its public APIs.

    trace = simulate(queues, ces, workload, until_ms)
"""

from __future__ import annotations

import asyncio
import gc
import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import profiling
from batchyard.dispatcher import Dispatcher
from batchyard.domain.model import Job, JobStatus, Resources
from batchyard.runtimes.base import (
    AttemptExited,
    AttemptRef,
    AttemptSpec,
    AttemptStarted,
    Report,
    RuntimeEvent,
)
from batchyard.runtimes.fake import FakeRuntime
from batchyard.scheduling.snapshot import Plan
from batchyard.service import compute_environments, job_definitions, job_queues, jobs
from batchyard.service.context import ServiceContext
from batchyard.store.memory import MemoryStore
from report import Figure, ScenarioResult, median

T0 = 1_700_000_000_000  # virtual epoch ms at the start of every simulation
DEFINITION = "sim"
# The fake runtime's host: capacity comes from the compute environments' maxvCpus alone.
UNLIMITED_HOST = Resources(vcpus=1 << 20, memory_mib=1 << 40, gpus=0)


# -- what is simulated ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ComputeEnvironmentSpec:
    name: str
    max_vcpus: int


@dataclass(frozen=True, slots=True)
class QueueSpec:
    name: str
    priority: int
    compute_environments: tuple[str, ...]
    scheduling_policy_arn: str | None = None


@dataclass(frozen=True, slots=True)
class Submission:
    """One SubmitJob at virtual time at_ms (ms after the start)."""

    at_ms: int
    queue: str
    duration_ms: int
    exit_code: int = 0
    vcpus: int = 1
    memory_mib: int = 64
    name: str = "job"
    share_identifier: str | None = None
    scheduling_priority: int | None = None
    array_size: int | None = None


@dataclass(frozen=True, slots=True)
class TraceEvent:
    at_ms: int  # ms after the start
    job_id: str
    queue: str
    status: str  # a job status, or EXITED when the runtime reported the attempt's end
    share_identifier: str | None = None
    vcpus: float = 0.0


@dataclass(slots=True)
class Trace:
    events: list[TraceEvent] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)  # in submission order
    rounds: int = 0
    decisions: int = 0  # job updates the planner made (placements included)
    placements: int = 0
    end_ms: int = 0  # virtual time reached, ms after the start
    step_seconds: float = 0.0  # wall time spent inside the dispatcher
    step_cpu_seconds: float = 0.0  # CPU time of this thread inside the dispatcher

    def statuses(self) -> dict[str, str]:
        """The last status of every job the trace saw."""
        last: dict[str, str] = {}
        for event in self.events:
            if event.status != "EXITED":
                last[event.job_id] = event.status
        return last


# -- the world --------------------------------------------------------------------------------


class VirtualClock:
    def __init__(self) -> None:
        self.now = T0

    def now_ms(self) -> int:
        return self.now


class _TracedRuntime:
    """The fake runtime, with every event it reports counted (and traced when asked)."""

    name = "fake"

    def __init__(self, inner: FakeRuntime, world: World) -> None:
        self.inner = inner
        self.world = world

    def host_limits(self) -> Resources:
        return self.inner.host_limits()

    async def open(self, report: Report) -> None:
        def traced(event: RuntimeEvent) -> None:
            self.world.on_runtime_event(event)
            report(event)

        await self.inner.open(traced)

    async def start(self, spec: AttemptSpec) -> None:
        await self.inner.start(spec)

    async def stop(self, job_id: str, task_id: str, grace_seconds: float) -> None:
        await self.inner.stop(job_id, task_id, grace_seconds)

    async def recover(self, attempts: Sequence[AttemptRef]) -> None:
        await self.inner.recover(attempts)

    async def close(self) -> None:
        await self.inner.close()


class World:
    """Queues and compute environments made through the service, a dispatcher stepped by hand."""

    def __init__(
        self,
        queues: Sequence[QueueSpec],
        ces: Sequence[ComputeEnvironmentSpec],
        *,
        host: Resources = UNLIMITED_HOST,
        trace: bool = True,
    ) -> None:
        self.clock = VirtualClock()
        self.store = MemoryStore()
        self.fake = FakeRuntime(self.clock, host)
        self.runtime = _TracedRuntime(self.fake, self)
        self.ctx = ServiceContext(store=self.store, clock=self.clock)
        # Compute environments without a runtime tag get the "process" runtime: the fake here.
        self.dispatcher = Dispatcher(self.store, {"process": self.runtime}, self.clock)
        self.queue_specs = tuple(queues)
        self.ce_specs = tuple(ces)
        self.tracing = trace
        self.trace = Trace()
        self._events_seen = 0
        self._last_status: dict[str, str] = {}
        self._templates: dict[str, Job] = {}
        self._filled = 0

    # -- setup ------------------------------------------------------------------------------

    async def open(self) -> None:
        await self.dispatcher.open()
        for ce in self.ce_specs:
            compute_environments.create_compute_environment(
                self.ctx,
                compute_environment_name=ce.name,
                type="MANAGED",
                compute_resources={"type": "EC2", "maxvCpus": ce.max_vcpus, "subnets": []},
            )
        await self.settle()
        for queue in self.queue_specs:
            job_queues.create_job_queue(
                self.ctx,
                job_queue_name=queue.name,
                priority=queue.priority,
                scheduling_policy_arn=queue.scheduling_policy_arn,
                compute_environment_order=[
                    {"order": order, "computeEnvironment": name}
                    for order, name in enumerate(queue.compute_environments, start=1)
                ],
            )
        job_definitions.register_job_definition(
            self.ctx,
            job_definition_name=DEFINITION,
            type="container",
            container_properties={
                "image": "busybox",
                "command": ["fake", "exit", "0"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "64"},
                ],
            },
        )
        await self.settle()

    async def close(self) -> None:
        await self.dispatcher.close()

    # -- submitting ---------------------------------------------------------------------------

    def submit(self, submission: Submission) -> str:
        """SubmitJob through the service, as an API call would."""
        job = jobs.submit_job(
            self.ctx,
            job_name=submission.name,
            job_queue=submission.queue,
            job_definition=DEFINITION,
            container_overrides={
                "command": _command(submission.exit_code, submission.duration_ms),
                "resourceRequirements": [
                    {"type": "VCPU", "value": str(submission.vcpus)},
                    {"type": "MEMORY", "value": str(submission.memory_mib)},
                ],
            },
            share_identifier=submission.share_identifier,
            scheduling_priority_override=submission.scheduling_priority,
            array_properties=(
                {"size": submission.array_size} if submission.array_size is not None else None
            ),
        )
        self.trace.job_ids.append(job.job_id)
        return job.job_id

    def fill_runnable(self, queue: str, durations_ms: Sequence[int], batch: int = 50_000) -> None:
        """Store len(durations_ms) RUNNABLE jobs in `queue` at once, evaluated already: a
        backlog as it stands after a burst of submissions, without simulating the burst."""
        template = self._templates.get(queue)
        if template is None:
            job_id = self.submit(Submission(0, queue, 0))
            found = self.store.get_job(job_id)
            assert found is not None
            template = self._templates[queue] = found
        for first in range(0, len(durations_ms), batch):
            chunk = durations_ms[first : first + batch]
            made = []
            for duration in chunk:
                self._filled += 1
                made.append(
                    replace(
                        template,
                        job_id=f"fill-{self._filled:09d}",
                        status=JobStatus.RUNNABLE,
                        container={**template.container, "command": _command(0, duration)},
                        version=0,
                    )
                )
            stored = self.store.insert_jobs(made)
            self.store.commit(Plan(evaluated=tuple((job.job_id, job.version) for job in stored)))

    # -- running ------------------------------------------------------------------------------

    def on_runtime_event(self, event: RuntimeEvent) -> None:
        self._events_seen += 1
        if not self.tracing:
            return
        status = "RUNNING" if isinstance(event, AttemptStarted) else "EXITED"
        at = event.started_at if isinstance(event, AttemptStarted) else event.stopped_at
        job = self.store.get_job(event.job_id)
        queue = job.job_queue if job is not None else ""
        share = job.share_identifier if job is not None else None
        vcpus = job.resources.vcpus if job is not None else 0.0
        self.trace.events.append(TraceEvent(at - T0, event.job_id, queue, status, share, vcpus))
        if isinstance(event, AttemptExited):
            self._last_status.pop(event.job_id, None)

    def _record_plan(self, decided: Plan) -> None:
        self.trace.rounds += 1
        self.trace.decisions += len(decided.updates)
        self.trace.placements += len(decided.starts)
        if not self.tracing:
            return
        at = self.clock.now - T0
        for job in decided.updates:
            status = job.status.value
            if self._last_status.get(job.job_id) != status:
                self._last_status[job.job_id] = status
                self.trace.events.append(
                    TraceEvent(
                        at, job.job_id, job.job_queue, status, job.share_identifier,
                        job.resources.vcpus,
                    )
                )  # fmt: skip

    async def settle(self) -> None:
        """Rounds until one decides nothing and no runtime report came in meanwhile: what the
        server's loop does between two wake-ups. Timed into trace.step_seconds."""
        started = time.perf_counter()
        cpu_started = time.thread_time()
        for _ in range(100_000):
            seen = self._events_seen
            self.fake.advance_to(self.clock.now)
            decided = await self.dispatcher.step()
            self._record_plan(decided)
            # Let the attempts the round started run their (synchronous) fake start.
            for _ in range(3):
                await asyncio.sleep(0)
            if decided.is_empty and self._events_seen == seen:
                self.trace.step_seconds += time.perf_counter() - started
                self.trace.step_cpu_seconds += time.thread_time() - cpu_started
                return
        raise RuntimeError("the dispatcher never settled")

    def next_event_ms(self, plan_wakeup: int | None = None) -> int | None:
        candidates = [t for t in (self.fake.next_event_at(), plan_wakeup) if t is not None]
        return min(candidates) if candidates else None


def _command(exit_code: int, duration_ms: int) -> list[str]:
    return ["fake", "exit", str(exit_code), "after", str(duration_ms)]


# -- simulate ---------------------------------------------------------------------------------


def simulate(
    queues: Sequence[QueueSpec],
    ces: Sequence[ComputeEnvironmentSpec],
    workload: Iterable[Submission],
    until_ms: int,
    *,
    host: Resources = UNLIMITED_HOST,
) -> Trace:
    """Run `workload` through the real dispatcher until virtual time until_ms (ms after the
    start) or until nothing is left to happen; returns every status change seen."""
    return asyncio.run(_simulate(queues, ces, workload, until_ms, host))


async def _simulate(
    queues: Sequence[QueueSpec],
    ces: Sequence[ComputeEnvironmentSpec],
    workload: Iterable[Submission],
    until_ms: int,
    host: Resources,
) -> Trace:
    world = World(queues, ces, host=host)
    pending = sorted(workload, key=lambda s: s.at_ms)
    await world.open()
    try:
        index = 0
        while True:
            now = world.clock.now - T0
            while index < len(pending) and pending[index].at_ms <= now:
                world.submit(pending[index])
                index += 1
            await world.settle()
            candidates = [world.fake.next_event_at()]
            if index < len(pending):
                candidates.append(T0 + pending[index].at_ms)
            due = [t for t in candidates if t is not None]
            if not due or min(due) - T0 > until_ms:
                world.trace.end_ms = now
                return world.trace
            world.clock.now = max(world.clock.now, min(due))
    finally:
        await world.close()


# -- scenario 6: the cost of a decision against the length of the queue ----------------------

QUEUES = 10
CE_VCPUS = 128  # two compute environments, shared by the ten queues
PLATEAU = 10_000  # RUNNABLE jobs: 1,000 per queue, past the snapshot's 256 heads per queue


def _durations(count: int, offset: int = 0) -> list[int]:
    # 0.5 s to 1.5 s in 100 ms steps: exits come in batches, as from a real fleet.
    return [500 + ((offset + i) * 7 % 11) * 100 for i in range(count)]


@dataclass(slots=True)
class DispatchRate:
    runnable: int
    decisions: int
    placements: int
    rounds: int
    step_seconds: float
    step_cpu_seconds: float
    fill_seconds: float
    virtual_seconds: float
    chunk_rates: list[float] = field(default_factory=list)  # decisions/s per ~1,000 decisions

    @property
    def per_second(self) -> float:
        return self.decisions / self.step_seconds if self.step_seconds else 0.0

    @property
    def per_cpu_second(self) -> float:
        return self.decisions / self.step_cpu_seconds if self.step_cpu_seconds else 0.0

    def as_json(self) -> dict[str, Any]:
        return {
            "runnable": self.runnable,
            "decisions": self.decisions,
            "placements": self.placements,
            "rounds": self.rounds,
            "step_seconds": round(self.step_seconds, 3),
            "step_cpu_seconds": round(self.step_cpu_seconds, 3),
            "fill_seconds": round(self.fill_seconds, 2),
            "virtual_seconds": round(self.virtual_seconds, 1),
            "decisions_per_s": round(self.per_second, 1),
            "decisions_per_cpu_s": round(self.per_cpu_second, 1),
            "chunk_rates_median": round(median(self.chunk_rates), 1) if self.chunk_rates else None,
        }


async def _dispatch_rate(
    runnable: int, decisions: int, wall_limit_s: float, profile_label: str | None
) -> tuple[DispatchRate, dict[str, Any] | None]:
    queues = [
        QueueSpec(f"q{i}", priority=10 * (i + 1), compute_environments=("ce-a", "ce-b"))
        for i in range(QUEUES)
    ]
    ces = [ComputeEnvironmentSpec("ce-a", CE_VCPUS), ComputeEnvironmentSpec("ce-b", CE_VCPUS)]
    world = World(queues, ces, trace=False)
    await world.open()
    try:
        started = time.perf_counter()
        per_queue = runnable // QUEUES
        for index, queue in enumerate(queues):
            world.fill_runnable(queue.name, _durations(per_queue, index))
        fill_seconds = time.perf_counter() - started
        gc.collect()
        # Warm up: fill the capacity and let the first exits come back.
        for _ in range(3):
            await _virtual_instant(world, queues)
        world.trace = Trace()
        deadline = time.perf_counter() + wall_limit_s
        virtual_start = world.clock.now
        chunk_rates: list[float] = []
        chunk_start = (0, 0.0)
        profile = profiling.Profile(os.getpid(), profile_label) if profile_label else None
        if profile is not None:
            profile.__enter__()
        try:
            while world.trace.decisions < decisions and time.perf_counter() < deadline:
                await _virtual_instant(world, queues)
                done, spent = world.trace.decisions, world.trace.step_seconds
                if done - chunk_start[0] >= 1000 and spent > chunk_start[1]:
                    chunk_rates.append((done - chunk_start[0]) / (spent - chunk_start[1]))
                    chunk_start = (done, spent)
        finally:
            if profile is not None:
                profile.__exit__(None, None, None)
        trace = world.trace
        rate = DispatchRate(
            runnable=runnable,
            decisions=trace.decisions,
            placements=trace.placements,
            rounds=trace.rounds,
            step_seconds=trace.step_seconds,
            step_cpu_seconds=trace.step_cpu_seconds,
            fill_seconds=fill_seconds,
            virtual_seconds=(world.clock.now - virtual_start) / 1000,
            chunk_rates=chunk_rates,
        )
        summary = None
        if profile is not None:
            summary = profile.summary()
            profile.cleanup()
        return rate, summary
    finally:
        await world.close()


async def _virtual_instant(world: World, queues: Sequence[QueueSpec]) -> None:
    """Move to the next exit, let the dispatcher settle, then put back as many RUNNABLE jobs
    as it placed (untimed), so the backlog keeps its length."""
    due = world.fake.next_event_at()
    if due is not None:
        world.clock.now = max(world.clock.now, due)
    placed_before = world.trace.placements
    await world.settle()
    placed = world.trace.placements - placed_before
    for index, queue in enumerate(queues):
        share = placed // len(queues) + (1 if index < placed % len(queues) else 0)
        if share:
            world.fill_runnable(queue.name, _durations(share, world.trace.rounds + index))


def dispatch_rate(
    runnable: int,
    decisions: int,
    wall_limit_s: float = 300.0,
    profile_label: str | None = None,
) -> tuple[DispatchRate, dict[str, Any] | None]:
    """Decisions per second with `runnable` RUNNABLE jobs waiting; and, when profile_label is
    given, a py-spy summary of the measured part."""
    return asyncio.run(_dispatch_rate(runnable, decisions, wall_limit_s, profile_label))


def run_scenario(
    small: int, large: int, decisions: int, repeats: int, *, profile: bool = False
) -> ScenarioResult:
    """Scenario 6: decisions per second with `large` RUNNABLE jobs against `small` ones, run as
    small, large, small, ... so that both see the same background load; medians."""
    scenario = ScenarioResult(
        "s6",
        f"scheduler at scale (simulator): {large:,} vs {small:,} RUNNABLE across {QUEUES} queues",
    )
    smalls: list[DispatchRate] = []
    larges: list[DispatchRate] = []
    for index in range(repeats):
        smalls.append(dispatch_rate(small, decisions)[0])
        label = "s6-large" if profile and index == 0 else None
        rate, summary = dispatch_rate(large, decisions, profile_label=label)
        larges.append(rate)
        if summary is not None:
            scenario.profiles["dispatcher-large-backlog"] = summary
    smalls.append(dispatch_rate(small, decisions)[0])
    # Past the snapshot's window of RUNNABLE heads (256 per queue) the queue's length should
    # not matter any more: a backlog ten times the small one shows where the plateau starts.
    plateau = dispatch_rate(PLATEAU, decisions)[0] if large > PLATEAU else None
    if profile:
        scenario.profiles["dispatcher-small-backlog"] = dispatch_rate(
            small, decisions, profile_label="s6-small"
        )[1]
    small_rate = median([r.per_second for r in smalls])
    large_rate = median([r.per_second for r in larges])
    small_cpu = median([r.per_cpu_second for r in smalls])
    large_cpu = median([r.per_cpu_second for r in larges])
    scenario.add(Figure(f"decisions/s, {small:,} RUNNABLE (wall)", small_rate, "dec/s"))
    scenario.add(
        Figure(
            f"decisions/s, {large:,} RUNNABLE (wall)",
            large_rate,
            "dec/s",
            baseline=small_rate,
            baseline_name=f"{small:,} RUNNABLE",
            ratio_at_least=0.70,
        )
    )
    scenario.add(
        Figure(
            f"decisions per CPU-second, {large:,} RUNNABLE",
            large_cpu,
            "dec/s",
            baseline=small_cpu,
            baseline_name=f"{small:,} RUNNABLE",
            note="CPU time of the simulator thread: less sensitive to the neighbours' load",
        )
    )
    if plateau is not None:
        scenario.add(
            Figure(
                f"decisions/s, {large:,} vs {PLATEAU:,} RUNNABLE (wall)",
                large_rate,
                "dec/s",
                baseline=plateau.per_second,
                baseline_name=f"{PLATEAU:,} RUNNABLE",
                note="both past the snapshot's window of heads: a decision's cost against the "
                "queue's length once the window is full",
            )
        )
    scenario.details = {
        "plateau": plateau.as_json() if plateau is not None else None,
        "small": [r.as_json() for r in smalls],
        "large": [r.as_json() for r in larges],
        "queues": QUEUES,
        "compute_environments": {"ce-a": CE_VCPUS, "ce-b": CE_VCPUS},
        "decision": "one job update made by the planner: a placement (RUNNABLE -> STARTING) or "
        "a transition (RUNNING -> SUCCEEDED, SUBMITTED -> RUNNABLE, ...)",
    }
    scenario.notes.append(
        "wall time counted inside the dispatcher's rounds only (record, snapshot, plan, commit, "
        "start on the fake runtime); the backlog is refilled between rounds, untimed; "
        f"runs alternate small/large ({len(smalls)} small, {len(larges)} large), medians"
    )
    return scenario
