"""What only the process runtime does for an attempt: its environment and fresh working
directory, output lines into the log store while it runs, exit codes and signals, executables
that cannot run, and stops that take the whole process group."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from batchyard.runtimes.base import (
    MAX_EVENT_BYTES,
    TASK_FAILED_TO_START,
    AttemptStarted,
)
from tests.builders import an_attempt_spec
from tests.contract.runtime.harness import GROUP, poll
from tests.contract.runtime.process_host import (
    Host,
    directory_gone,
    on_host,
    open_host,
    process_state,
)

# -- the process runtime ------------------------------------------------------------------------


def test_the_environment_is_the_specs_over_a_minimal_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BATCHYARD_SERVER_SECRET", "must-not-leak")

    async def scenario(host: Host) -> None:
        spec = an_attempt_spec(
            ("env",), job_id="job-env", env={"AWS_BATCH_JQ_NAME": "high", "GREETING": "hi there"}
        )
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
        first, second = an_attempt_spec(("sh", "-c", script)), an_attempt_spec(("sh", "-c", script))
        for spec in (first, second):
            assert (await host.run(spec)).exit_code == 0

        for spec in (first, second):
            directory = (host.work_dir / spec.task_id).resolve()
            assert host.messages(spec) == [str(directory), "leftover"]  # ls -A printed nothing
            await poll(directory_gone(directory))

    on_host(tmp_path, scenario)


def test_attempt_directories_are_recycled_and_nothing_is_left_after_close(tmp_path: Path) -> None:
    async def main() -> None:
        host = await open_host(tmp_path)
        spare = host.work_dir / ".spare"
        try:
            for _ in range(3):  # one after the other: each reuses the one before
                await host.run(an_attempt_spec(("true",)))
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
        spec = an_attempt_spec(("sh", "-c", script))
        assert (await host.run(spec)).exit_code == 0

        assert host.messages(spec) == ["out", "err", "a", "b", "no newline"]  # blanks dropped
        info = host.logs.stream_info(GROUP, spec.log_stream_name)
        assert info is not None
        assert info.first_event_timestamp is not None

    on_host(tmp_path, scenario)


def test_lines_longer_than_a_cloudwatch_event_are_split(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        size = MAX_EVENT_BYTES + 1000
        spec = an_attempt_spec(
            ("sh", "-c", f"head -c {size} /dev/zero | tr '\\0' a; echo; echo end")
        )
        assert (await host.run(spec)).exit_code == 0

        assert [len(m) for m in host.messages(spec)] == [MAX_EVENT_BYTES, 1000, 3]

    on_host(tmp_path, scenario)


def test_lines_reach_the_log_store_while_the_attempt_runs(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        spec = an_attempt_spec(("sh", "-c", "echo $(date +%s%3N) first; sleep 30; echo never"))
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
        assert (await host.run(an_attempt_spec(("sh", "-c", script)))).exit_code == code

    on_host(tmp_path, scenario)


def test_the_attempt_gets_default_signal_dispositions(tmp_path: Path) -> None:
    async def scenario(host: Host) -> None:
        # Python ignores SIGPIPE; a writer into a closed pipe must die of it here (141 from sh).
        spec = an_attempt_spec(("sh", "-c", "yes | head -n 1; echo done"))
        assert (await host.run(spec)).exit_code == 0
        assert host.messages(spec) == ["y", "done"]
        mask = an_attempt_spec(("sh", "-c", "grep -E '^(SigIgn|SigBlk)' /proc/self/status"))
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
            spec = an_attempt_spec(command)
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
        spec = an_attempt_spec(("sh", "-c", "sleep 300 & echo $!; sleep 300"))
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
        spec = an_attempt_spec(("sh", "-c", "trap '' TERM; sleep 300 & echo $!; wait"))
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
        spec = an_attempt_spec(("sh", "-c", "sleep 300 & echo $!"))
        assert (await host.run(spec)).exit_code == 0

        grandchild = int(host.messages(spec)[0])
        await poll(lambda: process_state(grandchild) is None)

    on_host(tmp_path, scenario)
