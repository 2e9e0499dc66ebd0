"""A docker runtime with its log store in a running loop (Dock), as the docker tests open it, and
attempts that end when the test says (gated).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker

from batchyard.logs import LogStore
from batchyard.logs.file_store import FileLogStore
from batchyard.runtimes.base import (
    AttemptExited,
    AttemptRef,
    AttemptSpec,
    AttemptStarted,
    RuntimeEvent,
)
from batchyard.runtimes.docker import (
    LABEL_OWNER,
    LABEL_TASK_ID,
    DockerRuntime,
)
from tests.builders import WallClock, a_container_spec
from tests.contract.runtime.harness import GROUP, poll


@dataclass
class Dock:
    """A docker runtime with its log store, in a running loop."""

    runtime: DockerRuntime
    logs: LogStore
    engine: docker.DockerClient
    events: list[RuntimeEvent] = field(default_factory=list)

    def messages(self, spec: AttemptSpec | AttemptRef) -> list[str]:
        return [e.message for e in self.logs.read(GROUP, spec.log_stream_name, 0, 10_000)]

    def of(self, spec: AttemptSpec | AttemptRef) -> list[RuntimeEvent]:
        return [e for e in self.events if e.task_id == spec.task_id]

    def exit_of(self, spec: AttemptSpec | AttemptRef) -> AttemptExited | None:
        return next((e for e in self.of(spec) if isinstance(e, AttemptExited)), None)

    def started(self, spec: AttemptSpec | AttemptRef) -> bool:
        return any(isinstance(e, AttemptStarted) for e in self.of(spec))

    def handle_of(self, spec: AttemptSpec) -> str:
        return next(e.runtime_handle for e in self.of(spec) if isinstance(e, AttemptStarted))

    def containers(self, spec: AttemptSpec | AttemptRef | None = None) -> list[dict[str, Any]]:
        """This runtime's containers (of one attempt): Id, State, Labels, ..."""
        labels = [f"{LABEL_OWNER}={self.runtime.owner}"]
        if spec is not None:
            labels.append(f"{LABEL_TASK_ID}={spec.task_id}")
        return list(self.engine.api.containers(all=True, filters={"label": labels}))

    def states(self, spec: AttemptSpec | AttemptRef) -> list[str]:
        return [c["State"] for c in self.containers(spec)]

    async def run(self, spec: AttemptSpec) -> AttemptExited:
        await self.runtime.start(spec)
        return await self.exited(spec)

    async def exited(self, spec: AttemptSpec | AttemptRef) -> AttemptExited:
        await poll(lambda: self.exit_of(spec) is not None)
        found = self.exit_of(spec)
        assert found is not None
        return found

    async def gone(self, spec: AttemptSpec | AttemptRef) -> None:
        await poll(lambda: self.containers(spec) == [])


async def open_dock(
    engine: docker.DockerClient, tmp_path: Path, owner: str, *, stores_exits: bool = True
) -> Dock:
    """A docker runtime. Like the dispatcher, it acknowledges each exit as stored (`recorded`)
    unless stores_exits is False: a server about to die."""
    logs = FileLogStore(tmp_path / "logs")
    runtime = DockerRuntime(logs, WallClock(), owner=owner, network_mode="none")
    dock = Dock(runtime, logs, engine)

    def report(event: RuntimeEvent) -> None:
        dock.events.append(event)
        if stores_exits and isinstance(event, AttemptExited) and event.recorded is not None:
            event.recorded()

    await dock.runtime.open(report)
    return dock


def in_dock(
    engine: docker.DockerClient,
    tmp_path: Path,
    owner: str,
    scenario: Callable[[Dock], Coroutine[Any, Any, None]],
) -> None:
    async def main() -> None:
        dock = await open_dock(engine, tmp_path, owner)
        try:
            await scenario(dock)
        finally:
            await dock.runtime.close()

    asyncio.run(main())


def ref_of(spec: AttemptSpec, handle: str | None) -> AttemptRef:
    return AttemptRef(spec.job_id, spec.task_id, GROUP, spec.log_stream_name, handle)


def gated(tmp_path: Path, before: str, after: str) -> tuple[AttemptSpec, Path]:
    """An attempt that runs `before`, waits until the test creates the returned file, then runs
    `after`: it ends when the test says, never because time passed."""
    gate = tmp_path / "gate"
    gate.mkdir(exist_ok=True)
    script = f"{before}; until [ -e /gate/open ]; do sleep 0.05; done; {after}"
    spec = a_container_spec(
        ("sh", "-c", script),
        container={
            "volumes": [{"name": "gate", "host": {"sourcePath": str(gate)}}],
            "mountPoints": [{"sourceVolume": "gate", "containerPath": "/gate", "readOnly": True}],
        },
    )
    return spec, gate / "open"
