"""Fixtures of the runtime tests: the Docker engine (a failure, never a skip, when it is missing)
and an owner identity of each test's own, whose containers are removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import docker
import pytest

from batchyard.runtimes.docker import (
    owner_label,
)
from tests.containers import remove_containers, require_engine


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
