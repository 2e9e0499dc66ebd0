"""Processes that leave their job's process group (setsid, double fork, nohup, a group of their
own) end with the job, through a real server: when the job succeeds, when it is terminated and
when its attempt times out. The process runtime with cgroups (this host has cgroup v2) and with
reapers (--process-containment reaper), and the docker runtime (a container's pid namespace).

Every process of a job carries AWS_BATCH_JOB_ID=<job id> in its environment, so "nothing of
the job is left" is checked on the host's /proc, for containers as well."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchyard.runtimes.process import containment
from tests.containers import define_container_job, docker_queue, require_engine
from tests.escapes import ESCAPE
from tests.fixtures import (
    ServerProcess,
    make_environment,
    submit_job,
    wait_for,
    wait_status,
)

GROUP = "/aws/batch/job"
RUNTIMES = ["cgroup", "reaper", pytest.param("docker", marks=pytest.mark.docker)]
ARGUMENTS = {"cgroup": (), "reaper": ("--process-containment", "reaper"), "docker": ()}


@pytest.fixture(scope="module", params=RUNTIMES)
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def server(runtime: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    if runtime == "docker":
        require_engine().close()  # fails, saying how to get one, without an engine
    data = tmp_path_factory.mktemp(f"containment-{runtime}") / "data"
    proc = ServerProcess(data, "--stop-timeout", "2", *ARGUMENTS[runtime])
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def queue(server: ServerProcess, runtime: str) -> Iterator[str]:
    batch = server.client()
    queue = docker_queue(batch) if runtime == "docker" else make_environment(batch, 4)[0]
    yield queue
    end_running_jobs(batch, queue)


def end_running_jobs(batch: Any, queue: str) -> None:
    """What a failed test left running would outlive the server: terminate it first."""
    for status in ("STARTING", "RUNNING"):
        for job in batch.list_jobs(jobQueue=queue, jobStatus=status)["jobSummaryList"]:
            batch.terminate_job(jobId=job["jobId"], reason="test teardown")
            wait_status(batch, job["jobId"])


def escaping_job(
    batch: Any, queue: str, runtime: str, then: str, tmp_path: Path, **extra: Any
) -> str:
    """Submit a job whose command escapes its process group, then does `then`; its id."""
    environment = [{"name": "PIDS", "value": "/tmp/pids"}]  # inside the container
    if runtime != "docker":
        environment = [
            {"name": "PIDS", "value": str(tmp_path / "pids")},
            {"name": "PYTHON", "value": sys.executable},
        ]
    command = ["sh", "-c", ESCAPE, "escape", then]
    definition = define_container_job(batch, command, environment=environment)
    return submit_job(batch, queue, definition, **extra)


def processes_of(job_id: str) -> set[int]:
    """The host's processes whose environment names the job (zombies have none)."""
    needle = f"AWS_BATCH_JOB_ID={job_id}".encode()
    found = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                environment = Path(f"/proc/{name}/environ").read_bytes()
            except OSError:
                continue
            if needle in environment.split(b"\0"):
                found.add(int(name))
    return found


def start_ticks(pid: int) -> int | None:
    try:
        data = Path(f"/proc/{pid}/stat").read_bytes()
    except FileNotFoundError:
        return None
    return int(data[data.rindex(b")") + 2 :].split()[19])


def wait_escaped(
    server: ServerProcess, job_id: str, runtime: str, pids: Path | None
) -> dict[int, int]:
    """Once the job says its processes escaped: the processes of the job (at least one per way
    plus the command) with their start times. Those it recorded in `pids` (a host path, for the
    process runtime) are among them, held as the runtime says: in the attempt's cgroup (its
    task id ends the log stream's name), or, under reapers, in the server's own cgroup."""
    job = wait_status(server.client(), job_id, ("RUNNING",))
    stream = job["container"]["logStreamName"]
    logs = server.client("logs")

    def escaped() -> int | None:
        events = logs.get_log_events(logGroupName=GROUP, logStreamName=stream)["events"]
        messages = [event["message"] for event in events]
        return int(messages[0].split()[1]) if messages else None

    ways = wait_for(escaped, timeout=30, what="the job's processes escaping")
    found = processes_of(job_id)
    assert len(found) >= ways + 1, (ways, found)
    if pids is not None:
        recorded = {int(line.split()[1]) for line in pids.read_text().splitlines()}
        assert len(recorded) == ways
        assert recorded <= found
        task_id = stream.rsplit("/", 1)[1]
        server_cgroup = containment.own_cgroup()
        for pid in recorded:
            cgroup = containment.own_cgroup(pid)
            assert cgroup is not None
            if runtime == "cgroup":
                assert cgroup.endswith("/" + task_id), (cgroup, task_id)
            else:
                assert cgroup == server_cgroup, (cgroup, server_cgroup)
    # One that ended meanwhile (the command's own `sleep 0.05`) has no start time to compare.
    return {pid: start for pid in found if (start := start_ticks(pid)) is not None}


