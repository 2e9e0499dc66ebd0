"""The docker runtime: each attempt runs as a Docker container with AWS Batch's container
semantics (as ECS runs them), its output streamed into the log store.

`runtime` holds DockerRuntime (starting, following, stopping and recovering containers through
the Engine API); `options` the pure translation of containerProperties into the Engine's
container options; `frames` the Engine's multiplexed log frames; `engine` what the runtime asks
of the Engine and the host beside the container calls. Only `server.py` imports this package.
"""

from batchyard.runtimes.docker.engine import engine_unreachable, owner_label
from batchyard.runtimes.docker.options import (
    LABEL_ATTEMPT,
    LABEL_COMPUTE_ENVIRONMENT,
    LABEL_JOB_ID,
    LABEL_LOG_STREAM,
    LABEL_OWNER,
    LABEL_TASK_ID,
    CannotRun,
    ContainerOptions,
    container_options,
)
from batchyard.runtimes.docker.runtime import (
    HOST_LOST_NOT_FOUND,
    HOST_LOST_REMOVED,
    OUT_OF_MEMORY,
    STOPPED_BEFORE_START,
    DockerRuntime,
)

__all__ = [
    "HOST_LOST_NOT_FOUND",
    "HOST_LOST_REMOVED",
    "LABEL_ATTEMPT",
    "LABEL_COMPUTE_ENVIRONMENT",
    "LABEL_JOB_ID",
    "LABEL_LOG_STREAM",
    "LABEL_OWNER",
    "LABEL_TASK_ID",
    "OUT_OF_MEMORY",
    "STOPPED_BEFORE_START",
    "CannotRun",
    "ContainerOptions",
    "DockerRuntime",
    "container_options",
    "engine_unreachable",
    "owner_label",
]
