"""containerProperties (AWS wire form) -> Docker Engine API container options, as ECS would run
them: pure, no Engine call, no I/O. What no container could honour here raises CannotRun with
the container.reason AWS would give."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from docker.types import DeviceRequest, LogConfig, Mount, Ulimit

from batchyard.domain.model import Document
from batchyard.runtimes.base import MAX_REASON, AttemptSpec

LABEL_OWNER = "batchyard.owner"
LABEL_JOB_ID = "batchyard.job-id"
LABEL_TASK_ID = "batchyard.task-id"
LABEL_ATTEMPT = "batchyard.attempt"
LABEL_COMPUTE_ENVIRONMENT = "batchyard.compute-environment"
LABEL_LOG_STREAM = "batchyard.log-stream"

CANNOT_CREATE = "CannotCreateContainerError"
_DEVICE_PERMISSIONS = (("READ", "r"), ("WRITE", "w"), ("MKNOD", "m"))


class CannotRun(Exception):
    """An attempt cannot run; `reason` is its container.reason (AWS wording)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason[:MAX_REASON]


@dataclass(frozen=True, slots=True)
class ContainerOptions:
    image: str
    create: dict[str, Any]  # keyword arguments of APIClient.create_container
    host: dict[str, Any]  # keyword arguments of APIClient.create_host_config


def container_options(
    spec: AttemptSpec,
    *,
    owner: str,
    default_network_mode: str,
    host_cpus: float,
    host_gpus: int,
) -> ContainerOptions:
    """How Docker runs this attempt, as ECS would run its containerProperties, in the network
    of its compute environment (else the default). Raises CannotRun for what no container could
    honour here (no image, a GPU on a host without one, ...)."""
    image = spec.container.get("image")
    if not isinstance(image, str) or not image:
        raise CannotRun(
            f"{CANNOT_CREATE}: the job has no container image "
            "(the docker runtime runs jobs with containerProperties)"
        )
    host = _host_options(spec, default_network_mode, host_cpus, host_gpus)
    return ContainerOptions(image=image, create=_create_options(spec, owner), host=host)


def _host_options(
    spec: AttemptSpec, default_network_mode: str, host_cpus: float, host_gpus: int
) -> dict[str, Any]:
    """Keyword arguments of APIClient.create_host_config: limits, mounts, network, devices."""
    container = spec.container
    resources = spec.resources
    linux: Document = container.get("linuxParameters") or {}
    memory_mib = int(resources.memory_mib)
    max_swap = linux.get("maxSwap")
    host: dict[str, Any] = {
        "network_mode": spec.network_mode or default_network_mode,
        "privileged": bool(container.get("privileged", False)),
        "read_only": bool(container.get("readonlyRootFilesystem", False)),
        # A hard limit, as on ECS: no swap beyond it unless maxSwap grants some.
        "mem_limit": f"{memory_mib}m",
        "memswap_limit": f"{memory_mib + max(0, int(max_swap or 0))}m",
        # A quota of the job's vCPUs; the Engine refuses more than the host has.
        "nano_cpus": round(min(float(resources.vcpus), host_cpus) * 1e9),
        # Batchyard is the log store: the engine keeps output only until it has been read.
        "log_config": LogConfig(type="json-file"),
    }
    binds, mounts = _volume_mounts(container)
    if binds:
        host["binds"] = binds
    if mounts:
        host["mounts"] = mounts
    if container.get("ulimits"):
        host["ulimits"] = [
            Ulimit(name=str(u["name"]), soft=int(u["softLimit"]), hard=int(u["hardLimit"]))
            for u in container["ulimits"]
        ]
    host.update(_linux_options(linux))
    if resources.gpus > 0:
        if host_gpus <= 0:
            raise CannotRun(
                f"{CANNOT_CREATE}: the job requires {resources.gpus} GPU(s) and this Docker "
                "host has none"
            )
        host["device_requests"] = [DeviceRequest(count=int(resources.gpus), capabilities=[["gpu"]])]
    return host