def all_ended(job_id: str, seen: dict[int, int]) -> bool:
    """No process of the job is left: each seen is gone and reaped (or its pid reused)."""
    return not processes_of(job_id) and all(start_ticks(p) != t for p, t in seen.items())


def test_escaped_processes_end_when_the_job_succeeds(
    server: ServerProcess, queue: str, runtime: str, tmp_path: Path
) -> None:
    batch = server.client()
    job_id = escaping_job(batch, queue, runtime, "sleep 2", tmp_path)
    seen = wait_escaped(server, job_id, runtime, None if runtime == "docker" else tmp_path / "pids")

    assert wait_status(batch, job_id)["status"] == "SUCCEEDED"
    wait_for(lambda: all_ended(job_id, seen), timeout=30, what="the job's processes ending")


def test_escaped_processes_end_when_the_job_is_terminated(
    server: ServerProcess, queue: str, runtime: str, tmp_path: Path
) -> None:
    batch = server.client()
    job_id = escaping_job(batch, queue, runtime, "sleep 1000", tmp_path)
    seen = wait_escaped(server, job_id, runtime, None if runtime == "docker" else tmp_path / "pids")

    batch.terminate_job(jobId=job_id, reason="containment test")

    job = wait_status(batch, job_id)
    assert (job["status"], job["statusReason"]) == ("FAILED", "containment test")
    wait_for(lambda: all_ended(job_id, seen), timeout=30, what="the job's processes ending")


@pytest.mark.slow
def test_escaped_processes_end_when_the_attempt_times_out(tmp_path: Path) -> None:
    # Both containments of the process runtime at once: AWS's shortest timeout is 60 s.
    servers = [
        ServerProcess(tmp_path / kind / "data", "--stop-timeout", "2", *ARGUMENTS[kind])
        for kind in ("cgroup", "reaper")
    ]
    jobs: list[tuple[ServerProcess, str, str]] = []
    try:
        for server in servers:
            server.start()
            batch = server.client()
            (queue,) = make_environment(batch, max_vcpus=4)
            job_id = escaping_job(
                batch,
                queue,
                "process",
                "sleep 1000",
                server.data_dir.parent,
                timeout={"attemptDurationSeconds": 60},
            )
            jobs.append((server, queue, job_id))
        seen = {
            job_id: wait_escaped(server, job_id, kind, server.data_dir.parent / "pids")
            for (server, _, job_id), kind in zip(jobs, ("cgroup", "reaper"), strict=True)
        }
        for server, _, job_id in jobs:
            job = wait_status(server.client(), job_id, timeout=120)
            assert (job["status"], job["statusReason"]) == (
                "FAILED",
                "Job attempt duration exceeded timeout",
            )
            wait_for(
                lambda: all_ended(job_id, seen[job_id]),  # noqa: B023 - called at once
                timeout=30,
                what="the job's processes ending",
            )
    finally:
        for server, queue, _ in jobs:
            end_running_jobs(server.client(), queue)
        for server in servers:
            server.stop()


@pytest.mark.parametrize("kind", ["cgroup", "reaper"])
def test_escaped_processes_end_with_a_job_that_outlived_a_kill_9_of_the_server(
    tmp_path: Path, kind: str
) -> None:
    server = ServerProcess(tmp_path / "data", "--stop-timeout", "2", *ARGUMENTS[kind])
    go = tmp_path / "go"
    server.start()
    try:
        batch = server.client()
        (queue,) = make_environment(batch, max_vcpus=4)
        then = f"until [ -e {go} ]; do sleep 0.05; done"
        job_id = escaping_job(batch, queue, "process", then, tmp_path)
        seen = wait_escaped(server, job_id, kind, tmp_path / "pids")
        server.kill9()
        escapees = [int(line.split()[1]) for line in (tmp_path / "pids").read_text().splitlines()]
        assert all(start_ticks(pid) == seen[pid] for pid in escapees)  # they run on

        server.start()
        go.touch()

        job = wait_status(server.client(), job_id)
        assert (job["status"], len(job["attempts"])) == ("SUCCEEDED", 1)
        wait_for(lambda: all_ended(job_id, seen), timeout=30, what="the job's processes ending")
    finally:
        go.touch()  # however the test ended, the job ends too (it outlives a server)
        server.stop()
