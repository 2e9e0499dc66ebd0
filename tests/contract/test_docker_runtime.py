"""What only the docker runtime does, against a real Docker engine and the locally built test
image (scripts/provision): containerProperties become container settings, output streams into
the log store, OOM and pull failures read as on AWS, stops escalate, containers are removed,
and recovery after a restart re-attaches, reports and reaps by label."""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from batchyard.domain.model import Document, Resources
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
    RuntimeEvent,
)
from batchyard.runtimes.docker import (
    HOST_LOST_NOT_FOUND,
    LABEL_ATTEMPT,
    LABEL_JOB_ID,
    LABEL_OWNER,
    LABEL_TASK_ID,
    OUT_OF_MEMORY,
    STOPPED_BEFORE_START,
    CannotRun,
    DockerRuntime,
    container_options,
    owner_label,
)
from tests.containers import IMAGE, RUN_FOREVER, remove_containers, require_engine

GROUP = "/aws/batch/job"
DEADLINE_S = 20.0
# PID 1 of a container gets no signal it has no handler for: trap TERM, as a real job should.


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000


def a_spec(
    command: tuple[str, ...],
    *,
    job_id: str = "job-1",
    container: Document | None = None,
    resources: Resources | None = None,
    network_mode: str | None = "none",
    env: dict[str, str] | None = None,
) -> AttemptSpec:
    task_id = uuid.uuid4().hex
    return AttemptSpec(
        job_id=job_id,
        task_id=task_id,
        attempt_number=1,
        job_queue="high",
        compute_environment="containers",
        job_definition_name="render",
        command=command,
        environment={"AWS_BATCH_JOB_ID": job_id, "AWS_BATCH_JOB_ATTEMPT": "1", **(env or {})},
        resources=resources or Resources(vcpus=1, memory_mib=64),
        container={"image": IMAGE, **(container or {})},
        log_group=GROUP,
        log_stream_name=f"render/default/{task_id}",
        network_mode=network_mode,
    )


async def poll(predicate: Callable[[], bool], deadline_s: float = DEADLINE_S) -> None:
    deadline = time.monotonic() + deadline_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        await asyncio.sleep(0.01)


@dataclass
class Dock:
    """A docker runtime with its log store, in a running loop."""

    runtime: DockerRuntime
    logs: LogStore
    engine: docker.DockerClient
    events: list[RuntimeEvent] = field(default_factory=list)

    def messages(self, spec: AttemptSpec | AttemptRef) -> list[str]:
        return [e.message for e in self.logs.read(GROUP, spec.log_stream_name, 0, 10_000)]

    def of(self, spec: AttemptSpec | AttemptRef) -> list[RuntimeEvent]:
        return [e for e in self.events if e.task_id == spec.task_id]

    def exit_of(self, spec: AttemptSpec | AttemptRef) -> AttemptExited | None:
        return next((e for e in self.of(spec) if isinstance(e, AttemptExited)), None)

    def started(self, spec: AttemptSpec | AttemptRef) -> bool:
        return any(isinstance(e, AttemptStarted) for e in self.of(spec))

    def handle_of(self, spec: AttemptSpec) -> str:
        return next(e.runtime_handle for e in self.of(spec) if isinstance(e, AttemptStarted))

    def containers(self, spec: AttemptSpec | AttemptRef | None = None) -> list[dict[str, Any]]:
        """This runtime's containers (of one attempt): Id, State, Labels, ..."""
        labels = [f"{LABEL_OWNER}={self.runtime.owner}"]
        if spec is not None:
            labels.append(f"{LABEL_TASK_ID}={spec.task_id}")
        return list(self.engine.api.containers(all=True, filters={"label": labels}))

    def states(self, spec: AttemptSpec | AttemptRef) -> list[str]:
        return [c["State"] for c in self.containers(spec)]

    async def run(self, spec: AttemptSpec) -> AttemptExited:
        await self.runtime.start(spec)
        return await self.exited(spec)

    async def exited(self, spec: AttemptSpec | AttemptRef) -> AttemptExited:
        await poll(lambda: self.exit_of(spec) is not None)
        found = self.exit_of(spec)
        assert found is not None
        return found

    async def gone(self, spec: AttemptSpec | AttemptRef) -> None:
        await poll(lambda: self.containers(spec) == [])


@pytest.fixture
def engine() -> Iterator[docker.DockerClient]:
    client = require_engine()
    yield client
    client.close()


@pytest.fixture
def owner(engine: docker.DockerClient) -> Iterator[str]:
    """A store identity of its own, so tests (and servers) sharing the engine never meet;
    whatever a failed test leaves behind is removed."""
    name = f"contract-{uuid.uuid4().hex}"
    yield name
    remove_containers(engine, owner_label(name))


