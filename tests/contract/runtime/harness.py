"""One runtime under test, whichever it is (process, docker, fake), behind a Harness: how to
script an attempt that exits, runs forever or cannot start, how to let time pass for it (real
polling with a deadline, or the fake runtime's virtual time), and a restart over the same host.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from batchyard.domain.model import Resources
from batchyard.logs.file_store import FileLogStore
from batchyard.runtimes.base import (
    AttemptExited,
    AttemptStarted,
    Runtime,
    RuntimeEvent,
)
from batchyard.runtimes.docker import DockerRuntime
from batchyard.runtimes.fake import FakeRuntime
from batchyard.runtimes.process.runtime import ProcessRuntime
from tests.builders import FixedClock, WallClock
from tests.containers import RUN_FOREVER, remove_containers, require_engine

T = TypeVar("T")
GROUP = "/aws/batch/job"
DEADLINE_S = 20.0


@dataclass
class Harness:
    """One runtime under test plus how to script it and how to let time pass for it."""

    runtime: Runtime
    events: list[RuntimeEvent]
    exit_with: Callable[[int], tuple[str, ...]]
    exit_after_a_second: Callable[[int], tuple[str, ...]]
    run_forever: tuple[str, ...]
    cannot_start: tuple[str, ...]
    until: Callable[[Callable[[], bool]], Awaitable[None]]
    # A server restart: closes the runtime and opens one over the same host (work directory,
    # Docker owner, fake host), reporting to the same events.
    reopened: Callable[[], Runtime]

    async def restart(self) -> None:
        await self.runtime.close()
        self.runtime = self.reopened()
        await self.runtime.open(self.events.append)

    def of(self, task_id: str) -> list[RuntimeEvent]:
        return [e for e in self.events if e.task_id == task_id]

    def exit_of(self, task_id: str) -> AttemptExited | None:
        return next((e for e in self.of(task_id) if isinstance(e, AttemptExited)), None)

    def has_started(self, task_id: str) -> bool:
        return any(isinstance(e, AttemptStarted) for e in self.of(task_id))

    async def exited(self, task_id: str) -> AttemptExited:
        await self.until(lambda: self.exit_of(task_id) is not None)
        found = self.exit_of(task_id)
        assert found is not None
        return found


async def poll(predicate: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


def with_runtime(
    kind: str, tmp_path: Path, scenario: Callable[[Harness], Coroutine[Any, Any, T]]
) -> T:
    async def main() -> T:
        events: list[RuntimeEvent] = []
        if kind == "process":

            def process_runtime() -> Runtime:
                logs = FileLogStore(tmp_path / "logs")
                return ProcessRuntime(tmp_path / "work", logs, WallClock())

            harness = Harness(
                runtime=process_runtime(),
                events=events,
                exit_with=lambda code: ("sh", "-c", f"exit {code}"),
                exit_after_a_second=lambda code: ("sh", "-c", f"sleep 1; exit {code}"),
                run_forever=("sleep", "300"),
                cannot_start=("no-such-command-anywhere",),
                until=poll,
                reopened=process_runtime,
            )
        elif kind == "docker":
            owner = f"contract-{uuid.uuid4().hex}"

            def docker_runtime() -> Runtime:
                logs = FileLogStore(tmp_path / "logs")
                return DockerRuntime(logs, WallClock(), owner=owner, network_mode="none")

            harness = Harness(
                runtime=docker_runtime(),
                events=events,
                exit_with=lambda code: ("sh", "-c", f"exit {code}"),
                exit_after_a_second=lambda code: ("sh", "-c", f"sleep 1; exit {code}"),
                run_forever=RUN_FOREVER,
                cannot_start=("no-such-command-anywhere",),
                until=poll,
                reopened=docker_runtime,
            )
        else:
            clock = FixedClock()
            fake = FakeRuntime(clock, limits=Resources(vcpus=4, memory_mib=8192))

            async def advance(predicate: Callable[[], bool]) -> None:
                while not predicate():
                    due = fake.next_event_at()
                    if due is None:
                        raise AssertionError("condition not reached: nothing more is scheduled")
                    clock.now = max(clock.now, due)
                    fake.advance_to(clock.now)

            harness = Harness(
                runtime=fake,
                events=events,
                exit_with=lambda code: ("fake", "exit", str(code), "after", "250"),
                exit_after_a_second=lambda code: ("fake", "exit", str(code), "after", "1000"),
                run_forever=("fake", "run-forever"),
                cannot_start=("fake", "fail-to-start", "CannotStartContainerError: scripted"),
                until=advance,
                reopened=lambda: fake,  # attempts live on the fake host across close/open
            )
        await harness.runtime.open(events.append)
        try:
            return await scenario(harness)
        finally:
            await harness.runtime.close()
            if isinstance(harness.runtime, DockerRuntime):  # whatever a failure left behind
                assert engine is not None
                remove_containers(engine, harness.runtime.owner)

    engine = require_engine() if kind == "docker" else None
    try:
        return asyncio.run(main())
    finally:
        if engine is not None:
            engine.close()
