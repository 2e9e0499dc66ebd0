"""Where compute environments and job queues in flux settle (scheduling/resource_status.py):
the decision a dispatcher round applies before it plans jobs."""

from __future__ import annotations

import pytest

from batchyard.domain.model import ResourceStatus
from batchyard.scheduling.resource_status import (
    ComputeEnvironmentDeleted,
    ComputeEnvironmentSettled,
    JobQueueDrained,
    JobQueueSettled,
    settle,
)
from tests.builders import a_compute_environment, a_queue

R = ResourceStatus
NOW = 5_000


@pytest.mark.parametrize("status", [R.CREATING, R.UPDATING])
def test_a_compute_environment_whose_runtime_is_here_becomes_valid(status: R) -> None:
    ce = a_compute_environment("ce-a", status=status, runtime="process", status_changed_at=1)
    [change] = settle([ce], [], {"process", "docker"}, NOW)
    assert isinstance(change, ComputeEnvironmentSettled)
    settled = change.compute_environment
    assert (settled.name, settled.status, settled.status_reason, settled.status_changed_at) == (
        "ce-a",
        R.VALID,
        "ComputeEnvironment Healthy",
        NOW,
    )
    assert settled.compute_resources == ce.compute_resources


def test_a_compute_environment_whose_runtime_is_not_here_becomes_invalid() -> None:
    ce = a_compute_environment("ce-d", status=R.CREATING, runtime="docker")
    [change] = settle([ce], [], {"process"}, NOW)
    assert isinstance(change, ComputeEnvironmentSettled)
    assert change.compute_environment.status is R.INVALID
    assert change.compute_environment.status_reason == (
        "CLIENT_ERROR - the docker runtime is not configured on this server"
    )


def test_a_deleting_compute_environment_is_deleted() -> None:
    ce = a_compute_environment("ce-a", status=R.DELETING)
    assert settle([ce], [], {"process"}, NOW) == [ComputeEnvironmentDeleted("ce-a")]


@pytest.mark.parametrize("status", [R.CREATING, R.UPDATING])
def test_a_job_queue_in_flux_becomes_valid(status: R) -> None:
    queue = a_queue("high", status=status, priority=7)
    [change] = settle([], [queue], set(), NOW)
    assert isinstance(change, JobQueueSettled)
    settled = change.job_queue
    assert (settled.name, settled.status, settled.status_reason, settled.status_changed_at) == (
        "high",
        R.VALID,
        "JobQueue Healthy",
        NOW,
    )
    assert settled.priority == 7


def test_a_deleting_job_queue_is_drained() -> None:
    queue = a_queue("high", status=R.DELETING)
    assert settle([], [queue], {"process"}, NOW) == [JobQueueDrained("high")]


@pytest.mark.parametrize("status", [R.VALID, R.INVALID])
def test_settled_resources_change_nothing(status: R) -> None:
    ce = a_compute_environment("ce-a", status=status)
    queue = a_queue("high", status=status)
    assert settle([ce], [queue], {"process"}, NOW) == []


def test_compute_environments_come_first_each_kind_in_the_order_given() -> None:
    changes = settle(
        [
            a_compute_environment("ce-b", status=R.DELETING),
            a_compute_environment("ce-a", status=R.VALID),
            a_compute_environment("ce-c", status=R.UPDATING),
        ],
        [a_queue("q2", status=R.DELETING), a_queue("q1", status=R.CREATING)],
        {"process"},
        NOW,
    )
    named = [(type(c).__name__, getattr(c, "name", None) or _resource_name(c)) for c in changes]
    assert named == [
        ("ComputeEnvironmentDeleted", "ce-b"),
        ("ComputeEnvironmentSettled", "ce-c"),
        ("JobQueueDrained", "q2"),
        ("JobQueueSettled", "q1"),
    ]


def _resource_name(change: object) -> str:
    if isinstance(change, ComputeEnvironmentSettled):
        return change.compute_environment.name
    assert isinstance(change, JobQueueSettled)
    return change.job_queue.name
