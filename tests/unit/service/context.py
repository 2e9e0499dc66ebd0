"""The service context job tests run in: a MemoryStore with compute environment ce, queues q,
off (DISABLED) and fair, and definitions render and legacy, at a fixed clock (the `clock` and
`ctx` fixtures); and what the tests do with it: define, submit, set_status, `rejected`,
which expects a ClientException naming each fragment, and `wire`, which calls an operation's
entry in the API's operation table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest

from batchyard.api.operations import OPERATIONS
from batchyard.domain.errors import ClientException
from batchyard.domain.model import (
    Identity,
    Job,
    JobDefinition,
    JobStatus,
    ResourceState,
)
from batchyard.service import jobs
from batchyard.service.context import ServiceContext
from batchyard.store.memory import MemoryStore
from tests.builders import FixedClock, a_compute_environment, a_queue, revisions_of

S = JobStatus
IDENTITY = Identity()
NOW = 1_700_000_000_000
QUEUE: dict[str, Any] = {
    "priority": 1,
    "compute_environments": ("ce",),
    "status_reason": "JobQueue Healthy",
}


def define(ctx: ServiceContext, name: str, **fields: Any) -> JobDefinition:
    return ctx.store.add_job_definition(revisions_of(name, **fields))


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def ctx(clock: FixedClock) -> ServiceContext:
    store = MemoryStore()
    store.put_compute_environment(
        a_compute_environment("ce", max_vcpus=None, status_reason="ComputeEnvironment Healthy"),
        create=True,
    )
    store.put_job_queue(a_queue("q", **QUEUE), create=True)
    store.put_job_queue(a_queue("off", state=ResourceState.DISABLED, **QUEUE), create=True)
    store.put_job_queue(
        a_queue("fair", scheduling_policy_arn=IDENTITY.arn("scheduling-policy", "fsp"), **QUEUE),
        create=True,
    )
    context = ServiceContext(store=store, clock=clock, identity=IDENTITY)
    define(
        context,
        "render",
        parameters={"msg": "hello", "level": "1"},
        container_properties={
            "image": "busybox",
            "command": ["echo", "Ref::msg", "--level", "Ref::level", "--in=Ref::msg"],
            "environment": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
            "resourceRequirements": [
                {"type": "VCPU", "value": "2"},
                {"type": "MEMORY", "value": "512"},
            ],
        },
        retry_strategy={"attempts": 3, "evaluateOnExit": [{"onExitCode": "1", "action": "exit"}]},
        timeout={"attemptDurationSeconds": 600},
        tags={"team": "def", "owner": "def"},
        scheduling_priority=5,
    )
    define(
        context,
        "legacy",
        container_properties={"image": "busybox", "command": ["true"], "vcpus": 2, "memory": 1024},
    )
    return context


def submit(ctx: ServiceContext, **fields: Any) -> Job:
    fields.setdefault("job_name", "job")
    fields.setdefault("job_queue", "q")
    fields.setdefault("job_definition", "render")
    return jobs.submit_job(ctx, **fields)


def wire(ctx: ServiceContext, operation: str, request: dict[str, Any]) -> dict[str, Any]:
    """The response of `operation`'s table entry to a validated request, as the edge runs it;
    a submission is stored at once (the edge groups it with others of the same loop turn)."""

    async def insert(jobs: list[Job]) -> Job:
        return ctx.store.insert_jobs(jobs)[0]

    return asyncio.run(OPERATIONS[operation].invoke(ctx, request, insert))


def rejected(call: Callable[[], object], *fragments: str) -> str:
    with pytest.raises(ClientException) as info:
        call()
    for fragment in fragments:
        assert fragment in info.value.message, info.value.message
    return info.value.message


def set_status(ctx: ServiceContext, job_id: str, status: JobStatus, **fields: Any) -> Job:
    stored = ctx.store.mutate_job(job_id, lambda j: replace(j, status=status, **fields))
    assert stored is not None
    return stored
