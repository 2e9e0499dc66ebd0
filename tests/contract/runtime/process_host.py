"""A process runtime with its work directory and log store in a running loop (Host), and what
the process tests read from /proc: a process's state and parent.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from batchyard.logs import LogStore
from batchyard.logs.file_store import FileLogStore
from batchyard.runtimes.base import (
    AttemptExited,
    AttemptRef,
    AttemptSpec,
    AttemptStarted,
    RuntimeEvent,
)
from batchyard.runtimes.process.runtime import ProcessRuntime
from tests.builders import WallClock
from tests.contract.runtime.harness import GROUP, poll


@dataclass
class Host:
    """A process runtime with its work directory and log store, in a running loop."""

    runtime: ProcessRuntime
    logs: LogStore
    work_dir: Path
    events: list[RuntimeEvent]

    def messages(self, spec: AttemptSpec) -> list[str]:
        return [e.message for e in self.logs.read(GROUP, spec.log_stream_name, 0, 10_000)]

    def exit_of(self, spec: AttemptSpec | AttemptRef) -> AttemptExited | None:
        return next(
            (e for e in self.events if e.task_id == spec.task_id and isinstance(e, AttemptExited)),
            None,
        )

    def handle_of(self, spec: AttemptSpec) -> str:
        return next(
            e.runtime_handle
            for e in self.events
            if isinstance(e, AttemptStarted) and e.task_id == spec.task_id
        )

    async def run(self, spec: AttemptSpec) -> AttemptExited:
        await self.runtime.start(spec)
        return await self.exited(spec)

    async def exited(self, spec: AttemptSpec) -> AttemptExited:
        await poll(lambda: self.exit_of(spec) is not None)
        found = self.exit_of(spec)
        assert found is not None
        return found


async def open_host(
    tmp_path: Path,
    events: list[RuntimeEvent] | None = None,
    *,
    stores_exits: bool = True,
    use_cgroups: bool = True,
) -> Host:
    """A process runtime reporting into `events`. Like the dispatcher, it acknowledges each
    exit as stored (`recorded`) unless stores_exits is False: a server about to die."""
    logs = FileLogStore(tmp_path / "logs")
    runtime = ProcessRuntime(tmp_path / "work", logs, WallClock(), use_cgroups=use_cgroups)
    host = Host(runtime, logs, tmp_path / "work", [] if events is None else events)

    def report(event: RuntimeEvent) -> None:
        host.events.append(event)
        if stores_exits and isinstance(event, AttemptExited) and event.recorded is not None:
            event.recorded()

    await runtime.open(report)
    return host


def on_host(tmp_path: Path, scenario: Callable[[Host], Coroutine[Any, Any, None]]) -> None:
    async def main() -> None:
        host = await open_host(tmp_path)
        try:
            await scenario(host)
        finally:
            await host.runtime.close()

    asyncio.run(main())


def process_state(pid: int) -> str | None:
    """The pid's state letter, None once it is gone (zombies count as gone)."""
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError):  # gone between open and read
        return None
    state = data[data.rindex(b")") + 2 :].split()[0].decode()
    return None if state in ("Z", "X") else state


def parent_of(pid: int) -> int:
    data = Path(f"/proc/{pid}/stat").read_bytes()
    return int(data[data.rindex(b")") + 2 :].split()[1])


def directory_gone(directory: Path) -> Callable[[], bool]:
    return lambda: not directory.exists()
