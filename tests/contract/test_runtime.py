"""Runtime contract (runtimes/base.py) over the process, docker and fake runtimes, then what
only the process runtime does: environment, working directories, live logs, signals, process
groups, recovery after a restart. What only the docker runtime does: test_docker_runtime.py."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from batchyard.domain.model import Resources
from batchyard.logs import FileLogStore, LogStore
from batchyard.runtimes.base import (
    ESSENTIAL_CONTAINER_EXITED,
    HOST_LOST,
    MAX_EVENT_BYTES,
    TASK_FAILED_TO_START,
    AttemptExited,
    AttemptRef,
    AttemptSpec,
    AttemptStarted,
    Runtime,
    RuntimeEvent,
)
from batchyard.runtimes.docker import DockerRuntime
from batchyard.runtimes.fake import FakeRuntime
from batchyard.runtimes.process import ProcessRuntime
from tests.containers import IMAGE, RUN_FOREVER, remove_containers, require_engine

T = TypeVar("T")
GROUP = "/aws/batch/job"
DEADLINE_S = 15.0


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


class VirtualClock:
    def __init__(self) -> None:
        self.now = 1_700_000_000_000

    def now_ms(self) -> int:
        return self.now


def a_spec(command: tuple[str, ...], *, job_id: str = "job-1", **env: str) -> AttemptSpec:
    task_id = uuid.uuid4().hex
    return AttemptSpec(
        job_id=job_id,
        task_id=task_id,
        attempt_number=1,
        job_queue="high",
        compute_environment="default",
        job_definition_name="render",
        command=command,
        environment={"AWS_BATCH_JOB_ID": job_id, "AWS_BATCH_JOB_ATTEMPT": "1", **env},
        resources=Resources(vcpus=1, memory_mib=512),
        container={"image": IMAGE},  # the docker runtime runs it; the others ignore it
        log_group=GROUP,
        log_stream_name=f"render/default/{task_id}",
        network_mode="none",
    )


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
            clock = VirtualClock()
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


# -- the contract, for every runtime ---------------------------------------------------------


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker), "fake"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("code", [0, 3])
def test_reports_start_then_exit_with_the_exit_code(kind: str, tmp_path: Path, code: int) -> None:
    async def scenario(h: Harness) -> None:
        spec = a_spec(h.exit_with(code))
        await h.runtime.start(spec)
        exited = await h.exited(spec.task_id)

        started, ended = h.of(spec.task_id)
        assert isinstance(started, AttemptStarted)
        assert started.job_id == spec.job_id
        assert started.runtime_handle
        assert ended == exited
        assert exited.exit_code == code
        assert exited.status_reason == ESSENTIAL_CONTAINER_EXITED
        assert exited.reason is None
        assert started.started_at <= exited.stopped_at

    with_runtime(kind, tmp_path, scenario)


def test_stop_ends_a_running_attempt_with_143(kind: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        spec = a_spec(h.run_forever)
        await h.runtime.start(spec)
        await h.until(lambda: h.has_started(spec.task_id))
        assert h.exit_of(spec.task_id) is None

        await h.runtime.stop(spec.job_id, spec.task_id, grace_seconds=10)
        exited = await h.exited(spec.task_id)

        assert exited.exit_code == 143
        assert exited.status_reason == ESSENTIAL_CONTAINER_EXITED
        assert len(h.of(spec.task_id)) == 2

    with_runtime(kind, tmp_path, scenario)


def test_an_attempt_that_cannot_start_reports_only_task_failed_to_start(
    kind: str, tmp_path: Path
) -> None:
    async def scenario(h: Harness) -> None:
        spec = a_spec(h.cannot_start)
        await h.runtime.start(spec)
        exited = await h.exited(spec.task_id)

        assert h.of(spec.task_id) == [exited]
        assert exited.exit_code is None
        assert exited.status_reason == TASK_FAILED_TO_START
        assert exited.reason is not None
        assert exited.reason.startswith("CannotStartContainerError: ")

    with_runtime(kind, tmp_path, scenario)


def test_attempts_run_side_by_side_and_report_their_own_exits(kind: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        specs = [a_spec(h.exit_with(code), job_id=f"job-{code}") for code in (1, 2, 7)]
        for spec in specs:
            await h.runtime.start(spec)
        exits = [await h.exited(spec.task_id) for spec in specs]

        assert [(e.job_id, e.exit_code) for e in exits] == [
            ("job-1", 1),
            ("job-2", 2),
            ("job-7", 7),
        ]

    with_runtime(kind, tmp_path, scenario)


def test_recover_of_an_attempt_that_never_started_reports_host_lost(
    kind: str, tmp_path: Path
) -> None:
    async def scenario(h: Harness) -> None:
        ref = AttemptRef("job-9", uuid.uuid4().hex, GROUP, "render/default/x", None)
        await h.runtime.recover([ref])

        [lost] = h.of(ref.task_id)
        assert isinstance(lost, AttemptExited)
        assert (lost.job_id, lost.exit_code, lost.status_reason) == ("job-9", None, HOST_LOST)
        assert lost.status_reason.startswith("Host EC2 (instance ")

    with_runtime(kind, tmp_path, scenario)


def test_recover_finds_by_task_id_an_attempt_whose_handle_was_never_recorded(
    kind: str, tmp_path: Path
) -> None:
    # The server died after the runtime started these attempts but before the store recorded
    # their starts: the store hands them back with no handle. They must be found (a retry
    # beside a live attempt would run the job twice at once) and end with their real exits.
    async def scenario(h: Harness) -> None:
        ending = a_spec(h.exit_after_a_second(3), job_id="job-ending")
        running = a_spec(h.run_forever, job_id="job-running")
        for spec in (ending, running):
            await h.runtime.start(spec)
        await h.until(lambda: h.has_started(ending.task_id) and h.has_started(running.task_id))
        await h.restart()
        h.events.clear()

        refs = [
            AttemptRef(spec.job_id, spec.task_id, GROUP, spec.log_stream_name, None)
            for spec in (ending, running)
        ]
        await h.runtime.recover(refs)
        exited = await h.exited(ending.task_id)

        assert (exited.job_id, exited.exit_code, exited.status_reason) == (
            "job-ending",
            3,
            ESSENTIAL_CONTAINER_EXITED,
        )
        started = h.of(ending.task_id)[0]
        assert isinstance(started, AttemptStarted)  # reported again, now with a handle
        assert started.runtime_handle
        assert started.started_at <= exited.stopped_at
        [still_running] = h.of(running.task_id)
        assert isinstance(still_running, AttemptStarted)
        assert still_running.runtime_handle

        await h.runtime.stop(running.job_id, running.task_id, grace_seconds=10)
        assert (await h.exited(running.task_id)).exit_code == 143

    with_runtime(kind, tmp_path, scenario)


def test_stopping_an_unknown_attempt_reports_nothing(kind: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        await h.runtime.stop("job-x", uuid.uuid4().hex, grace_seconds=1)
        assert h.events == []

    with_runtime(kind, tmp_path, scenario)


def test_host_limits_are_positive(kind: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> Resources:
        return h.runtime.host_limits()

    limits = with_runtime(kind, tmp_path, scenario)
    assert limits.vcpus > 0
    assert limits.memory_mib > 0
    assert limits.gpus == 0


# -- the fake runtime's virtual time ------------------------------------------------------------


def test_fake_runtime_reports_exits_only_when_time_reaches_them() -> None:
    async def main() -> None:
        clock = VirtualClock()
        fake = FakeRuntime(clock)
        events: list[RuntimeEvent] = []
        await fake.open(events.append)
        t0 = clock.now
        slow, quick, forever = (
            a_spec(("fake", "exit", "4", "after", "5000")),
            a_spec(("fake", "oom", "after", "1000")),
            a_spec(("fake", "run-forever")),
        )
        for spec in (slow, quick, forever):
            await fake.start(spec)

        assert [type(e) for e in events] == [AttemptStarted] * 3
        assert fake.next_event_at() == t0 + 1000
        fake.advance_to(t0 + 999)
        assert len(events) == 3
        fake.advance_to(t0 + 6000)

        exits = [e for e in events[3:] if isinstance(e, AttemptExited)]
        assert [(e.task_id, e.exit_code, e.stopped_at) for e in exits] == [
            (quick.task_id, 137, t0 + 1000),
            (slow.task_id, 4, t0 + 5000),
        ]
        assert len(events) == 5
        assert exits[0].reason == "OutOfMemoryError: Container killed due to memory usage"
        assert fake.next_event_at() is None
        assert fake.running == (forever.task_id,)
        assert fake.started == [slow, quick, forever]

        await fake.stop(forever.job_id, forever.task_id, grace_seconds=30)
        await fake.stop("job-1", "unknown", grace_seconds=30)
        assert fake.stopped == [forever.task_id, "unknown"]
        assert not fake.running

    asyncio.run(main())


def test_fake_runtime_stop_cancels_a_scheduled_exit_and_recover_keeps_running_ones() -> None:
    async def main() -> None:
        clock = VirtualClock()
        fake = FakeRuntime(clock)
        events: list[RuntimeEvent] = []
        await fake.open(events.append)
        stopped, kept = (
            a_spec(("fake", "exit", "0", "after", "10")),
            a_spec(("fake", "run-forever")),
        )
        await fake.start(stopped)
        await fake.start(kept)
        await fake.stop(stopped.job_id, stopped.task_id, grace_seconds=1)
        assert fake.next_event_at() is None

        await fake.close()  # a dispatcher restart over the same host
        await fake.open(events.append)
        handle = next(
            e.runtime_handle
            for e in events
            if isinstance(e, AttemptStarted) and e.task_id == kept.task_id
        )
        lost = AttemptRef("job-2", "gone", GROUP, "s", "fake:gone")
        await fake.recover([AttemptRef(kept.job_id, kept.task_id, GROUP, "s", handle), lost])

        assert fake.running == (kept.task_id,)
        assert [(e.task_id, e.status_reason) for e in events if isinstance(e, AttemptExited)] == [
            (stopped.task_id, ESSENTIAL_CONTAINER_EXITED),
            ("gone", HOST_LOST),
        ]

    asyncio.run(main())


def test_fake_runtime_rejects_a_malformed_script() -> None:
    async def main() -> None:
        fake = FakeRuntime(VirtualClock())
        await fake.open(lambda event: None)
        with pytest.raises(ValueError, match="not a fake runtime script"):
            await fake.start(a_spec(("fake", "exit", "after", "10")))

    asyncio.run(main())


# -- the process runtime ------------------------------------------------------------------------


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


def test_the_environment_is_the_specs_over_a_minimal_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHYARD_SERVER_SECRET", "must-not-leak")

    async def scenario(host: Host) -> None:
        spec = a_spec(("env",), job_id="job-env", AWS_BATCH_JQ_NAME="high", GREETING="hi there")
        assert (await host.run(spec)).exit_code == 0

        env = dict(line.split("=", 1) for line in host.messages(spec))
        directory = str((host.work_dir / spec.task_id).resolve())
        assert env["AWS_BATCH_JOB_ID"] == "job-env"
        assert env["AWS_BATCH_JOB_ATTEMPT"] == "1"
        assert env["AWS_BATCH_JQ_NAME"] == "high"
        assert env["GREETING"] == "hi there"
        assert env["HOME"] == directory
        assert env["TMPDIR"] == directory
        assert env["PATH"]
        assert "BATCHYARD_SERVER_SECRET" not in env

    on_host(tmp_path, scenario)


def test_each_attempt_starts_in_a_fresh_empty_directory_removed_after(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        script = 'pwd; ls -A; echo leftover > mine; mkdir -p sub/dir; echo "$(cat mine)"'
        first, second = a_spec(("sh", "-c", script)), a_spec(("sh", "-c", script))
        for spec in (first, second):
            assert (await host.run(spec)).exit_code == 0

        for spec in (first, second):
            directory = (host.work_dir / spec.task_id).resolve()
            assert host.messages(spec) == [str(directory), "leftover"]  # ls -A printed nothing
            await poll(directory_gone(directory))

    on_host(tmp_path, scenario)


def directory_gone(directory: Path) -> Callable[[], bool]:
    return lambda: not directory.exists()


def test_attempt_directories_are_recycled_and_nothing_is_left_after_close(tmp_path: Path) -> None:
    async def main() -> None:
        host = await open_host(tmp_path)
        spare = host.work_dir / ".spare"
        try:
            for _ in range(3):  # one after the other: each reuses the one before
                await host.run(a_spec(("true",)))
            await poll(lambda: list(host.work_dir.glob("[0-9a-f]*")) == [])
            # A directory and its two files, ready for the next attempt.
            await poll(lambda: len(list(spare.iterdir())) == 3)
            assert {path.suffix for path in spare.iterdir()} == {"", ".output", ".exit_code"}
        finally:
            await host.runtime.close()
        await poll(lambda: list(spare.iterdir()) == [])

    asyncio.run(main())


def test_stdout_and_stderr_lines_land_in_order(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        script = "echo out; echo err >&2; echo; printf 'a\\n\\nb\\n'; printf 'no newline'"
        spec = a_spec(("sh", "-c", script))
        assert (await host.run(spec)).exit_code == 0

        assert host.messages(spec) == ["out", "err", "a", "b", "no newline"]  # blanks dropped
        info = host.logs.stream_info(GROUP, spec.log_stream_name)
        assert info is not None
        assert info.first_event_timestamp is not None

    on_host(tmp_path, scenario)


def test_lines_longer_than_a_cloudwatch_event_are_split(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        size = MAX_EVENT_BYTES + 1000
        spec = a_spec(("sh", "-c", f"head -c {size} /dev/zero | tr '\\0' a; echo; echo end"))
        assert (await host.run(spec)).exit_code == 0

        assert [len(m) for m in host.messages(spec)] == [MAX_EVENT_BYTES, 1000, 3]

    on_host(tmp_path, scenario)


def test_lines_reach_the_log_store_while_the_attempt_runs(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        spec = a_spec(("sh", "-c", "echo $(date +%s%3N) first; sleep 30; echo never"))
        await host.runtime.start(spec)

        await poll(lambda: host.messages(spec) != [], deadline_s=5)

        [event] = host.logs.read(GROUP, spec.log_stream_name, 0, 10)
        printed_at = int(event.message.split()[0])
        assert event.message.endswith(" first")
        assert host.exit_of(spec) is None
        assert 0 <= event.timestamp - printed_at < 1000  # typically ~50 ms: 100 ms polling
        await host.runtime.stop(spec.job_id, spec.task_id, grace_seconds=5)
        assert (await host.exited(spec)).exit_code == 143
        assert "never" not in host.messages(spec)

    on_host(tmp_path, scenario)


@pytest.mark.parametrize(
    ("script", "code"),
    [
        ("exit 0", 0),
        ("exit 3", 3),
        ("exit 255", 255),
        ("kill -KILL $$", 137),
        ("kill -TERM $$", 143),
        ("kill -SEGV $$", 139),
    ],
)
def test_exit_codes_including_death_by_signal(tmp_path: Path, script: str, code: int) -> None:
    async def scenario(host: Host) -> None:
        assert (await host.run(a_spec(("sh", "-c", script)))).exit_code == code

    on_host(tmp_path, scenario)


def test_the_attempt_gets_default_signal_dispositions(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        # Python ignores SIGPIPE; a writer into a closed pipe must die of it here (141 from sh).
        spec = a_spec(("sh", "-c", "yes | head -n 1; echo done"))
        assert (await host.run(spec)).exit_code == 0
        assert host.messages(spec) == ["y", "done"]
        mask = a_spec(("sh", "-c", "grep -E '^(SigIgn|SigBlk)' /proc/self/status"))
        assert (await host.run(mask)).exit_code == 0
        blocked, ignored = (int(line.split()[1], 16) for line in host.messages(mask))
        standard = (1 << 31) - 1  # glibc's posix_spawn leaves its own signals 32-33 ignored
        assert (blocked & standard, ignored & standard) == (0, 0)

    on_host(tmp_path, scenario)


def test_a_missing_or_unrunnable_executable_cannot_start(tmp_path: Path) -> None:
    not_executable = tmp_path / "data.txt"
    not_executable.write_text("hello")

    async def scenario(host: Host) -> None:
        cases = {
            (): "CannotStartContainerError: no command specified",
            ("nope-not-here",): 'CannotStartContainerError: exec: "nope-not-here": '
            "executable file not found in $PATH",
            ("/no/such/file",): 'CannotStartContainerError: exec: "/no/such/file": '
            "stat /no/such/file: no such file or directory",
            (str(not_executable),): f'CannotStartContainerError: exec: "{not_executable}": '
            "permission denied",
        }
        for command, reason in cases.items():
            spec = a_spec(command)
            exited = await host.run(spec)
            assert (exited.exit_code, exited.status_reason, exited.reason) == (
                None,
                TASK_FAILED_TO_START,
                reason,
            )
            assert not any(isinstance(e, AttemptStarted) for e in host.events)
        assert list(host.work_dir.glob("[0-9a-f]*")) == []

    on_host(tmp_path, scenario)


def test_stop_kills_the_whole_process_group(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        spec = a_spec(("sh", "-c", "sleep 300 & echo $!; sleep 300"))
        await host.runtime.start(spec)
        await poll(lambda: host.messages(spec) != [])
        grandchild = int(host.messages(spec)[0])
        child = json.loads(host.handle_of(spec))["pid"]
        assert process_state(grandchild) is not None
        assert process_state(child) is not None

        await host.runtime.stop(spec.job_id, spec.task_id, grace_seconds=10)

        assert (await host.exited(spec)).exit_code == 143
        await poll(lambda: process_state(grandchild) is None and process_state(child) is None)

    on_host(tmp_path, scenario)


def test_stop_escalates_to_sigkill_after_the_grace_period(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        spec = a_spec(("sh", "-c", "trap '' TERM; sleep 300 & echo $!; wait"))
        await host.runtime.start(spec)
        await poll(lambda: host.messages(spec) != [])
        grandchild = int(host.messages(spec)[0])

        began = time.monotonic()
        await host.runtime.stop(spec.job_id, spec.task_id, grace_seconds=0.5)
        exited = await host.exited(spec)

        assert exited.exit_code == 137
        assert time.monotonic() - began >= 0.5
        await poll(lambda: process_state(grandchild) is None)

    on_host(tmp_path, scenario)


def test_processes_left_behind_end_with_the_attempt(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        spec = a_spec(("sh", "-c", "sleep 300 & echo $!"))
        assert (await host.run(spec)).exit_code == 0

        grandchild = int(host.messages(spec)[0])
        await poll(lambda: process_state(grandchild) is None)

    on_host(tmp_path, scenario)


def test_recover_reattaches_to_an_attempt_started_before_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        first = await open_host(tmp_path)
        spec = a_spec(("sh", "-c", "echo one; sleep 1.5; echo two; exit 5"))
        await first.runtime.start(spec)
        await poll(lambda: first.messages(spec) == ["one"])
        handle = first.handle_of(spec)
        await first.runtime.close()  # the server stops; the attempt runs on

        second = await open_host(tmp_path)  # a new log store instance too
        try:
            ref = AttemptRef(spec.job_id, spec.task_id, GROUP, spec.log_stream_name, handle)
            await second.runtime.recover([ref])
            exited = await second.exited(spec)
        finally:
            await second.runtime.close()

        assert (exited.exit_code, exited.status_reason) == (5, ESSENTIAL_CONTAINER_EXITED)
        assert second.messages(spec) == ["one", "two"]
        assert first.exit_of(spec) is None

    asyncio.run(main())


def test_recover_reports_an_attempt_that_ended_while_the_server_was_down(tmp_path: Path) -> None:
    async def main() -> None:
        first = await open_host(tmp_path)
        spec = a_spec(("sh", "-c", "echo a; echo b; sleep 0.3; echo c; exit 4"))
        await first.runtime.start(spec)
        await poll(lambda: first.messages(spec) == ["a", "b"])
        handle = first.handle_of(spec)
        await first.runtime.close()
        pid = json.loads(handle)["pid"]
        # Reaped, not only a zombie: the launcher records the exit code before it reaps.
        await poll(lambda: not Path(f"/proc/{pid}").exists())

        second = await open_host(tmp_path)
        try:
            ref = AttemptRef(spec.job_id, spec.task_id, GROUP, spec.log_stream_name, handle)
            await second.runtime.recover([ref])
            exited = second.exit_of(spec)  # nothing to wait for: it is reported at once
        finally:
            await second.runtime.close()

        assert exited is not None
        assert exited.exit_code == 4
        assert second.messages(spec) == ["a", "b", "c"]

    asyncio.run(main())


def test_an_exit_not_yet_stored_is_reported_again_after_a_restart(tmp_path: Path) -> None:
    # The server dies after its runtime reported an exit but before the dispatcher stored
    # it: the next server's recovery must find the exit code, not call the host lost.
    async def main() -> None:
        first = await open_host(tmp_path, stores_exits=False)
        spec = a_spec(("sh", "-c", "echo done; exit 7"))
        reported = await first.run(spec)
        handle = first.handle_of(spec)
        await first.runtime.close()
        assert reported.exit_code == 7
        assert (first.work_dir / spec.task_id).exists()

        second = await open_host(tmp_path)
        try:
            ref = AttemptRef(spec.job_id, spec.task_id, GROUP, spec.log_stream_name, handle)
            await second.runtime.recover([ref])
            again = await second.exited(spec)
            assert (again.exit_code, again.status_reason) == (7, ESSENTIAL_CONTAINER_EXITED)
            # Stored this time (open_host acknowledges): the directory goes.
            await poll(directory_gone((second.work_dir / spec.task_id).resolve()))
        finally:
            await second.runtime.close()

    asyncio.run(main())


def test_recover_removes_attempt_directories_no_attempt_owns(tmp_path: Path) -> None:
    # A server died after storing an exit but before its runtime released the directory.
    async def main() -> None:
        first = await open_host(tmp_path, stores_exits=False)
        left, unstored = a_spec(("sh", "-c", "echo x > file; exit 0")), a_spec(("true",))
        await first.run(left)
        await first.run(unstored)
        handle = first.handle_of(unstored)
        await first.runtime.close()
        stray = first.work_dir / "not-an-attempt"
        stray.mkdir()
        for spec in (left, unstored):
            assert (first.work_dir / spec.task_id).is_dir()

        second = await open_host(tmp_path)
        try:
            # The store knows only `unstored` as running (its exit never reached the store).
            ref = AttemptRef(
                unstored.job_id, unstored.task_id, GROUP, unstored.log_stream_name, handle
            )
            await second.runtime.recover([ref])
            assert (await second.exited(unstored)).exit_code == 0
            left_dir = (second.work_dir / left.task_id).resolve()
            await poll(
                lambda: (
                    not any(Path(f"{left_dir}{s}").exists() for s in ("", ".output", ".exit_code"))
                )
            )
            await poll(directory_gone((second.work_dir / unstored.task_id).resolve()))
            assert stray.is_dir()  # not an attempt's: left alone
        finally:
            await second.runtime.close()

    asyncio.run(main())


def test_recover_finds_an_attempt_that_ended_before_its_start_was_stored(tmp_path: Path) -> None:
    async def main() -> None:
        first = await open_host(tmp_path, stores_exits=False)
        spec = a_spec(("sh", "-c", "echo ran; exit 0"))
        await first.run(spec)
        await first.runtime.close()  # the server died before storing the start or the exit

        second = await open_host(tmp_path)
        try:
            ref = AttemptRef(spec.job_id, spec.task_id, GROUP, spec.log_stream_name, None)
            await second.runtime.recover([ref])
            started, exited = [e for e in second.events if e.task_id == spec.task_id]
        finally:
            await second.runtime.close()

        assert isinstance(started, AttemptStarted)
        assert json.loads(started.runtime_handle)["dir"].endswith(spec.task_id)
        assert isinstance(exited, AttemptExited)
        assert (exited.exit_code, exited.status_reason) == (0, ESSENTIAL_CONTAINER_EXITED)
        assert second.messages(spec) == ["ran"]

    asyncio.run(main())


def waits_for_a_lock(pid: int) -> bool:
    """Whether `pid` is blocked waiting for a file lock (/proc/locks marks waiters "->")."""
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if len(fields) > 5 and fields[1] == "->" and fields[5] == str(pid):
            return True
    return False


def test_a_launcher_whose_server_is_gone_starts_nothing_more(tmp_path: Path) -> None:
    # Start requests the launcher read but had not carried out when its server died: the next
    # server's recovery finds no record of them and calls them lost (the job may retry), so
    # they must never run.
    async def main() -> None:
        first = await open_host(tmp_path)
        probe = a_spec(("sh", "-c", "echo $PPID"))
        assert (await first.run(probe)).exit_code == 0
        launcher = int(first.messages(probe)[0])
        marker = tmp_path / "ran"
        spec = a_spec(("sh", "-c", f"touch {marker}"))
        lock = os.open(first.work_dir / ".launch.lock", os.O_RDWR)
        try:
            fcntl.flock(lock, fcntl.LOCK_EX)  # the launcher reads the request, then waits
            await first.runtime.start(spec)
            await poll(lambda: waits_for_a_lock(launcher))
            await first.runtime.close()  # the server is gone
        finally:
            os.close(lock)

        second = await open_host(tmp_path)
        try:
            ref = AttemptRef(spec.job_id, spec.task_id, GROUP, spec.log_stream_name, None)
            await second.runtime.recover([ref])
            [lost] = second.events
            await poll(lambda: process_state(launcher) is None)  # it has done all it will do
        finally:
            await second.runtime.close()

        assert isinstance(lost, AttemptExited)
        assert (lost.task_id, lost.exit_code, lost.status_reason) == (spec.task_id, None, HOST_LOST)
        assert not marker.exists()
        assert not (second.work_dir / spec.task_id).exists()

    asyncio.run(main())


def test_recover_keeps_the_directory_of_an_exit_reported_but_not_stored(tmp_path: Path) -> None:
    async def main() -> None:
        first = await open_host(tmp_path, stores_exits=False)
        spec = a_spec(("sh", "-c", "exit 3"))
        await first.run(spec)
        handle = first.handle_of(spec)
        await first.runtime.close()

        # The next server reports the exit again, but dies before storing it either.
        second = await open_host(tmp_path, stores_exits=False)
        try:
            ref = AttemptRef(spec.job_id, spec.task_id, GROUP, spec.log_stream_name, handle)
            await second.runtime.recover([ref])
            assert (await second.exited(spec)).exit_code == 3
            await second.runtime.recover([])  # a later sweep must not take it either
            # The launcher takes requests in order: once this attempt has run, any release
            # sent before it has been carried out.
            assert (await second.run(a_spec(("true",)))).exit_code == 0
            exit_code = second.work_dir / f"{spec.task_id}.exit_code"
            assert exit_code.read_text().splitlines()[0].strip() == "3"
        finally:
            await second.runtime.close()

    asyncio.run(main())


def test_recover_of_a_process_that_is_gone_reports_host_lost(tmp_path: Path) -> None:
    dead_pid = int(Path("/proc/sys/kernel/pid_max").read_text())  # pids stay below pid_max

    async def scenario(host: Host) -> None:
        directory = host.work_dir / "left-by-a-dead-server"
        directory.mkdir()
        handles = [
            json.dumps({"pid": dead_pid, "startTime": 1, "dir": str(directory)}),
            json.dumps({"pid": os.getpid(), "startTime": 1, "dir": str(directory)}),  # reused
            json.dumps({"pid": dead_pid, "startTime": 1, "dir": "/nonexistent/dir"}),
            "not json",
        ]
        refs = [
            AttemptRef(f"job-{i}", uuid.uuid4().hex, GROUP, f"s/{i}", handle)
            for i, handle in enumerate(handles)
        ]
        await host.runtime.recover(refs)

        for ref in refs:
            exited = host.exit_of(ref)
            assert exited is not None
            assert (exited.exit_code, exited.status_reason) == (None, HOST_LOST)
            assert exited.reason == "Host lost: the attempt's process was not found after a restart"

    on_host(tmp_path, scenario)


def test_attempts_outlive_a_dead_launcher_and_end_as_host_lost(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        spec = a_spec(("sh", "-c", "echo up; sleep 0.5; echo down"))
        await host.runtime.start(spec)
        await poll(lambda: host.messages(spec) == ["up"])
        pid = json.loads(host.handle_of(spec))["pid"]
        os.kill(parent_of(pid), signal.SIGKILL)

        exited = await host.exited(spec)

        assert (exited.exit_code, exited.status_reason) == (None, HOST_LOST)
        assert host.messages(spec) == ["up", "down"]
        after = a_spec(("sh", "-c", "exit 6"))  # a new launcher takes over
        assert (await host.run(after)).exit_code == 6

    on_host(tmp_path, scenario)


def test_a_stop_right_after_start_applies_once_the_attempt_runs(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        spec = a_spec(("sleep", "300"))
        await host.runtime.start(spec)  # returns before the attempt runs
        await host.runtime.stop(spec.job_id, spec.task_id, grace_seconds=10)

        exited = await host.exited(spec)

        assert exited.exit_code == 143
        assert [type(e) for e in host.events] == [AttemptStarted, AttemptExited]

    on_host(tmp_path, scenario)


def test_stop_without_grace_kills_at_once(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        spec = a_spec(("sh", "-c", "trap '' TERM; echo up; sleep 300"))
        await host.runtime.start(spec)
        await poll(lambda: host.messages(spec) == ["up"])

        await host.runtime.stop(spec.job_id, spec.task_id, grace_seconds=0)

        assert (await host.exited(spec)).exit_code == 137

    on_host(tmp_path, scenario)


def test_the_log_stream_exists_from_the_start_even_without_output(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        spec = a_spec(("sleep", "300"))
        await host.runtime.start(spec)
        await poll(lambda: any(isinstance(e, AttemptStarted) for e in host.events))

        info = host.logs.stream_info(GROUP, spec.log_stream_name)
        assert info is not None
        assert info.stored_bytes == 0
        await host.runtime.stop(spec.job_id, spec.task_id, grace_seconds=0)
        assert (await host.exited(spec)).exit_code == 137

    on_host(tmp_path, scenario)
