"""Docker for the tests: the engine and the locally built test image (a failure that says how
to provision them, never a skip), and docker compute environments, queues and job definitions
made through boto3 against a server."""

from __future__ import annotations

import contextlib
from typing import Any

import docker
import pytest
from docker.errors import ImageNotFound, NotFound

from batchyard.runtimes.docker import LABEL_OWNER, engine_unreachable
from tests.builders import TEST_IMAGE
from tests.fixtures import unique, wait_for

IMAGE = TEST_IMAGE
RUNTIME_TAG = "batchyard:runtime"
NETWORK_TAG = "batchyard:network-mode"
# PID 1 of a container gets no signal it has no handler for: trap TERM, as a real job should.
RUN_FOREVER = ("sh", "-c", "trap 'exit 143' TERM; echo up; sleep 300 & wait")


def require_engine() -> docker.DockerClient:
    """The engine and the test image, or a failure that says how to get them (never a skip)."""
    reason = engine_unreachable()
    if reason is not None:
        pytest.fail(
            f"Docker engine not reachable ({reason}). The docker tests never skip: run "
            "`make provision` (scripts/provision) to start one and build the test image."
        )
    engine = docker.from_env()
    try:
        engine.images.get(IMAGE)
    except ImageNotFound:
        engine.close()
        pytest.fail(f"Test image {IMAGE} missing: run `make provision` (scripts/provision).")
    return engine


def remove_containers(engine: docker.DockerClient, owner_label: str) -> None:
    """Removes every container a runtime of `owner_label` made, running or not."""
    for container in engine.containers.list(
        all=True, filters={"label": f"{LABEL_OWNER}={owner_label}"}
    ):
        with contextlib.suppress(NotFound):
            container.remove(force=True, v=True)


def docker_queue(batch: Any, network_mode: str = "none", max_vcpus: int = 4) -> str:
    """A docker compute environment (network mode by tag) and a queue on it, both VALID."""
    ce, queue = unique("docker-ce"), unique("docker-q")
    batch.create_compute_environment(
        computeEnvironmentName=ce,
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": max_vcpus, "subnets": []},
        tags={RUNTIME_TAG: "docker", NETWORK_TAG: network_mode},
    )
    batch.create_job_queue(
        jobQueueName=queue,
        priority=1,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    wait_for(
        lambda: batch.describe_job_queues(jobQueues=[queue])["jobQueues"][0]["status"] == "VALID",
        what="queue VALID",
    )
    [detail] = batch.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"]
    assert (detail["status"], detail["statusReason"]) == ("VALID", "ComputeEnvironment Healthy")
    return queue


def define_container_job(
    batch: Any, command: list[str], memory: str = "64", **container: Any
) -> str:
    """A container job definition of the test image, 1 vCPU and `memory` MiB; its ARN."""
    return str(
        batch.register_job_definition(
            jobDefinitionName=unique("jd"),
            type="container",
            containerProperties={
                "image": IMAGE,
                "command": command,
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": memory},
                ],
                **container,
            },
        )["jobDefinitionArn"]
    )
