"""Test fixtures that cross real boundaries: a Batchyard server subprocess and boto3 clients."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any, Literal, TypeVar

import boto3
import pytest
from botocore.config import Config

T = TypeVar("T")

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "batchyard",
    "AWS_SECRET_ACCESS_KEY": "batchyard",
    "AWS_DEFAULT_REGION": "us-east-1",
}


def wait_for(
    probe: Callable[[], T | None], *, timeout: float = 10.0, interval: float = 0.02, what: str = ""
) -> T:
    """Poll probe() until it returns something truthy; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or probe}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """`batchyard server` in a subprocess, on an ephemeral port, with its own data dir."""

    def __init__(self, data_dir: Path, *extra_args: str, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.extra_args = extra_args
        self.env = env or {}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = data_dir.parent / f"{data_dir.name}-server.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable, "-m", "batchyard", "server",
            "--port", str(self.port), "--data-dir", str(self.data_dir), *self.extra_args,
        ]  # fmt: skip
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **self.env}
            )
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout: float = 30.0) -> None:
        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"server exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=1) as response:
                    return bool(response.status == 200)
            except OSError:
                return False

        wait_for(ready, timeout=timeout, interval=0.05, what="server /health")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> int:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else 0
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=30)

    def client(self, service: Literal["batch", "logs"] = "batch") -> Any:
        # Any, not the typed client of types-boto3-batch: tests send ill-typed requests on
        # purpose, to see the service answer them in AWS's shape.
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name="us-east-1",
            aws_access_key_id="batchyard",
            aws_secret_access_key="batchyard",
            config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        )


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("server") / "data", "--stop-timeout", "2")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def batch(server: ServerProcess) -> Any:
    return server.client("batch")


def aws(server: ServerProcess, *args: str) -> subprocess.CompletedProcess[str]:
    """The AWS CLI (of this virtual environment) against the server; JSON output."""
    executable = shutil.which("aws", path=str(Path(sys.executable).parent)) or "aws"
    env = {**os.environ, **CREDENTIALS, "AWS_ENDPOINT_URL": server.url, "AWS_PAGER": ""}
    return subprocess.run(
        [executable, *args, "--output", "json"], capture_output=True, text=True, env=env, timeout=60
    )


# -- jobs through boto3 ----------------------------------------------------------------------

TERMINAL = ("SUCCEEDED", "FAILED")


def define_job(batch: Any, command: list[str], vcpus: str = "1", **extra: Any) -> str:
    """Register a one-vCPU (by default), 64 MiB container job definition; its ARN."""
    return str(
        batch.register_job_definition(
            jobDefinitionName=unique("jd"),
            type="container",
            containerProperties={
                "image": "busybox",
                "command": command,
                "resourceRequirements": [
                    {"type": "VCPU", "value": vcpus},
                    {"type": "MEMORY", "value": "64"},
                ],
            },
            **extra,
        )["jobDefinitionArn"]
    )


def submit_job(batch: Any, queue: str, definition: str, **extra: Any) -> str:
    """SubmitJob with a unique name unless one is given; the job id."""
    extra.setdefault("jobName", unique("job"))
    return str(batch.submit_job(jobQueue=queue, jobDefinition=definition, **extra)["jobId"])


def describe_job(batch: Any, job_id: str) -> dict[str, Any]:
    jobs = batch.describe_jobs(jobs=[job_id])["jobs"]
    assert len(jobs) == 1, f"job {job_id} not found"
    return dict(jobs[0])


def wait_status(
    batch: Any, job_id: str, statuses: tuple[str, ...] = TERMINAL, timeout: float = 30
) -> dict[str, Any]:
    """Poll DescribeJobs until the job is in one of `statuses`; its JobDetail."""

    def reached() -> dict[str, Any] | None:
        job = describe_job(batch, job_id)
        return job if job["status"] in statuses else None

    return wait_for(reached, timeout=timeout, what=f"job {job_id} in {statuses}")


def job_queue_is_valid(batch: Any, queue: str) -> bool:
    status: str = batch.describe_job_queues(jobQueues=[queue])["jobQueues"][0]["status"]
    return status == "VALID"


def make_environment(batch: Any, max_vcpus: int, priorities: tuple[int, ...] = (1,)) -> list[str]:
    """A process compute environment with maxvCpus, and one queue per priority on it."""
    ce = unique("ce")
    batch.create_compute_environment(
        computeEnvironmentName=ce,
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": max_vcpus, "subnets": []},
    )
    queues = []
    for priority in priorities:
        queue = unique("q")
        batch.create_job_queue(
            jobQueueName=queue,
            priority=priority,
            computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
        )
        queues.append(queue)
    for queue in queues:
        wait_for(partial(job_queue_is_valid, batch, queue), what="queue VALID")
    wait_for(
        lambda: (
            batch.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"][0][
                "status"
            ]
            == "VALID"
        ),
        what="CE VALID",
    )
    return queues
