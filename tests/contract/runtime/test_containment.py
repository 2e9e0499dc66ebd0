"""Containment in the process runtime: whatever an attempt starts, however it detaches (setsid,
double fork, nohup, a process group of its own), ends when the attempt ends, is stopped, or
outlives a restart. Each test runs with the attempt's own cgroup and with a reaper process
(use_cgroups=False), so both mechanisms of runtimes/process/containment.py are exercised here."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from batchyard.logs.file_store import FileLogStore
from batchyard.runtimes.base import (
    ESSENTIAL_CONTAINER_EXITED,
    TASK_FAILED_TO_START,
    AttemptRef,
    AttemptSpec,
)
from batchyard.runtimes.process import containment
from batchyard.runtimes.process.runtime import ProcessRuntime
from tests.builders import WallClock, an_attempt_spec
from tests.contract.runtime.harness import GROUP, poll
from tests.contract.runtime.process_host import Host, on_host, open_host, parent_of
from tests.escapes import ESCAPE

WAYS = {"setsid", "double-fork", "nohup", "process-group"}
MECHANISMS = ["cgroup", "reaper"]


def start_ticks(pid: int) -> int | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return None
    return int(data[data.rindex(b")") + 2 :].split()[19])


class Escapees:
    """The processes an escape script started, by how they left, with their start times."""

    def __init__(self, tmp_path: Path) -> None:
        self.script = tmp_path / "escape.sh"
        self.script.write_text(ESCAPE)
        self.pids_file = tmp_path / f"pids-{uuid.uuid4().hex}"
        self.pids_file.touch()
        self.started: dict[str, tuple[int, int | None]] = {}

    def spec(self, then: str, **env: str) -> AttemptSpec:
        return an_attempt_spec(
            ("sh", str(self.script), then),
            env={"PIDS": str(self.pids_file), "PYTHON": sys.executable, **env},
        )

    def read(self) -> dict[str, int]:
        lines = self.pids_file.read_text().splitlines()
        found = {how: int(pid) for how, pid in (line.split() for line in lines)}
        assert set(found) <= WAYS
        if set(found) == WAYS and not self.started:
            self.started = {how: (pid, start_ticks(pid)) for how, pid in found.items()}
            assert all(start is not None for _, start in self.started.values()), self.started
        return found

    def all_running(self) -> bool:
        return set(self.read()) == WAYS

    def all_gone(self) -> bool:
        # Gone and reaped: no such pid, or a new process under a reused one.
        return all(start_ticks(pid) != start for pid, start in self.started.values())

    async def wait_gone(self) -> None:
        assert self.started, "the escapees never all started"
        await poll(self.all_gone, deadline_s=30)


def check_mechanism(host: Host, spec: AttemptSpec, escapees: Escapees, mechanism: str) -> None:
    """The escapees are held the way the runtime says: in the attempt's cgroup, or by a reaper
    between the launcher and the command."""
    handle = json.loads(host.handle_of(spec))
    command = handle["pid"]
    for pid, _ in escapees.started.values():
        own = containment.own_cgroup(pid)
        if mechanism == "cgroup":
            assert own == handle["cgroup"], (own, handle)
            assert own is not None
            assert own.endswith("/" + spec.task_id)
        else:
            assert own == containment.own_cgroup()  # the server's
    if mechanism == "reaper":
        assert "cgroup" not in handle
        reaper = parent_of(command)
        assert host.runtime._launcher is not None
        assert reaper != host.runtime._launcher.pid
        assert parent_of(reaper) == host.runtime._launcher.pid
        assert parent_of(escapees.started["double-fork"][0]) == reaper


def with_host(
    tmp_path: Path, mechanism: str, scenario: Callable[[Host], Coroutine[Any, Any, None]]
) -> None:
    async def main() -> None:
        host = await open_host(tmp_path, use_cgroups=mechanism == "cgroup")
        try:
            await scenario(host)
        finally:
            await host.runtime.close()

    asyncio.run(main())


@pytest.fixture(params=MECHANISMS)
def mechanism(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_cgroups_are_available_on_this_host() -> None:
    # The cgroup tests below would silently test reapers twice without a writable cgroup v2
    # (check_mechanism fails them too, less plainly).
    needs = "the containment tests need a writable cgroup v2: run them as root on a cgroup v2 host"
    assert containment.attempts_cgroup("anything") is not None, needs
    assert os.access(str(containment.own_cgroup()), os.W_OK), needs


def test_escaped_processes_end_when_the_command_exits(tmp_path: Path, mechanism: str) -> None:
    escapees = Escapees(tmp_path)

    async def scenario(host: Host) -> None:
        spec = escapees.spec("sleep 0.5; exit 3")
        await host.runtime.start(spec)
        await poll(escapees.all_running)
        check_mechanism(host, spec, escapees, mechanism)

        exited = await host.exited(spec)

        assert exited.exit_code == 3
        await escapees.wait_gone()

    with_host(tmp_path, mechanism, scenario)


def test_escaped_processes_end_when_the_attempt_is_stopped(tmp_path: Path, mechanism: str) -> None:
    escapees = Escapees(tmp_path)

    async def scenario(host: Host) -> None:
        spec = escapees.spec("sleep 1000")
        await host.runtime.start(spec)
        await poll(escapees.all_running)
        check_mechanism(host, spec, escapees, mechanism)

        await host.runtime.stop(spec.job_id, spec.task_id, grace_seconds=10)

        assert (await host.exited(spec)).exit_code == 143
        await escapees.wait_gone()

    with_host(tmp_path, mechanism, scenario)


def test_escaped_processes_end_when_sigkill_follows_the_grace_period(
    tmp_path: Path, mechanism: str
) -> None:
    escapees = Escapees(tmp_path)

    async def scenario(host: Host) -> None:
        spec = escapees.spec("trap '' TERM; echo trapped; while :; do sleep 1; done")
        await host.runtime.start(spec)
        await poll(lambda: host.messages(spec) == ["escaped 4 ways", "trapped"])
        assert escapees.all_running()

        await host.runtime.stop(spec.job_id, spec.task_id, grace_seconds=0.3)

        assert (await host.exited(spec)).exit_code == 137
        await escapees.wait_gone()

    with_host(tmp_path, mechanism, scenario)


@pytest.mark.parametrize("launcher", ["lives", "killed"])
def test_escaped_processes_end_with_an_attempt_that_outlived_a_restart(
    tmp_path: Path, mechanism: str, launcher: str
) -> None:
    escapees = Escapees(tmp_path)
    go = tmp_path / "go"
    use_cgroups = mechanism == "cgroup"

    async def main() -> None:
        first = await open_host(tmp_path, use_cgroups=use_cgroups)
        spec = escapees.spec('until [ -e "$GO" ]; do sleep 0.05; done; exit 4', GO=str(go))
        await first.runtime.start(spec)
        await poll(escapees.all_running)
        handle = first.handle_of(spec)
        assert first.runtime._launcher is not None
        launcher_pid = first.runtime._launcher.pid
        await first.runtime.close()  # the server stops; the attempt runs on
        if launcher == "killed":
            os.kill(launcher_pid, signal.SIGKILL)

        second = await open_host(tmp_path, use_cgroups=use_cgroups)
        try:
            ref = AttemptRef(spec.job_id, spec.task_id, GROUP, spec.log_stream_name, handle)
            await second.runtime.recover([ref])
            await asyncio.sleep(0.3)  # recovery must leave a claimed attempt alone
            assert escapees.all_running()
            go.touch()
            exited = await second.exited(spec)
            await escapees.wait_gone()
        finally:
            await second.runtime.close()

        if launcher == "lives" or mechanism == "reaper":  # the reaper records the exit itself
            assert (exited.exit_code, exited.status_reason) == (4, ESSENTIAL_CONTAINER_EXITED)
        else:
            assert exited.exit_code is None  # nothing recorded it: the host is lost
        if use_cgroups:
            await poll(lambda: not os.path.exists(json.loads(handle)["cgroup"]))

    asyncio.run(main())


def test_recovery_ends_and_removes_cgroups_no_attempt_claims(tmp_path: Path) -> None:
    base = containment.attempts_cgroup(str(tmp_path / "work"))
    assert base is not None
    stale = os.path.join(base, uuid.uuid4().hex)  # a server died before storing its attempt
    containment.create_cgroup(stale)
    left = subprocess.Popen(["sleep", "1000"])
    try:
        containment.move_to_cgroup(stale, left.pid)

        async def scenario(host: Host) -> None:
            await host.runtime.recover([])
            await poll(lambda: left.poll() is not None)
            await poll(lambda: not os.path.exists(stale))

        on_host(tmp_path, scenario)
        assert left.returncode == -signal.SIGKILL
    finally:
        left.kill()
        left.wait()


def test_attempts_started_together_report_their_own_starts_and_exits(
    tmp_path: Path, mechanism: str
) -> None:
    # One launcher batch: with reapers, their answers are read after all are forked.
    unrunnable = tmp_path / "not-a-program"
    unrunnable.write_bytes(b"\x00\x01\x02")
    unrunnable.chmod(0o755)

    async def scenario(host: Host) -> None:
        specs = [an_attempt_spec(("sh", "-c", f"exit {code}")) for code in range(4)]
        bad = an_attempt_spec((str(unrunnable),))
        for spec in [*specs[:2], bad, *specs[2:]]:
            await host.runtime.start(spec)

        exits = [await host.exited(spec) for spec in specs]
        failed = await host.exited(bad)

        assert [exited.exit_code for exited in exits] == [0, 1, 2, 3]
        assert (failed.exit_code, failed.status_reason) == (None, TASK_FAILED_TO_START)
        assert (
            failed.reason == f'CannotStartContainerError: exec: "{unrunnable}": exec format error'
        )
        after = an_attempt_spec(("sh", "-c", "exit 9"))  # the launcher carries on
        assert (await host.run(after)).exit_code == 9

    with_host(tmp_path, mechanism, scenario)


def test_where_a_cgroup_cannot_be_made_attempts_run_under_reapers(tmp_path: Path) -> None:
    # Not a cgroup file system: a directory can be made, but it has no cgroup.kill, as when
    # cgroups are read-only, or the kernel is older than 5.14.
    not_cgroups = tmp_path / "not-cgroups"
    escapees = Escapees(tmp_path)

    async def main() -> None:
        logs = FileLogStore(tmp_path / "logs")
        runtime = ProcessRuntime(tmp_path / "work", logs, WallClock())
        runtime._attempts_cgroup = str(not_cgroups)
        host = Host(runtime, logs, tmp_path / "work", [])
        await runtime.open(host.events.append)
        try:
            spec = escapees.spec("sleep 0.5")
            await runtime.start(spec)
            await poll(escapees.all_running)
            check_mechanism(host, spec, escapees, "reaper")
            assert (await host.exited(spec)).exit_code == 0
            await escapees.wait_gone()
        finally:
            await runtime.close()
        assert list(not_cgroups.glob("*")) == []  # the attempt's directory was taken back

    asyncio.run(main())
