"""What the docker runtime asks of the Engine and the host beside running containers: whether
the Engine answers, the owner label that keeps servers sharing one Engine apart, the Engine's
error text, and the kernel's record of an OOM kill the Engine missed."""

from __future__ import annotations

import errno
import hashlib
import os

import docker
import requests
from docker.errors import DockerException


def engine_unreachable(timeout_s: int = 5) -> str | None:
    """None if the Docker engine (DOCKER_HOST, else the local socket) answers; else why not."""
    try:
        client = docker.from_env(timeout=timeout_s)
    except DockerException as error:
        return str(error)
    try:
        client.ping()
    except (DockerException, requests.RequestException) as error:
        return str(error)
    finally:
        client.close()
    return None


def owner_label(owner: str) -> str:
    """The batchyard.owner label of containers run for `owner` (e.g. a store URL)."""
    return hashlib.sha256(owner.encode()).hexdigest()[:16]


def oom_kill_logged(container_id: str) -> bool:
    """Whether the kernel log records an OOM kill in the container's cgroup. Docker 20.10 (on
    cgroup v1) drops a container's OOM event that arrives after its exit, leaving OOMKilled
    false; the kernel's "oom-kill:... task_memcg=<cgroup>" record names the container."""
    needle = container_id.encode()
    try:
        fd = os.open("/dev/kmsg", os.O_RDONLY | os.O_NONBLOCK)
    except OSError:  # not on this host, or not readable: the Engine's flag is all there is
        return False
    try:
        while True:
            try:
                record = os.read(fd, 8192)
            except BlockingIOError:
                return False
            except OSError as error:
                if error.errno == errno.EPIPE:  # records overwritten while reading: go on
                    continue
                return False
            if not record:
                return False
            if b"oom-kill:" in record and needle in record:
                return True
    finally:
        os.close(fd)


def daemon_message(error: Exception) -> str:
    explanation = getattr(error, "explanation", None)
    return f"Error response from daemon: {explanation}" if explanation else str(error)
