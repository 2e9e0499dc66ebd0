"""Docker containers end to end: boto3 against a real server whose compute environments are
tagged batchyard:runtime=docker, a real Docker engine and the locally built test image."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import pytest

from batchyard.logs.file_store import FileLogStore
from batchyard.runtimes.docker import LABEL_JOB_ID
from tests.containers import (
    IMAGE,
    RUNTIME_TAG,
    define_container_job,
    docker_queue,
    require_engine,
)
from tests.fixtures import ServerProcess, describe_job, submit_job, unique, wait_for, wait_status

pytestmark = pytest.mark.docker

GROUP = "/aws/batch/job"
TERMINATE_GRACE = "2"  # --stop-timeout: seconds from SIGTERM to SIGKILL


# -- helpers -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine() -> Iterator[docker.DockerClient]:
    client = require_engine()
    yield client
    client.close()


@pytest.fixture(scope="module")
def docker_server(
    engine: docker.DockerClient, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    proc = ServerProcess(
        tmp_path_factory.mktemp("docker-server") / "data", "--stop-timeout", TERMINATE_GRACE
    )
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def batch(docker_server: ServerProcess) -> Any:
    return docker_server.client()


@pytest.fixture(scope="module")
def queue(batch: Any) -> str:
    return docker_queue(batch)


def messages(server: ServerProcess, job: dict[str, Any]) -> list[str]:
    """The attempt's log stream, read from the server's log store."""
    stream = job["attempts"][-1]["container"]["logStreamName"] if job["attempts"] else None
    stream = stream or job["container"]["logStreamName"]
    events = FileLogStore(server.data_dir / "logs").read(GROUP, stream, 0, 10_000)
    return [e.message for e in events]


def containers_of(engine: docker.DockerClient, job_id: str) -> list[dict[str, Any]]:
    return list(engine.api.containers(all=True, filters={"label": f"{LABEL_JOB_ID}={job_id}"}))


def no_container_left(engine: docker.DockerClient, job_id: str) -> None:
    wait_for(lambda: containers_of(engine, job_id) == [], what=f"containers of {job_id} removed")


def running_container(engine: docker.DockerClient, job_id: str) -> dict[str, Any]:
    def running() -> dict[str, Any] | None:
        found = [c for c in containers_of(engine, job_id) if c["State"] == "running"]
        return found[0] if found else None

    return wait_for(running, what=f"a running container for {job_id}")


# -- what the container gets -------------------------------------------------------------


def test_the_container_gets_image_command_environment_user_mounts_and_limits(
    batch: Any, queue: str, engine: docker.DockerClient, tmp_path: Path
) -> None:
    inbox, outbox = tmp_path / "in", tmp_path / "out"
    inbox.mkdir()
    outbox.mkdir()
    outbox.chmod(0o777)  # the job runs as nobody
    (inbox / "data.txt").write_text("input data\n")
    script = "; ".join(
        [
            "exec > /out/report",
            "id -u",
            "env | grep -E '^(AWS_BATCH_|STAGE|COLOR)' | sort",
            "cat /in/data.txt",
            "touch /in/new 2>/dev/null && echo in=rw || echo in=ro",
            "touch /made-in-root 2>/dev/null && echo root=rw || echo root=ro",
            "touch /scratch/file && echo scratch=rw",
            'echo "nofile=$(ulimit -n)"',
            'echo "pid=$$"',
            "df -k /dev/shm | tail -n 1",
            "cat /sys/fs/cgroup/memory.max 2>/dev/null"
            " || cat /sys/fs/cgroup/memory/memory.limit_in_bytes",
            "cat /sys/fs/cgroup/cpu.max 2>/dev/null"
            " || echo $(cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us)"
            " $(cat /sys/fs/cgroup/cpu/cpu.cfs_period_us)",
            "test -c /dev/batchyard-null && echo device=ok",
            "ls /sys/class/net",
        ]
    )
    definition = define_container_job(
        batch,
        ["sh", "-c", script],
        memory="48",
        user="nobody",
        readonlyRootFilesystem=True,
        environment=[{"name": "STAGE", "value": "definition"}],
        ulimits=[{"name": "nofile", "softLimit": 256, "hardLimit": 512}],
        volumes=[
            {"name": "in", "host": {"sourcePath": str(inbox)}},
            {"name": "out", "host": {"sourcePath": str(outbox)}},
        ],
        mountPoints=[
            {"sourceVolume": "in", "containerPath": "/in", "readOnly": True},
            {"sourceVolume": "out", "containerPath": "/out", "readOnly": False},
        ],
        linuxParameters={
            "devices": [
                {
                    "hostPath": "/dev/null",
                    "containerPath": "/dev/batchyard-null",
                    "permissions": ["READ", "WRITE"],
                }
            ],
            "initProcessEnabled": True,
            "sharedMemorySize": 16,
            "tmpfs": [{"containerPath": "/scratch", "size": 4}],
        },
    )
    job_id = submit_job(
        batch,
        queue,
        definition,
        containerOverrides={"environment": [{"name": "COLOR", "value": "blue"}]},
    )
    job = wait_status(batch, job_id)

    assert job["status"] == "SUCCEEDED", job.get("statusReason")
    assert job["statusReason"] == "Essential container in task exited"
    [attempt] = job["attempts"]
    assert attempt["container"]["exitCode"] == 0
    report = (outbox / "report").read_text().splitlines()
    ce_name = report[1].split("=", 1)[1]
    assert report[0] == "65534"  # user
    assert report[1:7] == [
        f"AWS_BATCH_CE_NAME={ce_name}",
        "AWS_BATCH_JOB_ATTEMPT=1",
        f"AWS_BATCH_JOB_ID={job_id}",
        f"AWS_BATCH_JQ_NAME={queue}",
        "COLOR=blue",  # containerOverrides
        "STAGE=definition",
    ]
    assert ce_name.startswith("docker-ce-")
    assert report[7:12] == ["input data", "in=ro", "root=ro", "scratch=rw", "nofile=256"]
    assert report[12].startswith("pid=")
    assert report[12] != "pid=1"  # an init process is PID 1
    assert report[13].split()[1] == "16384"  # /dev/shm, KiB
    assert report[14] == str(48 * 1024 * 1024)  # a hard memory limit
    assert report[15].split() == ["100000", "100000"]  # 1 vCPU as a CPU quota
    assert report[16] == "device=ok"
    assert report[17:] == ["lo"]  # network mode none, from the compute environment's tag
    assert not (inbox / "new").exists()
    no_container_left(engine, job_id)


def test_network_mode_host_comes_from_the_compute_environment_tag(
    batch: Any, docker_server: ServerProcess
) -> None:
    host_queue = docker_queue(batch, network_mode="host")
    job = wait_status(
        batch, submit_job(batch, host_queue, define_container_job(batch, ["ls", "/sys/class/net"]))
    )

    assert job["status"] == "SUCCEEDED"
    assert sorted(messages(docker_server, job)) == sorted(os.listdir("/sys/class/net"))


# -- output, exit codes, failures ------------------------------------------------------------


def test_output_streams_into_the_log_stream_and_terminate_stops_the_container(
    batch: Any, queue: str, docker_server: ServerProcess, engine: docker.DockerClient
) -> None:
    script = "trap 'echo stopping; exit 143' TERM; echo started; echo warming >&2; sleep 300 & wait"
    job_id = submit_job(batch, queue, define_container_job(batch, ["sh", "-c", script]))
    running = wait_status(batch, job_id, ("RUNNING",))
    container = running_container(engine, job_id)
    wait_for(
        lambda: sorted(messages(docker_server, running)) == ["started", "warming"],
        what="stdout and stderr in the log stream while the container runs",
    )
    assert describe_job(batch, job_id)["status"] == "RUNNING"

    batch.terminate_job(jobId=job_id, reason="Stopped by test")
    job = wait_status(batch, job_id)

    assert (job["status"], job["statusReason"], job["isTerminated"]) == (
        "FAILED",
        "Stopped by test",
        True,
    )
    [attempt] = job["attempts"]
    assert attempt["container"]["exitCode"] == 143  # SIGTERM, handled by the job
    assert sorted(messages(docker_server, job)) == ["started", "stopping", "warming"]
    assert container["Labels"][LABEL_JOB_ID] == job_id
    no_container_left(engine, job_id)


def test_terminate_kills_a_container_that_ignores_sigterm_after_the_grace_period(
    batch: Any, queue: str, engine: docker.DockerClient
) -> None:
    job_id = submit_job(
        batch, queue, define_container_job(batch, ["sh", "-c", "trap '' TERM; sleep 300 & wait"])
    )
    wait_status(batch, job_id, ("RUNNING",))
    running_container(engine, job_id)

    batch.terminate_job(jobId=job_id, reason="Stopped by test")
    job = wait_status(batch, job_id)

    assert job["status"] == "FAILED"
    assert job["attempts"][0]["container"]["exitCode"] == 137
    assert job["stoppedAt"] - job["startedAt"] >= int(TERMINATE_GRACE) * 1000
    no_container_left(engine, job_id)


def test_the_exit_code_is_recorded(batch: Any, queue: str, engine: docker.DockerClient) -> None:
    job = wait_status(
        batch, submit_job(batch, queue, define_container_job(batch, ["sh", "-c", "exit 3"]))
    )

    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Essential container in task exited"
    assert [a["container"]["exitCode"] for a in job["attempts"]] == [3]
    assert job["container"]["exitCode"] == 3
    no_container_left(engine, job["jobId"])


def test_killed_for_memory_is_an_out_of_memory_error(batch: Any, queue: str) -> None:
    command = ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"]
    job = wait_status(
        batch, submit_job(batch, queue, define_container_job(batch, command, memory="8"))
    )

    assert job["status"] == "FAILED"
    [attempt] = job["attempts"]
    assert attempt["container"]["reason"] == (
        "OutOfMemoryError: Container killed due to memory usage"
    )
    assert attempt["container"]["exitCode"] == 137
    assert attempt["statusReason"] == "Essential container in task exited"


def test_a_missing_image_fails_to_start_and_the_retry_strategy_decides(batch: Any) -> None:
    queue = docker_queue(batch)
    definition = define_container_job(batch, ["true"], image="batchyard-test:not-built-anywhere")
    exit_on_pull = {
        "attempts": 3,
        "evaluateOnExit": [{"onReason": "CannotPullContainerError:*", "action": "EXIT"}],
    }
    stopped = submit_job(batch, queue, definition, retryStrategy=exit_on_pull)
    retried = submit_job(batch, queue, definition, retryStrategy={"attempts": 2})

    job = wait_status(batch, stopped)
    assert job["status"] == "FAILED"
    assert job["statusReason"] == "Task failed to start"
    [attempt] = job["attempts"]
    assert attempt["statusReason"] == "Task failed to start"
    assert attempt["container"]["reason"].startswith("CannotPullContainerError: ")
    assert "exitCode" not in attempt["container"]
    assert "startedAt" not in job
    again = wait_status(batch, retried)
    assert again["status"] == "FAILED"
    assert [a["statusReason"] for a in again["attempts"]] == ["Task failed to start"] * 2
    assert all(
        a["container"]["reason"].startswith("CannotPullContainerError: ") for a in again["attempts"]
    )


def test_a_gpu_job_waits_with_the_aws_reason_on_a_host_without_gpus(batch: Any) -> None:
    queue = docker_queue(batch)
    definition = str(
        batch.register_job_definition(
            jobDefinitionName=unique("jd"),
            type="container",
            containerProperties={
                "image": IMAGE,
                "command": ["true"],
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "64"},
                    {"type": "GPU", "value": "1"},
                ],
            },
        )["jobDefinitionArn"]
    )
    job_id = submit_job(batch, queue, definition)
    wait_for(
        lambda: (
            describe_job(batch, job_id)
            .get("statusReason", "")
            .startswith("MISCONFIGURATION:JOB_RESOURCE_REQUIREMENT")
        ),
        what="blocked reason",
    )
    assert describe_job(batch, job_id)["status"] == "RUNNABLE"
    batch.cancel_job(jobId=job_id, reason="cleanup")
    assert wait_status(batch, job_id)["attempts"] == []


# -- the server ------------------------------------------------------------------------------


def test_restart_recovery_reattaches_and_reaps_containers(
    engine: docker.DockerClient, tmp_path: Path
) -> None:
    server = ServerProcess(tmp_path / "data", "--stop-timeout", TERMINATE_GRACE)
    server.start()
    try:
        batch = server.client()
        queue = docker_queue(batch)
        gates = tmp_path / "gates"
        gates.mkdir()
        gate: dict[str, Any] = {
            "volumes": [{"name": "gates", "host": {"sourcePath": str(gates)}}],
            "mountPoints": [{"sourceVolume": "gates", "containerPath": "/gates"}],
        }
        wait = "until [ -e /gates/{0} ]; do sleep 0.05; done"
        long = submit_job(
            batch,
            queue,
            define_container_job(
                batch, ["sh", "-c", f"echo one; {wait.format('long')}; echo two"], **gate
            ),
        )
        short = submit_job(
            batch,
            queue,
            define_container_job(
                batch, ["sh", "-c", f"echo a; {wait.format('short')}; echo b; exit 4"], **gate
            ),
        )
        for job_id in (long, short):
            wait_status(batch, job_id, ("RUNNING",))
        long_container = running_container(engine, long)
        short_container = running_container(engine, short)
        server.kill9()
        (gates / "short").touch()  # ends while the server is down
        wait_for(
            lambda: [c["State"] for c in containers_of(engine, short)] == ["exited"],
            what="the short job's container ended while the server was down",
        )
        assert [c["State"] for c in containers_of(engine, long)] == ["running"]

        server.start()
        batch = server.client()
        done_short = wait_status(batch, short)
        assert describe_job(batch, long)["status"] == "RUNNING"  # re-attached, still running
        (gates / "long").touch()
        done_long = wait_status(batch, long)

        assert done_long["status"] == "SUCCEEDED"
        assert len(done_long["attempts"]) == 1
        assert messages(server, done_long) == ["one", "two"]  # ran once, no line twice
        assert (done_short["status"], done_short["attempts"][0]["container"]["exitCode"]) == (
            "FAILED",
            4,
        )
        assert messages(server, done_short) == ["a", "b"]
        for job_id in (long, short):
            no_container_left(engine, job_id)
        assert long_container["Id"] != short_container["Id"]
    finally:
        server.stop()


def test_docker_compute_environments_are_invalid_without_an_engine(tmp_path: Path) -> None:
    server = ServerProcess(
        tmp_path / "data", env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    )
    server.start()
    try:
        batch = server.client()
        name = unique("docker-ce")
        batch.create_compute_environment(
            computeEnvironmentName=name,
            type="MANAGED",
            computeResources={"type": "EC2", "maxvCpus": 2, "subnets": []},
            tags={RUNTIME_TAG: "docker"},
        )

        def settled() -> dict[str, Any] | None:
            [ce] = batch.describe_compute_environments(computeEnvironments=[name])[
                "computeEnvironments"
            ]
            return ce if ce["status"] != "CREATING" else None

        ce = wait_for(settled, what="compute environment settled")
        assert ce["status"] == "INVALID"
        assert ce["statusReason"].startswith("CLIENT_ERROR - ")
        assert "docker" in ce["statusReason"]
    finally:
        server.stop()
