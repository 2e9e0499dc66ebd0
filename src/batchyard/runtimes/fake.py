"""The fake runtime: scripted attempts in virtual time, for scheduler and dispatcher tests.

Runs no processes. A command ("fake", ...) says what the attempt does; exits fall due on the
virtual clock and are reported when the test (or simulator) calls advance_to(now_ms).
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from batchyard.domain.clock import Clock
from batchyard.domain.model import Resources
from batchyard.runtimes.base import (
    ESSENTIAL_CONTAINER_EXITED,
    HOST_LOST,
    AttemptExited,
    AttemptRef,
    AttemptSpec,
    AttemptStarted,
    Report,
    RuntimeEvent,
    failed_to_start,
    host_lost,
)

OUT_OF_MEMORY = "OutOfMemoryError: Container killed due to memory usage"
DEFAULT_START_FAILURE = "CannotStartContainerError: scripted start failure"

SCRIPTS = """\
fake exit <code> [after <ms>]      exit with <code>, <ms> after the start (default 0)
fake run-forever                   run until stopped
fake fail-to-start [<reason>]      never start: Task failed to start, container.reason <reason>
fake oom [after <ms>]              killed for memory: exit 137, container.reason OutOfMemoryError
fake lose-host [after <ms>]        the host goes away: no exit code, Host EC2 ... terminated.
any other command                  exit 0 at once"""


@dataclass(frozen=True, slots=True)
class _Ending:
    exit_code: int | None
    reason: str | None
    status_reason: str


def _script(command: Sequence[str]) -> tuple[_Ending | None, int, str | None]:
    """(how it ends or None for never, delay in ms, start failure reason or None)."""
    if not command or command[0] != "fake":
        return _Ending(0, None, ESSENTIAL_CONTAINER_EXITED), 0, None
    args = list(command[1:])
    action = args.pop(0) if args else ""
    if action == "fail-to-start":
        return None, 0, " ".join(args) or DEFAULT_START_FAILURE
    if action == "run-forever" and not args:
        return None, 0, None
    delay = 0
    if len(args) >= 2 and args[-2] == "after":
        delay = int(args[-1])
        del args[-2:]
    if action == "exit" and len(args) == 1:
        return _Ending(int(args[0]), None, ESSENTIAL_CONTAINER_EXITED), delay, None
    if action == "oom" and not args:
        return _Ending(137, OUT_OF_MEMORY, ESSENTIAL_CONTAINER_EXITED), delay, None
    if action == "lose-host" and not args:
        reason = "Host lost: scripted by the fake runtime"
        return _Ending(None, reason, HOST_LOST), delay, None
    raise ValueError(f"not a fake runtime script: {list(command)!r}; scripts are:\n{SCRIPTS}")


@dataclass(slots=True)
class _Running:
    spec: AttemptSpec
    ending: _Ending | None
    due: int | None
    started_at: int


class FakeRuntime:
    """A Runtime in virtual time. Attempts survive close()/open(), so a test can restart the
    dispatcher over the same FakeRuntime and have recover() re-attach them."""

    name = "fake"

    def __init__(self, clock: Clock, limits: Resources | None = None) -> None:
        self._clock = clock
        self._limits = limits if limits is not None else Resources(vcpus=256, memory_mib=1 << 20)
        self._report: Report | None = None
        self._running: dict[str, _Running] = {}
        self._due: list[tuple[int, int, str]] = []  # (due, start order, task id), lazily pruned
        self._order = itertools.count()
        self.started: list[AttemptSpec] = []
        self.stopped: list[str] = []  # task ids, in the order stop() was called

    # -- protocol -----------------------------------------------------------------------------

    def host_limits(self) -> Resources:
        return self._limits

    async def open(self, report: Report) -> None:
        self._report = report

    async def start(self, spec: AttemptSpec) -> None:
        self._require_open()
        if spec.task_id in self._running:
            raise ValueError(f"attempt {spec.task_id} is already running")
        ending, delay, start_failure = _script(spec.command)
        self.started.append(spec)
        now = self._clock.now_ms()
        if start_failure is not None:
            self._emit(failed_to_start(spec.job_id, spec.task_id, now, start_failure))
            return
        due = None if ending is None else now + delay
        self._running[spec.task_id] = _Running(spec, ending, due, now)
        if due is not None:
            heapq.heappush(self._due, (due, next(self._order), spec.task_id))
        self._emit(AttemptStarted(spec.job_id, spec.task_id, now, f"fake:{spec.task_id}"))

    async def stop(self, job_id: str, task_id: str, grace_seconds: float) -> None:
        self._require_open()
        self.stopped.append(task_id)
        running = self._running.pop(task_id, None)
        if running is not None:
            self._emit(
                AttemptExited(
                    job_id,
                    task_id,
                    self._clock.now_ms(),
                    143,
                    status_reason=ESSENTIAL_CONTAINER_EXITED,
                )
            )

    async def recover(self, attempts: Sequence[AttemptRef]) -> None:
        self._require_open()
        for ref in attempts:
            running = self._running.get(ref.task_id)
            if running is not None:  # found by its task id, whether or not a handle was stored
                if ref.runtime_handle is None:
                    handle = f"fake:{ref.task_id}"
                    self._emit(AttemptStarted(ref.job_id, ref.task_id, running.started_at, handle))
                continue
            self._emit(
                host_lost(
                    ref.job_id,
                    ref.task_id,
                    self._clock.now_ms(),
                    "Host lost: the attempt was not found after a restart",
                )
            )

    async def close(self) -> None:
        self._report = None

    # -- virtual time -------------------------------------------------------------------------

    def next_event_at(self) -> int | None:
        """When the next scripted exit falls due (epoch ms), None if none is scheduled."""
        self._prune()
        return self._due[0][0] if self._due else None

    def advance_to(self, now_ms: int) -> None:
        """Report every scripted exit due at or before now_ms, in due order (stopped_at = due)."""
        self._require_open()
        while True:
            self._prune()
            if not self._due or self._due[0][0] > now_ms:
                return
            due, _, task_id = heapq.heappop(self._due)
            running = self._running.pop(task_id)
            ending = running.ending
            assert ending is not None
            spec = running.spec
            self._emit(
                AttemptExited(
                    spec.job_id,
                    task_id,
                    due,
                    ending.exit_code,
                    ending.reason,
                    ending.status_reason,
                )
            )

    @property
    def running(self) -> tuple[str, ...]:
        """Task ids of attempts started and not yet ended."""
        return tuple(self._running)

    # -- internals ----------------------------------------------------------------------------

    def _prune(self) -> None:
        # Entries of attempts stopped or lost since they were scheduled.
        while self._due and self._due[0][2] not in self._running:
            heapq.heappop(self._due)

    def _emit(self, event: RuntimeEvent) -> None:
        if self._report is not None:
            self._report(event)

    def _require_open(self) -> None:
        if self._report is None:
            raise RuntimeError("FakeRuntime.open() has not been called (or it was closed)")