async def open_dock(
    engine: docker.DockerClient, tmp_path: Path, owner: str, *, stores_exits: bool = True
) -> Dock:
    """A docker runtime. Like the dispatcher, it acknowledges each exit as stored (`recorded`)
    unless stores_exits is False: a server about to die."""
    logs = FileLogStore(tmp_path / "logs")
    runtime = DockerRuntime(logs, WallClock(), owner=owner, network_mode="none")
    dock = Dock(runtime, logs, engine)

    def report(event: RuntimeEvent) -> None:
        dock.events.append(event)
        if stores_exits and isinstance(event, AttemptExited) and event.recorded is not None:
            event.recorded()

    await dock.runtime.open(report)
    return dock


def in_dock(
    engine: docker.DockerClient,
    tmp_path: Path,
    owner: str,
    scenario: Callable[[Dock], Coroutine[Any, Any, None]],
) -> None:
    async def main() -> None:
        dock = await open_dock(engine, tmp_path, owner)
        try:
            await scenario(dock)
        finally:
            await dock.runtime.close()

    asyncio.run(main())


# -- containerProperties -> container options (pure) -----------------------------------------


def test_container_properties_become_docker_options() -> None:
    spec = a_spec(
        ("sh", "-c", "true"),
        env={"COLOR": "blue"},
        resources=Resources(vcpus=1.5, memory_mib=96),
        network_mode="host",
        container={
            "user": "nobody",
            "privileged": True,
            "readonlyRootFilesystem": True,
            "ulimits": [{"name": "nofile", "softLimit": 1024, "hardLimit": 2048}],
            "volumes": [
                {"name": "data", "host": {"sourcePath": "/srv/data"}},
                {"name": "scratch", "host": {}},
            ],
            "mountPoints": [
                {"sourceVolume": "data", "containerPath": "/data", "readOnly": True},
                {"sourceVolume": "data", "containerPath": "/data-rw"},
                {"sourceVolume": "scratch", "containerPath": "/scratch", "readOnly": False},
            ],
            "linuxParameters": {
                "devices": [
                    {"hostPath": "/dev/fuse"},
                    {"hostPath": "/dev/null", "containerPath": "/dev/n", "permissions": ["READ"]},
                ],
                "initProcessEnabled": True,
                "sharedMemorySize": 128,
                "tmpfs": [
                    {"containerPath": "/run/t", "size": 16, "mountOptions": ["noexec", "rw"]}
                ],
                "maxSwap": 32,
                "swappiness": 10,
            },
        },
    )

    options = container_options(
        spec, owner="o", default_network_mode="bridge", host_cpus=2, host_gpus=0
    )

    assert options.image == IMAGE
    assert options.create == {
        "name": f"batchyard-{spec.task_id}",
        "command": ["sh", "-c", "true"],
        "environment": {"AWS_BATCH_JOB_ID": "job-1", "AWS_BATCH_JOB_ATTEMPT": "1", "COLOR": "blue"},
        "labels": {
            LABEL_OWNER: "o",
            LABEL_JOB_ID: "job-1",
            LABEL_TASK_ID: spec.task_id,
            LABEL_ATTEMPT: "1",
            "batchyard.compute-environment": "containers",
            "batchyard.log-stream": spec.log_stream_name,
        },
        "user": "nobody",
    }
    host = options.host
    assert host["network_mode"] == "host"  # the compute environment's, over the default
    assert (host["privileged"], host["read_only"]) == (True, True)
    assert (host["mem_limit"], host["memswap_limit"], host["mem_swappiness"]) == ("96m", "128m", 10)
    assert host["nano_cpus"] == 1_500_000_000
    assert [dict(u) for u in host["ulimits"]] == [{"Name": "nofile", "Soft": 1024, "Hard": 2048}]
    assert host["binds"] == ["/srv/data:/data:ro", "/srv/data:/data-rw:rw"]
    assert [(m["Target"], m["Source"], m["Type"], m["ReadOnly"]) for m in host["mounts"]] == [
        ("/scratch", None, "volume", False)
    ]
    assert host["devices"] == ["/dev/fuse:/dev/fuse:rwm", "/dev/null:/dev/n:r"]
    assert host["init"] is True
    assert host["shm_size"] == "128m"
    assert host["tmpfs"] == {"/run/t": "size=16m,noexec,rw"}
    assert "device_requests" not in host


