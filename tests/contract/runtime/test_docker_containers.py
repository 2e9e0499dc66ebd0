"""What only the docker runtime does, against a real Docker engine and the locally built test
image (scripts/provision): output streams into the log store, OOM and pull failures read as
on AWS, stops escalate, containers are removed."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import docker
import pytest

from batchyard.domain.model import Resources
from batchyard.runtimes.base import (
    ESSENTIAL_CONTAINER_EXITED,
    MAX_EVENT_BYTES,
    TASK_FAILED_TO_START,
)
from batchyard.runtimes.docker import (
    LABEL_ATTEMPT,
    LABEL_JOB_ID,
    OUT_OF_MEMORY,
    STOPPED_BEFORE_START,
)
from tests.builders import a_container_spec
from tests.containers import RUN_FOREVER
from tests.contract.runtime.dock import Dock, gated, in_dock
from tests.contract.runtime.harness import GROUP, poll

# -- running containers ----------------------------------------------------------------------


@pytest.mark.docker
def test_the_container_gets_the_jobs_settings(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    outbox.mkdir()
    (inbox / "msg").write_text("hello from the host\n")
    script = "; ".join(
        [
            "echo pid=$$",
            'echo "color=$COLOR job=$AWS_BATCH_JOB_ID"',
            "cat /in/msg",
            "touch /in/new 2>/dev/null && echo in=rw || echo in=ro",
            "echo written > /out/file && echo out=rw",
            "touch /rootfile 2>/dev/null && echo root=rw || echo root=ro",
            "touch /scratch/x && echo scratch=rw",
            "touch /anon/x && echo anon=rw",
            'echo "nofile=$(ulimit -n)"',
            "df -k /dev/shm | tail -n 1",
            "grep ' /run/t ' /proc/mounts",
            "test -c /dev/n && echo device=ok",
            "ls /sys/class/net",
            "echo ready",
            "trap 'exit 143' TERM",
            "sleep 300 & wait",
        ]
    )
    spec = a_container_spec(
        ("sh", "-c", script),
        env={"COLOR": "blue"},
        resources=Resources(vcpus=0.5, memory_mib=48),
        container={
            "readonlyRootFilesystem": True,
            "ulimits": [{"name": "nofile", "softLimit": 321, "hardLimit": 654}],
            "volumes": [
                {"name": "in", "host": {"sourcePath": str(inbox)}},
                {"name": "out", "host": {"sourcePath": str(outbox)}},
                {"name": "anon"},
            ],
            "mountPoints": [
                {"sourceVolume": "in", "containerPath": "/in", "readOnly": True},
                {"sourceVolume": "out", "containerPath": "/out", "readOnly": False},
                {"sourceVolume": "anon", "containerPath": "/anon"},
            ],
            "linuxParameters": {
                "devices": [{"hostPath": "/dev/null", "containerPath": "/dev/n"}],
                "initProcessEnabled": True,
                "sharedMemorySize": 32,
                "tmpfs": [
                    {"containerPath": "/run/t", "size": 8, "mountOptions": ["noexec"]},
                    {"containerPath": "/scratch", "size": 4},
                ],
            },
        },
    )

    async def scenario(dock: Dock) -> None:
        await dock.runtime.start(spec)
        await poll(lambda: "ready" in dock.messages(spec))
        [listed] = dock.containers(spec)
        inspected = engine.api.inspect_container(listed["Id"])
        config = inspected["HostConfig"]
        await dock.runtime.stop(spec.job_id, spec.task_id, grace_seconds=10)
        exited = await dock.exited(spec)

        lines = dock.messages(spec)
        assert lines[0] != "pid=1"  # an init process is PID 1
        assert lines[1:9] == [
            "color=blue job=job-1",
            "hello from the host",
            "in=ro",
            "out=rw",
            "root=ro",
            "scratch=rw",
            "anon=rw",
            "nofile=321",
        ]
        assert lines[9].split()[1] == "32768"  # /dev/shm in KiB
        assert "noexec" in lines[10]
        assert "size=8192k" in lines[10]
        assert lines[11] == "device=ok"
        assert lines[12:] == ["lo", "ready"]  # network mode none
        assert (outbox / "file").read_text() == "written\n"
        assert not (inbox / "new").exists()
        assert exited.exit_code == 143
        assert config["Memory"] == 48 * 1024 * 1024
        assert config["MemorySwap"] == 48 * 1024 * 1024
        assert config["NanoCpus"] == 500_000_000
        assert config["NetworkMode"] == "none"
        assert config["Init"] is True
        assert config["ReadonlyRootfs"] is True
        assert listed["Labels"][LABEL_JOB_ID] == "job-1"
        assert listed["Labels"][LABEL_ATTEMPT] == "1"
        await dock.gone(spec)

    in_dock(engine, tmp_path, owner, scenario)


@pytest.mark.docker
def test_user_and_network_mode_of_the_compute_environment(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def scenario(dock: Dock) -> None:
        as_nobody = a_container_spec(("id", "-u"), container={"user": "nobody"})
        on_host = a_container_spec(("ls", "/sys/class/net"), network_mode="host")
        for spec in (as_nobody, on_host):
            assert (await dock.run(spec)).exit_code == 0

        assert dock.messages(as_nobody) == ["65534"]
        assert sorted(dock.messages(on_host)) == sorted(os.listdir("/sys/class/net"))

    in_dock(engine, tmp_path, owner, scenario)


@pytest.mark.docker
def test_killed_for_memory_is_an_out_of_memory_error(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def scenario(dock: Dock) -> None:
        spec = a_container_spec(
            ("dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"),
            resources=Resources(vcpus=1, memory_mib=8),
        )
        exited = await dock.run(spec)

        assert (exited.exit_code, exited.reason, exited.status_reason) == (
            137,
            OUT_OF_MEMORY,
            ESSENTIAL_CONTAINER_EXITED,
        )
        assert OUT_OF_MEMORY == "OutOfMemoryError: Container killed due to memory usage"
        await dock.gone(spec)

    in_dock(engine, tmp_path, owner, scenario)


@pytest.mark.docker
def test_an_image_that_is_missing_and_not_pullable_cannot_be_pulled(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def scenario(dock: Dock) -> None:
        spec = a_container_spec(("true",), container={"image": "batchyard-test:no-such-tag"})
        exited = await dock.run(spec)

        assert dock.of(spec) == [exited]
        assert (exited.exit_code, exited.status_reason) == (None, TASK_FAILED_TO_START)
        assert exited.reason is not None
        assert exited.reason.startswith("CannotPullContainerError: ")
        assert len(exited.reason) > len("CannotPullContainerError: ")  # the daemon's message
        assert len(exited.reason) <= 255
        assert dock.containers() == []

    in_dock(engine, tmp_path, owner, scenario)


@pytest.mark.docker
def test_a_gpu_job_on_a_host_without_gpus_fails_to_start_with_a_clear_reason(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def scenario(dock: Dock) -> None:
        assert dock.runtime.host_limits().gpus == 0
        spec = a_container_spec(("true",), resources=Resources(vcpus=1, memory_mib=64, gpus=1))
        exited = await dock.run(spec)

        assert (exited.exit_code, exited.status_reason) == (None, TASK_FAILED_TO_START)
        assert exited.reason == (
            "CannotCreateContainerError: the job requires 1 GPU(s) and this Docker host has none"
        )

    in_dock(engine, tmp_path, owner, scenario)


@pytest.mark.docker
def test_output_lines_including_long_ones_and_a_last_line_without_newline(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def scenario(dock: Dock) -> None:
        size = MAX_EVENT_BYTES + 1000  # Docker itself cuts lines at 16 KiB: joined again
        script = (
            f"echo out; echo err >&2; echo; head -c {size} /dev/zero | tr '\\0' a; echo; printf end"
        )
        spec = a_container_spec(("sh", "-c", script))
        began = time.time_ns() // 1_000_000
        assert (await dock.run(spec)).exit_code == 0

        events = dock.logs.read(GROUP, spec.log_stream_name, 0, 100)
        messages = [e.message for e in events]
        # stdout and stderr are two pipes: their relative order is the engine's choice
        assert messages.count("err") == 1
        stdout = [m for m in messages if m != "err"]
        assert [len(m) for m in stdout] == [3, MAX_EVENT_BYTES, 1000, 3]
        assert (stdout[0], stdout[-1]) == ("out", "end")
        for event in events:  # the engine's own timestamps, in ms
            assert began - 1000 <= event.timestamp <= event.ingestion_time

    in_dock(engine, tmp_path, owner, scenario)


@pytest.mark.docker
def test_lines_reach_the_log_store_while_the_container_runs(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def scenario(dock: Dock) -> None:
        spec = a_container_spec(RUN_FOREVER)
        await dock.runtime.start(spec)

        await poll(lambda: dock.messages(spec) == ["up"])

        assert dock.exit_of(spec) is None
        info = dock.logs.stream_info(GROUP, spec.log_stream_name)
        assert info is not None
        await dock.runtime.stop(spec.job_id, spec.task_id, grace_seconds=10)
        assert (await dock.exited(spec)).exit_code == 143

    in_dock(engine, tmp_path, owner, scenario)


@pytest.mark.docker
def test_stop_escalates_to_sigkill_after_the_grace_period(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def scenario(dock: Dock) -> None:
        spec = a_container_spec(("sh", "-c", "trap '' TERM; echo up; sleep 300 & wait; sleep 300"))
        await dock.runtime.start(spec)
        await poll(lambda: dock.messages(spec) == ["up"])

        began = time.monotonic()
        await dock.runtime.stop(spec.job_id, spec.task_id, grace_seconds=0.5)
        exited = await dock.exited(spec)

        assert exited.exit_code == 137
        assert time.monotonic() - began >= 0.5
        await dock.gone(spec)

    in_dock(engine, tmp_path, owner, scenario)


@pytest.mark.docker
def test_a_stop_before_the_container_runs_means_it_never_runs(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def scenario(dock: Dock) -> None:
        spec = a_container_spec(RUN_FOREVER)
        await dock.runtime.start(spec)  # returns before the container exists
        await dock.runtime.stop(spec.job_id, spec.task_id, grace_seconds=10)

        exited = await dock.exited(spec)

        assert dock.of(spec) == [exited]
        assert (exited.exit_code, exited.reason, exited.status_reason) == (
            None,
            STOPPED_BEFORE_START,
            TASK_FAILED_TO_START,
        )
        assert dock.containers() == []

    in_dock(engine, tmp_path, owner, scenario)


@pytest.mark.docker
def test_the_container_is_removed_once_its_exit_is_reported(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def scenario(dock: Dock) -> None:
        spec, gate = gated(tmp_path, "echo hi", "echo bye; exit 9")
        await dock.runtime.start(spec)
        await poll(lambda: dock.started(spec))
        container_id = json.loads(dock.handle_of(spec))["containerId"]
        assert [c["Id"] for c in dock.containers(spec)] == [container_id]
        gate.touch()

        assert (await dock.exited(spec)).exit_code == 9
        await dock.gone(spec)
        assert dock.messages(spec) == ["hi", "bye"]

    in_dock(engine, tmp_path, owner, scenario)
