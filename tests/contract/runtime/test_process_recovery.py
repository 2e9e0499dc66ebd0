"""The process runtime across a restart: re-attaching to running attempts, reporting exits that
happened while the server was down or were not yet stored, cleaning directories no attempt
owns, a launcher whose server is gone, and stops that race the start."""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import uuid
from pathlib import Path

from batchyard.runtimes.base import (
    ESSENTIAL_CONTAINER_EXITED,
    HOST_LOST,
    AttemptExited,
    AttemptRef,
    AttemptStarted,
)
from tests.builders import an_attempt_spec
from tests.contract.runtime.harness import GROUP, poll
from tests.contract.runtime.process_host import (
    Host,
    directory_gone,
    on_host,
    open_host,
    parent_of,
    process_state,
)


def test_recover_reattaches_to_an_attempt_started_before_a_restart(tmp_path: Path) -> None:
    async def main() -> None:
        first = await open_host(tmp_path)
        spec = an_attempt_spec(("sh", "-c", "echo one; sleep 1.5; echo two; exit 5"))
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
        spec = an_attempt_spec(("sh", "-c", "echo a; echo b; sleep 0.3; echo c; exit 4"))
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
        spec = an_attempt_spec(("sh", "-c", "echo done; exit 7"))
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
        left, unstored = (
            an_attempt_spec(("sh", "-c", "echo x > file; exit 0")),
            an_attempt_spec(("true",)),
        )
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
        spec = an_attempt_spec(("sh", "-c", "echo ran; exit 0"))
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
        probe = an_attempt_spec(("sh", "-c", "echo $PPID"))
        assert (await first.run(probe)).exit_code == 0
        launcher = int(first.messages(probe)[0])
        marker = tmp_path / "ran"
        spec = an_attempt_spec(("sh", "-c", f"touch {marker}"))
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
        spec = an_attempt_spec(("sh", "-c", "exit 3"))
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
            assert (await second.run(an_attempt_spec(("true",)))).exit_code == 0
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
        spec = an_attempt_spec(("sh", "-c", "echo up; sleep 0.5; echo down"))
        await host.runtime.start(spec)
        await poll(lambda: host.messages(spec) == ["up"])
        pid = json.loads(host.handle_of(spec))["pid"]
        os.kill(parent_of(pid), signal.SIGKILL)

        exited = await host.exited(spec)

        assert (exited.exit_code, exited.status_reason) == (None, HOST_LOST)
        assert host.messages(spec) == ["up", "down"]
        after = an_attempt_spec(("sh", "-c", "exit 6"))  # a new launcher takes over
        assert (await host.run(after)).exit_code == 6

    on_host(tmp_path, scenario)


def test_a_stop_right_after_start_applies_once_the_attempt_runs(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        spec = an_attempt_spec(("sleep", "300"))
        await host.runtime.start(spec)  # returns before the attempt runs
        await host.runtime.stop(spec.job_id, spec.task_id, grace_seconds=10)

        exited = await host.exited(spec)

        assert exited.exit_code == 143
        assert [type(e) for e in host.events] == [AttemptStarted, AttemptExited]

    on_host(tmp_path, scenario)


def test_stop_without_grace_kills_at_once(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        spec = an_attempt_spec(("sh", "-c", "trap '' TERM; echo up; sleep 300"))
        await host.runtime.start(spec)
        await poll(lambda: host.messages(spec) == ["up"])

        await host.runtime.stop(spec.job_id, spec.task_id, grace_seconds=0)

        assert (await host.exited(spec)).exit_code == 137

    on_host(tmp_path, scenario)


def test_the_log_stream_exists_from_the_start_even_without_output(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        spec = an_attempt_spec(("sleep", "300"))
        await host.runtime.start(spec)
        await poll(lambda: any(isinstance(e, AttemptStarted) for e in host.events))

        info = host.logs.stream_info(GROUP, spec.log_stream_name)
        assert info is not None
        assert info.stored_bytes == 0
        await host.runtime.stop(spec.job_id, spec.task_id, grace_seconds=0)
        assert (await host.exited(spec)).exit_code == 137

    on_host(tmp_path, scenario)