def test_defaults_are_a_hard_memory_limit_the_image_command_and_the_default_network() -> None:
    spec = a_spec((), network_mode=None, resources=Resources(vcpus=2, memory_mib=512, gpus=1))

    options = container_options(
        spec, owner="o", default_network_mode="bridge", host_cpus=1.5, host_gpus=2
    )

    assert options.create["command"] is None  # the image's CMD, as on ECS
    assert "user" not in options.create
    host = options.host
    assert (host["mem_limit"], host["memswap_limit"]) == ("512m", "512m")
    assert host["nano_cpus"] == 1_500_000_000  # 2 vCPUs asked, all the host has given
    assert host["network_mode"] == "bridge"
    assert (host["privileged"], host["read_only"]) == (False, False)
    [request] = host["device_requests"]
    assert (request["Count"], request["Capabilities"]) == (1, [["gpu"]])
    for absent in ("binds", "mounts", "ulimits", "devices", "init", "shm_size", "tmpfs"):
        assert absent not in host


@pytest.mark.parametrize(
    ("container", "resources", "reason"),
    [
        ({"image": ""}, None, "CannotCreateContainerError: the job has no container image"),
        (
            {"volumes": [{"name": "efs", "efsVolumeConfiguration": {"fileSystemId": "fs-1"}}]},
            None,
            "CannotCreateContainerError: volume 'efs': efsVolumeConfiguration is not supported",
        ),
        (
            {"mountPoints": [{"sourceVolume": "nope", "containerPath": "/x"}]},
            None,
            "CannotCreateContainerError: mount point '/x' names no volume 'nope'",
        ),
        (
            {
                "volumes": [{"name": "v", "host": {"sourcePath": "relative/dir"}}],
                "mountPoints": [{"sourceVolume": "v", "containerPath": "/x"}],
            },
            None,
            "CannotCreateContainerError: volume 'v': sourcePath 'relative/dir' must be absolute",
        ),
        (
            {},
            Resources(vcpus=1, memory_mib=64, gpus=1),
            "CannotCreateContainerError: the job requires 1 GPU(s) and this Docker host has none",
        ),
    ],
)
def test_what_no_container_could_honour_is_refused_with_a_reason(
    container: Document, resources: Resources | None, reason: str
) -> None:
    spec = a_spec(("true",), container=container, resources=resources)
    with pytest.raises(CannotRun) as refused:
        container_options(spec, owner="o", default_network_mode="none", host_cpus=2, host_gpus=0)
    assert refused.value.reason.startswith(reason)


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
    spec = a_spec(
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
        as_nobody = a_spec(("id", "-u"), container={"user": "nobody"})
        on_host = a_spec(("ls", "/sys/class/net"), network_mode="host")
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
        spec = a_spec(
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
        spec = a_spec(("true",), container={"image": "batchyard-test:no-such-tag"})
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
        spec = a_spec(("true",), resources=Resources(vcpus=1, memory_mib=64, gpus=1))
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
        spec = a_spec(("sh", "-c", script))
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
        spec = a_spec(RUN_FOREVER)
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
        spec = a_spec(("sh", "-c", "trap '' TERM; echo up; sleep 300 & wait; sleep 300"))
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
        spec = a_spec(RUN_FOREVER)
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


# -- restarts ----------------------------------------------------------------------------------


def ref_of(spec: AttemptSpec, handle: str | None) -> AttemptRef:
    return AttemptRef(spec.job_id, spec.task_id, GROUP, spec.log_stream_name, handle)


def gated(tmp_path: Path, before: str, after: str) -> tuple[AttemptSpec, Path]:
    """An attempt that runs `before`, waits until the test creates the returned file, then runs
    `after`: it ends when the test says, never because time passed."""
    gate = tmp_path / "gate"
    gate.mkdir(exist_ok=True)
    script = f"{before}; until [ -e /gate/open ]; do sleep 0.05; done; {after}"
    spec = a_spec(
        ("sh", "-c", script),
        container={
            "volumes": [{"name": "gate", "host": {"sourcePath": str(gate)}}],
            "mountPoints": [{"sourceVolume": "gate", "containerPath": "/gate", "readOnly": True}],
        },
    )
    return spec, gate / "open"


@pytest.mark.docker
def test_recover_reattaches_to_a_running_container_without_repeating_lines(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def main() -> None:
        first = await open_dock(engine, tmp_path, owner)
        spec, gate = gated(tmp_path, "echo one; echo two", "echo three; exit 5")
        await first.runtime.start(spec)
        await poll(lambda: first.messages(spec) == ["one", "two"])
        handle = first.handle_of(spec)
        await first.runtime.close()  # the server stops; the container runs on
        assert first.states(spec) == ["running"]

        second = await open_dock(engine, tmp_path, owner)  # a new log store instance too
        try:
            await second.runtime.recover([ref_of(spec, handle)])
            gate.touch()
            exited = await second.exited(spec)
            await second.gone(spec)
        finally:
            await second.runtime.close()

        assert (exited.exit_code, exited.status_reason) == (5, ESSENTIAL_CONTAINER_EXITED)
        assert second.messages(spec) == ["one", "two", "three"]
        assert second.of(spec) == [exited]  # its start was recorded before the restart
        assert first.exit_of(spec) is None

    asyncio.run(main())


@pytest.mark.docker
def test_recover_reports_and_reaps_a_container_that_ended_while_the_server_was_down(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def main() -> None:
        first = await open_dock(engine, tmp_path, owner)
        spec, gate = gated(tmp_path, "echo a; echo b", "echo c; exit 4")
        await first.runtime.start(spec)
        await poll(lambda: first.messages(spec) == ["a", "b"])
        handle = first.handle_of(spec)
        await first.runtime.close()
        gate.touch()
        await poll(lambda: first.states(spec) == ["exited"])

        second = await open_dock(engine, tmp_path, owner)
        try:
            await second.runtime.recover([ref_of(spec, handle)])
            exited = await second.exited(spec)
            await second.gone(spec)
        finally:
            await second.runtime.close()

        assert exited.exit_code == 4
        assert second.messages(spec) == ["a", "b", "c"]

    asyncio.run(main())


@pytest.mark.docker
def test_an_exit_not_yet_stored_keeps_its_container_for_the_next_server(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    # The server dies after its runtime reported an exit but before the dispatcher stored it:
    # the next server's recovery must find the exit code, not call the host lost.
    async def main() -> None:
        first = await open_dock(engine, tmp_path, owner, stores_exits=False)
        spec = a_spec(("sh", "-c", "echo done; exit 7"))
        assert (await first.run(spec)).exit_code == 7
        await first.runtime.close()
        assert first.states(spec) == ["exited"]

        second = await open_dock(engine, tmp_path, owner)
        try:
            await second.runtime.recover([ref_of(spec, first.handle_of(spec))])
            again = await second.exited(spec)
            await second.gone(spec)  # stored this time: the container goes
        finally:
            await second.runtime.close()

        assert (again.exit_code, again.status_reason) == (7, ESSENTIAL_CONTAINER_EXITED)
        assert second.messages(spec) == ["done"]

    asyncio.run(main())


@pytest.mark.docker
def test_recover_finds_containers_by_label_whatever_the_server_recorded(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    """A container started but never recorded (no handle), one created but never started, one
    no attempt claims (left by an earlier server), and an attempt whose container is gone."""

    def create(spec: AttemptSpec, command: list[str]) -> Container:
        labels = {
            LABEL_OWNER: owner_label(owner),
            LABEL_JOB_ID: spec.job_id,
            LABEL_TASK_ID: spec.task_id,
            LABEL_ATTEMPT: "1",
        }
        return engine.containers.create(IMAGE, command, labels=labels, network_mode="none")

    async def scenario(dock: Dock) -> None:
        unrecorded = a_spec(("x",), job_id="job-unrecorded")
        create(unrecorded, ["sh", "-c", "echo early; sleep 0.5; exit 2"]).start()
        never_started = a_spec(("x",), job_id="job-created")
        create(never_started, ["sh", "-c", "echo late; exit 3"])
        orphan = a_spec(("x",), job_id="job-finished-long-ago")
        create(orphan, ["true"]).start()
        lost = a_spec(("x",), job_id="job-lost")

        await dock.runtime.recover(
            [ref_of(unrecorded, None), ref_of(never_started, None), ref_of(lost, "{}")]
        )

        assert (await dock.exited(unrecorded)).exit_code == 2
        assert [type(e) for e in dock.of(unrecorded)] == [AttemptStarted, AttemptExited]
        assert dock.messages(unrecorded) == ["early"]
        assert (await dock.exited(never_started)).exit_code == 3
        assert [type(e) for e in dock.of(never_started)] == [AttemptStarted, AttemptExited]
        assert dock.messages(never_started) == ["late"]
        gone = dock.exit_of(lost)
        assert gone is not None
        assert (gone.exit_code, gone.status_reason, gone.reason) == (
            None,
            HOST_LOST,
            HOST_LOST_NOT_FOUND,
        )
        assert dock.of(orphan) == []
        await poll(lambda: dock.containers() == [])  # nothing leaked

    in_dock(engine, tmp_path, owner, scenario)


@pytest.mark.docker
def test_close_leaves_containers_running_and_other_owners_alone(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    neighbour = f"{owner}-neighbour"

    async def main() -> None:
        other = await open_dock(engine, tmp_path / "other", neighbour)
        theirs = a_spec(RUN_FOREVER)
        await other.runtime.start(theirs)
        await poll(lambda: other.messages(theirs) == ["up"])
        await other.runtime.close()

        dock = await open_dock(engine, tmp_path, owner)
        try:
            await dock.runtime.recover([])  # reaps only its own owner's containers
            assert other.states(theirs) == ["running"]
        finally:
            await dock.runtime.close()

    try:
        asyncio.run(main())
    finally:
        remove_containers(engine, owner_label(neighbour))
