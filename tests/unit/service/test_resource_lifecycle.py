"""The lifecycle compute environments and job queues share (service/resource_lifecycle.py):
the status and status reason each of Create, Update and Delete leaves, when an update or a
delete is refused and with which words, and the settled defaults a fresh server creates."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import pytest

from batchyard.domain.errors import ClientException
from batchyard.domain.model import ResourceState, ResourceStatus
from batchyard.service import compute_environments, job_queues
from batchyard.service.context import ServiceContext
from batchyard.service.defaults import ensure_defaults
from batchyard.store.memory import MemoryStore
from tests.builders import FixedClock, a_compute_environment

T0 = 1_700_000_000_000


@dataclass(frozen=True)
class Kind:
    """One kind of resource: how to create, update, delete, read and settle one by name."""

    create: Callable[[ServiceContext, str], Any]
    update: Callable[[ServiceContext, str, str | None], Any]
    delete: Callable[[ServiceContext, str], None]
    get: Callable[[ServiceContext, str], Any]
    put: Callable[[ServiceContext, Any], None]


COMPUTE_ENVIRONMENT = Kind(
    create=lambda ctx, name: compute_environments.create_compute_environment(
        ctx,
        compute_environment_name=name,
        type="MANAGED",
        compute_resources={"type": "EC2", "maxvCpus": 4, "subnets": []},
    ),
    update=lambda ctx, name, state: compute_environments.update_compute_environment(
        ctx, compute_environment=name, state=state
    ),
    delete=lambda ctx, name: compute_environments.delete_compute_environment(
        ctx, compute_environment=name
    ),
    get=lambda ctx, name: ctx.store.get_compute_environment(name),
    put=lambda ctx, ce: ctx.store.put_compute_environment(ce, create=False),
)
JOB_QUEUE = Kind(
    create=lambda ctx, name: job_queues.create_job_queue(
        ctx,
        job_queue_name=name,
        priority=1,
        compute_environment_order=[{"order": 1, "computeEnvironment": "ce"}],
    ),
    update=lambda ctx, name, state: job_queues.update_job_queue(ctx, job_queue=name, state=state),
    delete=lambda ctx, name: job_queues.delete_job_queue(ctx, job_queue=name),
    get=lambda ctx, name: ctx.store.get_job_queue(name),
    put=lambda ctx, queue: ctx.store.put_job_queue(queue, create=False),
)
KINDS = pytest.mark.parametrize(
    ("kind", "type_name", "noun"),
    [
        (COMPUTE_ENVIRONMENT, "ComputeEnvironment", "compute environment"),
        (JOB_QUEUE, "JobQueue", "job queue"),
    ],
    ids=["compute-environment", "job-queue"],
)


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(T0)


@pytest.fixture
def ctx(clock: FixedClock) -> ServiceContext:
    store = MemoryStore()
    # The compute environment the queues are built on (not the one under test).
    store.put_compute_environment(a_compute_environment("ce"), create=True)
    return ServiceContext(store=store, clock=clock)


def refused(call: Callable[[], object]) -> str:
    with pytest.raises(ClientException) as info:
        call()
    return info.value.message


def settle(ctx: ServiceContext, kind: Kind, name: str) -> None:
    """What the dispatcher's next round does to a CREATING or UPDATING resource."""
    kind.put(ctx, replace(kind.get(ctx, name), status=ResourceStatus.VALID))


@KINDS
def test_create_update_delete_statuses(
    ctx: ServiceContext, clock: FixedClock, kind: Kind, type_name: str, noun: str
) -> None:
    created = kind.create(ctx, "it")
    assert (created.status, created.status_reason) == (
        ResourceStatus.CREATING,
        f"{type_name} is being created",
    )
    assert (created.created_at, created.status_changed_at) == (T0, T0)
    assert kind.get(ctx, "it") == created
    assert refused(lambda: kind.create(ctx, "it")) == f"Object already exists: {noun} it"

    settle(ctx, kind, "it")
    clock.now = T0 + 5
    updated = kind.update(ctx, "it", "DISABLED")
    assert (updated.status, updated.status_reason, updated.state) == (
        ResourceStatus.UPDATING,
        f"{type_name} is being updated",
        ResourceState.DISABLED,
    )
    assert (updated.created_at, updated.status_changed_at) == (T0, T0 + 5)
    assert kind.get(ctx, "it") == updated
    assert refused(lambda: kind.delete(ctx, "it")) == "Cannot delete, resource is being modified"

    settle(ctx, kind, "it")
    clock.now = T0 + 9
    kind.delete(ctx, "it")
    deleting = kind.get(ctx, "it")
    assert (deleting.status, deleting.status_reason, deleting.status_changed_at) == (
        ResourceStatus.DELETING,
        f"{type_name} is being deleted",
        T0 + 9,
    )
    assert refused(lambda: kind.update(ctx, "it", None)) == f"{type_name} it is being deleted."
    assert kind.get(ctx, "it") == deleting


@KINDS
def test_only_a_disabled_resource_is_deleted(
    ctx: ServiceContext, kind: Kind, type_name: str, noun: str
) -> None:
    kind.create(ctx, "on")
    settle(ctx, kind, "on")
    before = kind.get(ctx, "on")
    assert (
        refused(lambda: kind.delete(ctx, "on"))
        == f"Cannot delete, {noun} on must be DISABLED first."
    )
    assert kind.get(ctx, "on") == before


def test_defaults_are_created_settled(clock: FixedClock) -> None:
    ctx = ServiceContext(store=MemoryStore(), clock=clock)
    ensure_defaults(ctx, vcpus=3)
    ce = ctx.store.get_compute_environment("default")
    queue = ctx.store.get_job_queue("default")
    assert ce is not None
    assert queue is not None
    assert (ce.status, ce.status_reason, ce.status_changed_at) == (
        ResourceStatus.VALID,
        "ComputeEnvironment Healthy",
        T0,
    )
    assert ce.max_vcpus == 3
    assert (queue.status, queue.status_reason, queue.status_changed_at) == (
        ResourceStatus.VALID,
        "JobQueue Healthy",
        T0,
    )
    assert queue.compute_environment_names == ("default",)
    # A store that has resources already gets none.
    clock.now = T0 + 1
    ensure_defaults(ctx, vcpus=8)
    assert ctx.store.get_compute_environment("default") == ce
