"""The Runtime protocol: where attempts run. Start, stop, recover; report what happened.

A runtime never decides: it launches what the dispatcher asks, reports each attempt's start
and exit through the callback given to open(), and streams output into the log store.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from batchyard.domain.lifecycle import ESSENTIAL_CONTAINER_EXITED, TASK_FAILED_TO_START
from batchyard.domain.model import Document, Resources
from batchyard.logs import EVENT_OVERHEAD_BYTES


@dataclass(frozen=True, slots=True)
class AttemptSpec:
    """Everything a runtime needs to run one attempt."""

    job_id: str
    task_id: str  # 32 hex chars; unique per attempt
    attempt_number: int  # 1-based (AWS_BATCH_JOB_ATTEMPT)
    job_queue: str
    compute_environment: str
    job_definition_name: str
    command: tuple[str, ...]
    environment: Mapping[str, str]  # final: definition + overrides + AWS_BATCH_* variables
    resources: Resources
    container: Document  # resolved containerProperties (image, user, volumes, ...) in wire form
    log_group: str
    log_stream_name: str
    network_mode: str | None = None  # the compute environment's; None: the runtime's default


@dataclass(frozen=True, slots=True)
class AttemptRef:
    """An attempt the store believes is placed or running, handed back on recovery."""

    job_id: str
    task_id: str
    log_group: str
    log_stream_name: str
    # None: the server died before it stored the start (the attempt may still have started:
    # the runtime finds it by task_id, which is fixed before the attempt is launched).
    runtime_handle: str | None


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    job_id: str
    task_id: str
    started_at: int  # epoch ms
    runtime_handle: str  # opaque; lets recover() find the attempt again after a restart


@dataclass(frozen=True, slots=True)
class AttemptExited:
    job_id: str
    task_id: str
    stopped_at: int  # epoch ms
    exit_code: int | None  # None when the container never ran or the exit is unknown
    reason: str | None = None  # container.reason, e.g. "OutOfMemoryError: ..."
    status_reason: str = ESSENTIAL_CONTAINER_EXITED
    # Called by the dispatcher once the exit is in the store: until then the runtime keeps
    # what recovery needs to report the exit again, should the server die in between.
    recorded: Callable[[], None] | None = field(default=None, compare=False, repr=False)


RuntimeEvent = AttemptStarted | AttemptExited
Report = Callable[[RuntimeEvent], None]

# TASK_FAILED_TO_START and ESSENTIAL_CONTAINER_EXITED are the lifecycle's (one spelling of
# each AWS string), re-exported here for the runtimes.
HOST_LOST = "Host EC2 (instance batchyard) terminated."

MAX_EVENT_BYTES = 256 * 1024 - EVENT_OVERHEAD_BYTES
"""CloudWatch's largest event, less the overhead it counts per event: every runtime that streams
output splits longer lines at this many bytes."""

MAX_REASON = 255  # container.reason (BM:ContainerDetail.reason)

log = logging.getLogger("batchyard.runtimes")

__all__ = [
    "ESSENTIAL_CONTAINER_EXITED",
    "HOST_LOST",
    "MAX_EVENT_BYTES",
    "MAX_REASON",
    "TASK_FAILED_TO_START",
    "AttemptExited",
    "AttemptRef",
    "AttemptSpec",
    "AttemptStarted",
    "Report",
    "Runtime",
    "RuntimeEvent",
    "deliver",
    "failed_to_start",
    "host_lost",
]


def host_lost(job_id: str, task_id: str, stopped_at: int, reason: str) -> AttemptExited:
    """The exit of an attempt whose process or container can no longer be found."""
    return AttemptExited(job_id, task_id, stopped_at, None, reason, HOST_LOST)


def failed_to_start(job_id: str, task_id: str, stopped_at: int, reason: str) -> AttemptExited:
    """The exit of an attempt that never ran: no exit code, `reason` (e.g.
    "CannotStartContainerError: ...") as its container.reason, cut to the length AWS allows."""
    return AttemptExited(
        job_id, task_id, stopped_at, None, reason[:MAX_REASON], TASK_FAILED_TO_START
    )


def deliver(report: Report | None, event: RuntimeEvent) -> None:
    """Hand an event to the dispatcher. A failing report is logged, never raised into the
    runtime's own tasks (which would stop following the other attempts)."""
    if report is None:
        return
    try:
        report(event)
    except Exception:
        log.exception("Reporting %s failed", event)


class Runtime(Protocol):
    name: str

    def host_limits(self) -> Resources:
        """The most one attempt can get here (vCPUs, memory MiB, GPUs)."""
        ...

    async def open(self, report: Report) -> None:
        """Begin reporting events. Called once, before any other coroutine."""
        ...

    async def start(self, spec: AttemptSpec) -> None:
        """Launch an attempt. Reports AttemptStarted once it runs, AttemptExited when it ends
        (or at once, with status_reason TASK_FAILED_TO_START, if it cannot start)."""
        ...

    async def stop(self, job_id: str, task_id: str, grace_seconds: float) -> None:
        """SIGTERM the attempt, SIGKILL after grace_seconds. Its exit is reported as usual."""
        ...

    async def recover(self, attempts: Sequence[AttemptRef]) -> None:
        """After a restart: re-attach to attempts still running (and report their exit later);
        report AttemptExited with status_reason HOST_LOST for any that cannot be found.

        An attempt is looked up by its task id, with or without a runtime handle: one that
        started but whose start was never stored is found and reported AttemptStarted (then
        its exit, with its real exit code, if it ended meanwhile), never called lost while
        it may run, which would start a retry beside it. HOST_LOST only once the runtime knows
        the attempt is not running and will not start (no earlier server's launch is still
        under way)."""
        ...

    async def close(self) -> None:
        """Stop reporting and release resources. Running attempts are left running."""
        ...
