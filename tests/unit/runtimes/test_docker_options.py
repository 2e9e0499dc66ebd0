"""containerProperties become Docker Engine container options (runtimes/docker/options.py):
pure, no Engine needed."""

from __future__ import annotations

import pytest

from batchyard.domain.model import Document, Resources
from batchyard.runtimes.docker.options import (
    LABEL_ATTEMPT,
    LABEL_JOB_ID,
    LABEL_OWNER,
    LABEL_TASK_ID,
    CannotRun,
    container_options,
)
from tests.builders import a_container_spec
from tests.containers import IMAGE

# -- containerProperties -> container options (pure) -----------------------------------------


def test_container_properties_become_docker_options() -> None:
    spec = a_container_spec(
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
    spec = a_container_spec(
        (), network_mode=None, resources=Resources(vcpus=2, memory_mib=512, gpus=1)
    )

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
    spec = a_container_spec(("true",), container=container, resources=resources)
    with pytest.raises(CannotRun) as refused:
        container_options(spec, owner="o", default_network_mode="none", host_cpus=2, host_gpus=0)
    assert refused.value.reason.startswith(reason)