def _linux_options(linux: Document) -> dict[str, Any]:
    """The host options of linuxParameters (maxSwap's memswap_limit aside)."""
    host: dict[str, Any] = {}
    if linux.get("swappiness") is not None and linux.get("maxSwap") is not None:
        host["mem_swappiness"] = int(linux["swappiness"])
    if linux.get("devices"):
        host["devices"] = [_device(d) for d in linux["devices"]]
    if linux.get("initProcessEnabled"):
        host["init"] = True
    if linux.get("sharedMemorySize") is not None:
        host["shm_size"] = f"{int(linux['sharedMemorySize'])}m"
    if linux.get("tmpfs"):
        host["tmpfs"] = {
            str(t["containerPath"]): ",".join(
                [f"size={int(t['size'])}m", *(str(o) for o in t.get("mountOptions") or ())]
            )
            for t in linux["tmpfs"]
        }
    return host


def _create_options(spec: AttemptSpec, owner: str) -> dict[str, Any]:
    """Keyword arguments of APIClient.create_container: name, command, environment, labels."""
    labels = {
        LABEL_OWNER: owner,
        LABEL_JOB_ID: spec.job_id,
        LABEL_TASK_ID: spec.task_id,
        LABEL_ATTEMPT: str(spec.attempt_number),
        LABEL_COMPUTE_ENVIRONMENT: spec.compute_environment,
        LABEL_LOG_STREAM: spec.log_stream_name,
    }
    create: dict[str, Any] = {
        "name": f"batchyard-{spec.task_id}",
        # No command: the image's own CMD runs, as on ECS.
        "command": list(spec.command) or None,
        "environment": dict(spec.environment),
        "labels": labels,
    }
    if spec.container.get("user"):
        create["user"] = str(spec.container["user"])
    return create


def _volume_mounts(container: Document) -> tuple[list[str], list[Mount]]:
    """(binds for host paths, anonymous volumes) of the mountPoints. A host sourcePath is
    bind-mounted (created if missing, as Docker does for ECS); a volume without one is a
    fresh Docker volume that goes with the container."""
    volumes: dict[str, Document] = {}
    for volume in container.get("volumes") or ():
        name = str(volume.get("name", ""))
        if volume.get("efsVolumeConfiguration") is not None:
            raise CannotRun(
                f"{CANNOT_CREATE}: volume {name!r}: efsVolumeConfiguration is not supported "
                "by the docker runtime; mount the file system on the host and use host.sourcePath"
            )
        volumes[name] = volume
    binds: list[str] = []
    mounts: list[Mount] = []
    for point in container.get("mountPoints") or ():
        name = str(point.get("sourceVolume", ""))
        target = str(point.get("containerPath", ""))
        read_only = bool(point.get("readOnly", False))
        volume = volumes.get(name)
        if volume is None:
            raise CannotRun(f"{CANNOT_CREATE}: mount point {target!r} names no volume {name!r}")
        if not target.startswith("/"):
            raise CannotRun(f"{CANNOT_CREATE}: containerPath {target!r} must be absolute")
        source = (volume.get("host") or {}).get("sourcePath")
        if source:
            if not str(source).startswith("/"):
                raise CannotRun(
                    f"{CANNOT_CREATE}: volume {name!r}: sourcePath {source!r} must be absolute"
                )
            binds.append(f"{source}:{target}:{'ro' if read_only else 'rw'}")
        else:
            mounts.append(Mount(target=target, source=None, type="volume", read_only=read_only))
    return binds, mounts


def _device(device: Document) -> str:
    """A devices entry as Docker's "host:container:permissions" string (all three if none)."""
    host_path = str(device["hostPath"])
    container_path = str(device.get("containerPath") or host_path)
    permissions = device.get("permissions") or [p for p, _ in _DEVICE_PERMISSIONS]
    mode = "".join(letter for p, letter in _DEVICE_PERMISSIONS if p in permissions)
    return f"{host_path}:{container_path}:{mode}"
