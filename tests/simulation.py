"""Virtual-time worlds for tests: the real Dispatcher and planner on a store, the fake runtime
and a clock that moves only when the test moves it; exits fall due on the way.

World is one compute environment and one job queue, driven round by round (the dispatcher
tests and the store isolation contract). SchedulingWorld is one compute environment and one
job queue (fair share when given a policy) on the memory store for scheduling simulations; it
also integrates the vCPUs each share holds over virtual time, so a test can compare the capacity
shares get in steady state.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

from batchyard.dispatcher import Dispatcher
from batchyard.domain.model import Document, Job, JobStatus, Resources
from batchyard.runtimes.fake import FakeRuntime
from batchyard.service import (
    compute_environments,
    job_definitions,
    job_queues,
    jobs,
    scheduling_policies,
)
from batchyard.service.context import ServiceContext
from batchyard.store.base import Store
from batchyard.store.memory import MemoryStore
from tests.builders import FixedClock

T0 = 1_700_000_000_000
QUEUE = "q"
DEFINITION = "sim"
# The fake runtime's host is never the limit: capacity is the compute environment's maxvCpus.
UNLIMITED_HOST = Resources(vcpus=1 << 20, memory_mib=1 << 40, gpus=0)


class World:
    """A store (the memory store unless given), a fake runtime with a 64-vCPU host, a dispatcher
    and a virtual clock, driven step by step: compute environment "ce" of `max_vcpus` and queue
    "q" once opened."""

    def __init__(self, max_vcpus: int = 4, store: Store | None = None) -> None:
        self.clock = FixedClock(T0)
        self.store = store if store is not None else MemoryStore()
        self.runtime = FakeRuntime(self.clock, Resources(vcpus=64, memory_mib=65536, gpus=0))
        self.ctx = ServiceContext(store=self.store, clock=self.clock)
        self.dispatcher = Dispatcher(self.store, {"process": self.runtime}, self.clock)
        self.max_vcpus = max_vcpus

    async def open(self, time_limit_actions: list[dict[str, Any]] | None = None) -> None:
        await self.dispatcher.open()
        compute_environments.create_compute_environment(
            self.ctx,
            compute_environment_name="ce",
            type="MANAGED",
            compute_resources={"type": "EC2", "maxvCpus": self.max_vcpus, "subnets": []},
        )
        await self.settle()
        job_queues.create_job_queue(
            self.ctx,
            job_queue_name="q",
            priority=1,
            compute_environment_order=[{"order": 1, "computeEnvironment": "ce"}],
            job_state_time_limit_actions=time_limit_actions,
        )
        await self.settle()

    async def settle(self) -> None:
        """Run rounds until a round decides nothing and no start or stop is in flight."""
        quiet = 0
        for _ in range(10_000):
            self.runtime.advance_to(self.clock.now)  # exits due now are reported
            decided = await self.dispatcher.step()
            for _ in range(5):
                await asyncio.sleep(0)
            quiet = quiet + 1 if decided.is_empty else 0
            if quiet >= 2:
                return
        raise AssertionError("the dispatcher never settled")

    async def advance(self, ms: int) -> None:
        self.clock.now += ms
        await self.settle()

    def define(self, command: list[str], vcpus: int = 1, **extra: Any) -> str:
        definition = job_definitions.register_job_definition(
            self.ctx,
            job_definition_name="jd",
            type="container",
            container_properties={
                "image": "busybox",
                "command": command,
                "resourceRequirements": [{"type": "VCPU", "value": str(vcpus)}],
            },
            **extra,
        )
        return definition.arn

    def submit(self, definition: str, **extra: Any) -> str:
        return jobs.submit_job(
            self.ctx, job_name="job", job_queue="q", job_definition=definition, **extra
        ).job_id

    def job(self, job_id: str) -> Job:
        job = self.store.get_job(job_id)
        assert job is not None
        return job

    def running(self) -> list[Job]:
        return [j for j in self.store.active_jobs() if j.status is JobStatus.RUNNING]


class SchedulingWorld:
    """Submit through the service, step the dispatcher by hand, move the clock explicitly."""

    def __init__(self, max_vcpus: int, fairshare_policy: Document | None = None) -> None:
        self.clock = FixedClock(T0)
        self.store = MemoryStore()
        self.runtime = FakeRuntime(self.clock, UNLIMITED_HOST)
        self.ctx = ServiceContext(store=self.store, clock=self.clock)
        self.dispatcher = Dispatcher(self.store, {"process": self.runtime}, self.clock)
        self.max_vcpus = max_vcpus
        self.fairshare_policy = fairshare_policy
        self.rounds = 0
        self._vcpu_ms: dict[str, float] = defaultdict(float)
        self._jobs_ms: dict[str, float] = defaultdict(float)
        self._measured_since = T0

    async def open(self) -> None:
        await self.dispatcher.open()
        compute_environments.create_compute_environment(
            self.ctx,
            compute_environment_name="ce",
            type="MANAGED",
            compute_resources={"type": "EC2", "maxvCpus": self.max_vcpus, "subnets": []},
        )
        await self.settle()
        policy_arn = None
        if self.fairshare_policy is not None:
            policy_arn = scheduling_policies.create_scheduling_policy(
                self.ctx, name="fair", fairshare_policy=self.fairshare_policy
            ).arn
        job_queues.create_job_queue(
            self.ctx,
            job_queue_name=QUEUE,
            priority=1,
            scheduling_policy_arn=policy_arn,
            compute_environment_order=[{"order": 1, "computeEnvironment": "ce"}],
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

    # -- submitting ---------------------------------------------------------------------------

    def submit(
        self,
        share: str | None,
        *,
        vcpus: float = 1,
        duration_ms: int | None = None,
        count: int = 1,
        **extra: Any,
    ) -> list[str]:
        """SubmitJob `count` times; duration None runs until stopped."""
        command = (
            ["fake", "run-forever"]
            if duration_ms is None
            else ["fake", "exit", "0", "after", str(duration_ms)]
        )
        overrides = {
            "command": command,
            "resourceRequirements": [
                {"type": "VCPU", "value": str(vcpus)},
                {"type": "MEMORY", "value": "64"},
            ],
        }
        return [
            jobs.submit_job(
                self.ctx,
                job_name=f"{share or 'job'}-{index}",
                job_queue=QUEUE,
                job_definition=DEFINITION,
                container_overrides=overrides,
                share_identifier=share,
                **extra,
            ).job_id
            for index in range(count)
        ]

    # -- time ---------------------------------------------------------------------------------

    async def settle(self) -> None:
        """Rounds until one decides nothing twice in a row (starts and stops included)."""
        quiet = 0
        for _ in range(100_000):
            self.runtime.advance_to(self.clock.now)
            decided = await self.dispatcher.step()
            self.rounds += 1
            for _ in range(3):
                await asyncio.sleep(0)
            quiet = quiet + 1 if decided.is_empty else 0
            if quiet >= 2:
                return
        raise AssertionError("the dispatcher never settled")

    async def run_until(self, at_ms: int) -> None:
        """Move to T0 + at_ms, exit by exit, settling at each."""
        target = T0 + at_ms
        await self.settle()  # what was submitted since starts now, and its exits fall due
        while True:
            due = self.runtime.next_event_at()
            if due is None or due > target:
                break
            self._move_to(max(due, self.clock.now))
            await self.settle()
        self._move_to(target)
        await self.settle()

    def _move_to(self, at: int) -> None:
        elapsed = at - self.clock.now
        if elapsed > 0:
            for share, vcpus in self.held().items():
                self._vcpu_ms[share] += vcpus * elapsed
            for share, count in self.running_jobs().items():
                self._jobs_ms[share] += count * elapsed
        self.clock.now = at

    # -- looking --------------------------------------------------------------------------------

    def active(self) -> Iterator[Job]:
        return iter(self.store.active_jobs())

    def held(self) -> dict[str, float]:
        """vCPUs held now (STARTING or RUNNING), per share."""
        held: dict[str, float] = defaultdict(float)
        for job in self.active():
            held[job.share_identifier or ""] += job.resources.vcpus
        return dict(held)

    def running_jobs(self) -> dict[str, int]:
        count: dict[str, int] = defaultdict(int)
        for job in self.active():
            count[job.share_identifier or ""] += 1
        return dict(count)

    def measure_from_now(self) -> None:
        self._vcpu_ms.clear()
        self._jobs_ms.clear()
        self._measured_since = self.clock.now

    def average_held(self) -> dict[str, float]:
        """Time-weighted mean vCPUs held per share since measure_from_now()."""
        span = self.clock.now - self._measured_since
        return {share: total / span for share, total in self._vcpu_ms.items()}

    def average_jobs(self) -> dict[str, float]:
        """Time-weighted mean number of jobs running per share since measure_from_now()."""
        span = self.clock.now - self._measured_since
        return {share: total / span for share, total in self._jobs_ms.items()}

    def job(self, job_id: str) -> Job:
        found = self.store.get_job(job_id)
        assert found is not None
        return found

    def status(self, job_id: str) -> JobStatus:
        return self.job(job_id).status


@asynccontextmanager
async def opened(
    max_vcpus: int, fairshare_policy: Document | None = None
) -> AsyncIterator[SchedulingWorld]:
    world = SchedulingWorld(max_vcpus, fairshare_policy)
    await world.open()
    try:
        yield world
    finally:
        await world.dispatcher.close()
