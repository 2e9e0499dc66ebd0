"""ProcessRuntime: each attempt runs as a local process group; its output goes to the logs.

Attempts are spawned and reaped by the launcher (launcher.py, a process that outlives the
server, reached through launcher_client.py), which records exit codes beside each attempt's
directory (launch_records.py), so a restarted server re-attaches. Decides nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import shutil
import signal
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from batchyard.domain.clock import Clock
from batchyard.domain.model import Resources
from batchyard.logs import LogStore
from batchyard.runtimes.base import (
    ESSENTIAL_CONTAINER_EXITED,
    AttemptExited,
    AttemptRef,
    AttemptSpec,
    AttemptStarted,
    Report,
    RuntimeEvent,
    deliver,
    failed_to_start,
    host_lost,
)
from batchyard.runtimes.output import Event, LineCutter, StreamWriter
from batchyard.runtimes.process import containment
from batchyard.runtimes.process.launch_records import (
    EXIT_CODE,
    OUTPUT,
    read_exit_code,
    read_launch_record,
    wait_for_earlier_launches,
)
from batchyard.runtimes.process.launcher_client import (
    DEFAULT_PATH,
    LAUNCHER_EXITED,
    LauncherClient,
)
from batchyard.runtimes.process.proc import (
    group_is_ours,
    is_running,
    meminfo_total_mib,
    signal_group,
)

log = logging.getLogger(__name__)

_TASK_ID = re.compile("[0-9a-f]{32}")  # an attempt directory's name (lifecycle.new_task_id)

_READ_CHUNK = 256 * 1024
_TICK_BUDGET = 4 * 1024 * 1024  # bytes read per attempt per tick, so one chatty job can't stall
_FINISH_BUDGET = 1024 * 1024  # bytes drained inline at exit before handing off to a task

HOST_LOST_NOT_FOUND = "Host lost: the attempt's process was not found after a restart"
HOST_LOST_NO_EXIT_CODE = "Host lost: the attempt's process ended without recording an exit code"


class _CannotStart(Exception):
    pass


@dataclass(eq=False, slots=True)
class _Attempt:
    job_id: str
    task_id: str
    output: StreamWriter
    directory: str  # the job's working directory; control files sit beside it
    pid: int  # the command's process, leader of its own process group
    start_ticks: int
    own: bool  # our launcher's child: its exit is pushed to us, else we poll for it
    out_fd: int | None
    offset: int = 0  # bytes of the output file consumed
    lines: LineCutter = field(default_factory=LineCutter)
    stop_signal: int | None = None
    escalation: asyncio.TimerHandle | None = None
    found_running: bool = True
    ended: bool = False
    cgroup: str | None = None  # its own cgroup; None: a reaper process contains it


def _remove_attempt_files(directory: str) -> None:
    for suffix in (OUTPUT, EXIT_CODE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory + suffix)
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)


def _resolve(command: Sequence[str], search_path: str, cache: dict[tuple[str, str], str]) -> str:
    """The executable the command names, as an absolute path, in Docker's error wording.
    PATH lookups are cached while the file found stays executable."""
    if not command:
        raise _CannotStart("no command specified")
    name = command[0]
    if "/" in name:
        if not os.path.isabs(name) or not os.path.exists(name):
            raise _CannotStart(f'exec: "{name}": stat {name}: no such file or directory')
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            raise _CannotStart(f'exec: "{name}": permission denied')
        return name
    found = cache.get((name, search_path))
    if found is not None and os.access(found, os.X_OK):
        return found
    found = shutil.which(name, path=search_path)
    if found is None:
        raise _CannotStart(f'exec: "{name}": executable file not found in $PATH')
    if len(cache) >= 1024:
        cache.clear()
    cache[(name, search_path)] = found = os.path.abspath(found)
    return found


def _handle(pid: int, start_ticks: int, directory: str, cgroup: str | None) -> str:
    handle: dict[str, Any] = {"pid": pid, "startTime": start_ticks, "dir": directory}
    if cgroup is not None:
        handle["cgroup"] = cgroup
    return json.dumps(handle, separators=(",", ":"))


def _handle_cgroup(handle: str | None) -> str | None:
    try:
        cgroup = json.loads(handle or "{}").get("cgroup")
    except (ValueError, AttributeError):
        return None
    return cgroup if isinstance(cgroup, str) else None


def _parse_handle(handle: str | None) -> tuple[int, int, str] | None:
    if handle is None:
        return None
    try:
        data = json.loads(handle)
        return int(data["pid"]), int(data["startTime"]), str(data["dir"])
    except (ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------------------------


class ProcessRuntime:
    """Runs attempts as local processes: the embedded default runtime.

    Under work_dir, per attempt: <task_id>/ (its working directory, HOME and TMPDIR, empty at
    start), <task_id>.output (stdout and stderr, tailed into the log store every
    poll_interval) and <task_id>.exit_code (its launch record: pid, start time, exit code;
    launch_records.py); all three go once the exit is stored, and what they hold (but the
    launch record) as soon as the attempt ends and its output is stored. The runtime handle
    holds the command's pid, its start time and the directory; without one, recover() finds
    the attempt by its task id from its launch record. Resources are not enforced: vCPU and
    memory only count toward placement. Whatever an attempt starts ends with it: in a cgroup
    of its own where the host allows (use_cgroups=False: never), else under a reaper process
    (containment.py); the handle names the cgroup.
    """

    name = "process"

    def __init__(
        self,
        work_dir: Path,
        logs: LogStore,
        clock: Clock,
        *,
        max_vcpus: float | None = None,
        poll_interval: float = 0.1,
        recovered_check_interval: float = 0.5,
        use_cgroups: bool = True,
    ) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self._work_dir = str(work_dir.resolve())
        self._attempts_cgroup = containment.attempts_cgroup(self._work_dir) if use_cgroups else None
        self._cgroups_unremoved: set[str] = set()  # killed; removed once their processes left
        self._logs = logs
        self._clock = clock
        self._max_vcpus = max_vcpus
        self._limits: Resources | None = None
        self._poll_interval = poll_interval
        self._check_every = max(1, round(recovered_check_interval / poll_interval))
        self._base_env = {"PATH": os.environ.get("PATH", DEFAULT_PATH)}
        if "LANG" in os.environ:
            self._base_env["LANG"] = os.environ["LANG"]
        self._report: Report | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._found: dict[tuple[str, str], str] = {}  # (name, PATH) -> executable
        self._launcher: LauncherClient | None = None
        self._starting: dict[str, AttemptSpec] = {}  # sent to the launcher, no answer yet
        self._stop_when_started: dict[str, float] = {}
        self._attempts: dict[str, _Attempt] = {}
        self._exits_unstored: set[str] = set()  # directories of exits reported, not yet stored
        self._tailer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- protocol -----------------------------------------------------------------------------

    def host_limits(self) -> Resources:
        if self._limits is None:
            cpus = float(os.cpu_count() or 1)
            vcpus = self._max_vcpus if self._max_vcpus is not None else cpus
            self._limits = Resources(vcpus=vcpus, memory_mib=meminfo_total_mib(), gpus=0)
        return self._limits

    async def open(self, report: Report) -> None:
        self._report = report
        self._loop = asyncio.get_running_loop()
        self._launcher = self._new_launcher(self._loop)
        self._tailer = self._loop.create_task(self._tail_forever())

    async def start(self, spec: AttemptSpec) -> None:
        loop = self._require_open()
        if spec.task_id in self._attempts or spec.task_id in self._starting:
            raise ValueError(f"attempt {spec.task_id} is already running")
        directory = os.path.join(self._work_dir, spec.task_id)
        env = {**self._base_env, "HOME": directory, "TMPDIR": directory}
        env.update(spec.environment)
        try:
            executable = _resolve(spec.command, env.get("PATH", DEFAULT_PATH), self._found)
        except _CannotStart as error:
            self._failed_to_start(spec, str(error))
            return
        try:
            if self._launcher is None:
                self._launcher = self._new_launcher(loop)
        except OSError as error:
            self._failed_to_start(spec, f"starting the launcher: {error}")
            return
        self._starting[spec.task_id] = spec
        request = {
            "id": spec.task_id,
            "argv": [executable, *spec.command[1:]],
            "env": env,
            "dir": directory,
        }
        # Returns without waiting for the launcher: its answer is reported as an event.
        self._launcher.send(request)

    async def stop(self, job_id: str, task_id: str, grace_seconds: float) -> None:
        self._require_open()
        if task_id in self._starting:
            self._stop_when_started[task_id] = grace_seconds
            return
        attempt = self._attempts.get(task_id)
        if attempt is not None:
            self._stop(attempt, grace_seconds)

    async def recover(self, attempts: Sequence[AttemptRef]) -> None:
        self._require_open()
        # Attempts whose start the store never heard of are found by task id, from their
        # launch records: final once no earlier launcher is starting anything.
        await asyncio.to_thread(wait_for_earlier_launches, self._work_dir)
        found_by_id = 0
        for ref in attempts:
            if ref.task_id not in self._attempts and ref.task_id not in self._starting:
                found_by_id += self._reattach(ref)
        if found_by_id:
            log.info("Recovery found %d attempts whose start was not stored yet", found_by_id)
        self._release_orphans()
        self._remove_stale_cgroups()

    def _cgroup_of(self, task_id: str) -> str | None:
        """The cgroup of an attempt found by its launch record (its start was never heard)."""
        if self._attempts_cgroup is None:
            return None
        path = os.path.join(self._attempts_cgroup, task_id)
        return path if os.path.isdir(path) else None

    def _remove_stale_cgroups(self) -> None:
        """Attempt cgroups no attempt owns (a launcher killed before it removed one, an
        attempt gone from the store): their processes go, then the cgroups."""
        if self._attempts_cgroup is None:
            return
        owned = {attempt.cgroup for attempt in self._attempts.values()}
        owned.update(os.path.join(self._attempts_cgroup, task_id) for task_id in self._starting)
        for path in containment.attempt_cgroups(self._attempts_cgroup):
            if path not in owned:
                self._kill_cgroup(path)

    def _kill_cgroup(self, path: str) -> None:
        try:
            containment.kill_cgroup(path)
        except OSError as error:
            log.warning("Killing the processes of cgroup %s failed: %s", path, error)
        if not containment.remove_cgroup(path):
            self._cgroups_unremoved.add(path)

    def _release_orphans(self) -> None:
        """Attempt directories no attempt owns: a server that died after storing an exit but
        before releasing its directory left them. Recovery has re-attached every attempt the
        store still holds, so the rest go."""
        owned = {attempt.directory for attempt in self._attempts.values()}
        owned.update(self._exits_unstored)
        owned.update(os.path.join(self._work_dir, task_id) for task_id in self._starting)
        with os.scandir(self._work_dir) as entries:
            names = {entry.name.split(".", 1)[0] for entry in entries}
        for name in sorted(names):
            directory = os.path.join(self._work_dir, name)
            if _TASK_ID.fullmatch(name) and directory not in owned:
                self._release(directory)

    async def close(self) -> None:
        if self._tailer is not None:
            self._tailer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tailer
            self._tailer = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._launcher is not None:
            self._launcher.close()
            self._launcher = None
        self._starting.clear()
        self._stop_when_started.clear()
        for attempt in self._attempts.values():
            if attempt.escalation is not None:
                attempt.escalation.cancel()
            if attempt.out_fd is not None:
                os.close(attempt.out_fd)
                attempt.out_fd = None
        self._attempts.clear()
        self._exits_unstored.clear()
        self._report = None
        self._loop = None

    # -- launcher events ----------------------------------------------------------------------

    def _on_launcher_message(self, message: dict[str, Any]) -> None:
        task_id = str(message["id"])
        if "exit" in message:
            attempt = self._attempts.get(task_id)
            if attempt is not None and not attempt.ended:
                self._finish(attempt, int(message["exit"]), None)
            return
        spec = self._starting.pop(task_id)
        if "error" in message:
            self._stop_when_started.pop(task_id, None)
            self._failed_to_start(spec, str(message["error"]))  # its directory went back
        else:
            cgroup = message.get("cgroup")
            self._started(spec, int(message["pid"]), int(message["start"]), cgroup)

    def _started(self, spec: AttemptSpec, pid: int, start_ticks: int, cgroup: str | None) -> None:
        directory = os.path.join(self._work_dir, spec.task_id)
        try:
            out_fd: int | None = os.open(directory + OUTPUT, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            out_fd = None
        attempt = _Attempt(
            job_id=spec.job_id,
            task_id=spec.task_id,
            output=StreamWriter(self._logs, spec.task_id, spec.log_group, spec.log_stream_name),
            directory=directory,
            pid=pid,
            start_ticks=start_ticks,
            own=True,
            out_fd=out_fd,
            cgroup=cgroup,
        )
        self._attempts[spec.task_id] = attempt
        now = self._clock.now_ms()
        attempt.output.create(now)
        handle = _handle(pid, start_ticks, directory, cgroup)
        self._emit(AttemptStarted(spec.job_id, spec.task_id, now, handle))
        grace = self._stop_when_started.pop(spec.task_id, None)
        if grace is not None:
            self._stop(attempt, grace)

    def _on_launcher_gone(self, launcher: LauncherClient) -> None:
        """The launcher died: its attempts run on, unwatched; poll them like recovered ones."""
        log.error("The process launcher (pid %d) exited unexpectedly", launcher.pid)
        if self._launcher is launcher:
            self._launcher = None
        starting, self._starting = self._starting, {}
        stops, self._stop_when_started = self._stop_when_started, {}
        for spec in starting.values():
            if read_launch_record(os.path.join(self._work_dir, spec.task_id)) is None:
                self._failed_to_start(spec, LAUNCHER_EXITED)  # its directory is left alone
                continue
            # It started before the launcher died: follow it like a recovered attempt.
            ref = AttemptRef(spec.job_id, spec.task_id, spec.log_group, spec.log_stream_name, None)
            self._reattach(ref)
            attempt = self._attempts.get(spec.task_id)
            if attempt is not None and spec.task_id in stops:
                self._stop(attempt, stops[spec.task_id])
        for attempt in self._attempts.values():
            attempt.own = False

    # -- stopping -----------------------------------------------------------------------------

    def _stop(self, attempt: _Attempt, grace_seconds: float) -> None:
        if attempt.ended or not group_is_ours(attempt.pid, attempt.start_ticks):
            return  # already ended: its exit is (being) reported
        if grace_seconds <= 0:
            self._kill(attempt)
            return
        if attempt.stop_signal is None:
            attempt.stop_signal = signal.SIGTERM
        signal_group(attempt.pid, signal.SIGTERM)
        if attempt.escalation is None and self._loop is not None:
            attempt.escalation = self._loop.call_later(grace_seconds, self._kill, attempt)

    def _kill(self, attempt: _Attempt) -> None:
        attempt.escalation = None
        if attempt.ended or not group_is_ours(attempt.pid, attempt.start_ticks):
            return
        attempt.stop_signal = signal.SIGKILL
        signal_group(attempt.pid, signal.SIGKILL)
        if attempt.cgroup is not None:  # at once, not only once the command has gone
            self._kill_cgroup(attempt.cgroup)

    # -- recovery -----------------------------------------------------------------------------

    def _reattach(self, ref: AttemptRef) -> bool:
        """Follow the attempt again; True if it was found by its launch record alone."""
        handle = _parse_handle(ref.runtime_handle)
        cgroup = _handle_cgroup(ref.runtime_handle)
        started_at: int | None = None  # set when the start was never reported or stored
        if ref.runtime_handle is None and _TASK_ID.fullmatch(ref.task_id):
            directory = os.path.join(self._work_dir, ref.task_id)
            record = read_launch_record(directory)
            if record is not None:
                handle = (record.pid, record.start_ticks, directory)
                started_at = record.started_at
                cgroup = self._cgroup_of(ref.task_id)
        if handle is None or not os.path.isdir(handle[2]):
            self._emit(self._host_lost(ref.job_id, ref.task_id, HOST_LOST_NOT_FOUND))
            return False
        pid, start_ticks, directory = handle
        try:
            out_fd: int | None = os.open(directory + OUTPUT, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            out_fd = None
        attempt = _Attempt(
            job_id=ref.job_id,
            task_id=ref.task_id,
            output=StreamWriter(self._logs, ref.task_id, ref.log_group, ref.log_stream_name),
            directory=directory,
            pid=pid,
            start_ticks=start_ticks,
            own=False,
            out_fd=out_fd,
            lines=LineCutter(skip=self._logs.count(ref.log_group, ref.log_stream_name)),
            found_running=is_running(pid, start_ticks),
            cgroup=cgroup,
        )
        self._attempts[ref.task_id] = attempt
        if started_at is not None:
            attempt.output.create(started_at)
            runtime_handle = _handle(pid, start_ticks, directory, cgroup)
            self._emit(AttemptStarted(ref.job_id, ref.task_id, started_at, runtime_handle))
        self._pump(attempt, _TICK_BUDGET)
        self._check_unwatched(attempt)
        return started_at is not None

    def _check_unwatched(self, attempt: _Attempt) -> None:
        """End an attempt no launcher of ours watches, once it has exited."""
        code = read_exit_code(attempt.directory)
        if code is None and is_running(attempt.pid, attempt.start_ticks):
            return
        if group_is_ours(attempt.pid, attempt.start_ticks):
            signal_group(attempt.pid, signal.SIGKILL)  # what the command left behind
        if attempt.cgroup is not None:
            self._kill_cgroup(attempt.cgroup)
        if code is None and attempt.stop_signal is not None:
            code = 128 + attempt.stop_signal
        if code is not None:
            self._finish(attempt, code, None)
        elif attempt.found_running:
            self._finish(attempt, None, HOST_LOST_NO_EXIT_CODE)
        else:
            self._finish(attempt, None, HOST_LOST_NOT_FOUND)

    # -- output -------------------------------------------------------------------------------

    def _pump(self, attempt: _Attempt, budget: int) -> bool:
        """Move new output lines to the log store; True once the file is read to its end.
        Lines the log store has no room for are read again from the same offset next time,
        so a full disk holds no output in memory."""
        fd = attempt.out_fd
        if fd is None:
            return True
        unread = attempt.offset, attempt.lines.mark()
        now = self._clock.now_ms()
        events: list[Event] = []
        read = 0
        at_end = False
        while read < budget:
            data = os.pread(fd, _READ_CHUNK, attempt.offset)
            attempt.offset += len(data)
            read += len(data)
            if data:
                attempt.lines.feed(data, now, events)
            if len(data) < _READ_CHUNK:
                at_end = True
                break
        if not attempt.output.append(events, now):
            attempt.offset, mark = unread
            attempt.lines.rewind(mark)
            return False
        return at_end

    async def _tail_forever(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(self._poll_interval)
            tick += 1
            for path in list(self._cgroups_unremoved):
                if containment.remove_cgroup(path):
                    self._cgroups_unremoved.discard(path)
            for attempt in list(self._attempts.values()):
                if attempt.ended:
                    continue
                try:
                    self._pump(attempt, _TICK_BUDGET)
                    if not attempt.own and tick % self._check_every == 0:
                        self._check_unwatched(attempt)
                except Exception:
                    log.exception("Following attempt %s failed", attempt.task_id)

    # -- ending -------------------------------------------------------------------------------

    def _finish(self, attempt: _Attempt, exit_code: int | None, lost_reason: str | None) -> None:
        attempt.ended = True
        if attempt.escalation is not None:
            attempt.escalation.cancel()
            attempt.escalation = None
        if self._drained(attempt):
            self._complete(attempt, exit_code, lost_reason)
            return
        task = asyncio.get_running_loop().create_task(
            self._drain_then_complete(attempt, exit_code, lost_reason)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_then_complete(
        self, attempt: _Attempt, exit_code: int | None, lost_reason: str | None
    ) -> None:
        done = False
        while not done:
            # Let other attempts and the API run between chunks; while the log store has no
            # room, wait as the tailer does, then try the same lines again.
            await asyncio.sleep(self._poll_interval if attempt.output.stalled else 0)
            done = self._drained(attempt)
        self._complete(attempt, exit_code, lost_reason)

    def _drained(self, attempt: _Attempt) -> bool:
        """Pump a chunk of an ended attempt's output; True once all of it is stored, its
        last line (with no newline) included."""
        if not self._pump(attempt, _FINISH_BUDGET):
            return False
        mark = attempt.lines.mark()
        events: list[Event] = []
        attempt.lines.finish(events)
        if not attempt.output.append(events, self._clock.now_ms()):
            attempt.lines.rewind(mark)
            return False
        return True

    def _complete(self, attempt: _Attempt, exit_code: int | None, lost_reason: str | None) -> None:
        if attempt.out_fd is not None:
            os.close(attempt.out_fd)
            attempt.out_fd = None
        self._attempts.pop(attempt.task_id, None)
        now = self._clock.now_ms()
        if lost_reason is not None:
            self._emit(self._host_lost(attempt.job_id, attempt.task_id, lost_reason))
            self._release(attempt.directory)
        else:
            if attempt.offset or not attempt.own:
                # Its output is in the log store: the launcher frees the file now, not once
                # the exit is stored, which may wait for that very space (our launcher
                # emptied the directory at the exit already; another's did not).
                self._send({"scrub": attempt.directory})
            # The directory holds the exit code recovery reads: it goes once the dispatcher
            # has stored the exit.
            self._exits_unstored.add(attempt.directory)
            self._emit(
                AttemptExited(
                    attempt.job_id,
                    attempt.task_id,
                    now,
                    exit_code,
                    status_reason=ESSENTIAL_CONTAINER_EXITED,
                    recorded=partial(self._release, attempt.directory),
                )
            )

    def _release(self, directory: str) -> None:
        """The attempt's exit is stored: the launcher recycles or removes its directory."""
        self._exits_unstored.discard(directory)
        if not self._send({"release": directory}):
            _remove_attempt_files(directory)

    def _send(self, request: dict[str, Any]) -> bool:
        """A request to the launcher (started again if it died); False if none can take it.
        Closed meanwhile: nothing is sent, rather than race a new runtime."""
        if self._loop is None:
            return True
        try:
            if self._launcher is None:
                self._launcher = self._new_launcher(self._loop)
            self._launcher.send(request)
        except (OSError, RuntimeError):
            return False
        return True

    # -- reporting ----------------------------------------------------------------------------

    def _failed_to_start(self, spec: AttemptSpec, error: str) -> None:
        reason = f"CannotStartContainerError: {error}"
        self._emit(failed_to_start(spec.job_id, spec.task_id, self._clock.now_ms(), reason))

    def _host_lost(self, job_id: str, task_id: str, reason: str) -> AttemptExited:
        return host_lost(job_id, task_id, self._clock.now_ms(), reason)

    def _emit(self, event: RuntimeEvent) -> None:
        deliver(self._report, event)

    def _new_launcher(self, loop: asyncio.AbstractEventLoop) -> LauncherClient:
        return LauncherClient(
            loop,
            self._on_launcher_message,
            self._on_launcher_gone,
            self._work_dir,
            self._attempts_cgroup,
        )

    def _require_open(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._report is None:
            raise RuntimeError("ProcessRuntime.open() has not been called (or it was closed)")
        return self._loop
