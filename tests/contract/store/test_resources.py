"""The store contract for compute environments, job queues, scheduling policies and job
definitions: MemoryStore and SqlStore (a SQLite file) must behave the same."""

from __future__ import annotations

from dataclasses import replace

import pytest

from batchyard.domain.model import (
    JobDefinition,
    JobStatus,
)
from batchyard.store.base import ConflictError
from tests.builders import (
    a_complete_compute_environment,
    a_complete_queue,
    a_complete_scheduling_policy,
    complete_revisions_of,
)
from tests.contract.store.steps import (
    AnyStore,
)

S = JobStatus


# -- compute environments, job queues, scheduling policies ----------------------------------

RESOURCE_KINDS = {
    "compute_environment": (a_complete_compute_environment, "list_compute_environments"),
    "job_queue": (a_complete_queue, "list_job_queues"),
    "scheduling_policy": (a_complete_scheduling_policy, "list_scheduling_policies"),
}


@pytest.mark.parametrize("kind", sorted(RESOURCE_KINDS))
def test_resources_put_get_list_delete(store: AnyStore, kind: str) -> None:
    make, list_name = RESOURCE_KINDS[kind]
    put = getattr(store, f"put_{kind}")
    get = getattr(store, f"get_{kind}")
    listing = getattr(store, list_name)
    delete = getattr(store, f"delete_{kind}")

    assert get("b") is None
    put(make("b"), create=True)
    put(make("a"), create=True)
    assert get("b") == make("b")
    assert [r.name for r in listing()] == ["a", "b"]
    assert listing() == [make("a"), make("b")]

    with pytest.raises(ConflictError):
        put(make("a", tags={"changed": "yes"}), create=True)
    assert get("a") == make("a")

    put(make("a", tags={"changed": "yes"}), create=False)
    assert get("a") == make("a", tags={"changed": "yes"})
    put(make("c"), create=False)  # replace of a missing name inserts it
    assert get("c") == make("c")

    delete("a")
    delete("missing")
    assert get("a") is None
    assert [r.name for r in listing()] == ["b", "c"]


def test_job_queue_keeps_nested_values(store: AnyStore) -> None:
    queue = a_complete_queue("nested", scheduling_policy_arn="arn:sp", job_queue_type="ECS")
    store.put_job_queue(queue, create=True)
    stored = store.get_job_queue("nested")
    assert stored == queue
    assert stored is not None
    assert stored.compute_environment_names == ("ce-a", "ce-b")


# -- job definitions -----------------------------------------------------------------------


def test_job_definition_revisions(store: AnyStore) -> None:
    seen: list[int] = []

    def build(revision: int) -> JobDefinition:
        seen.append(revision)
        return complete_revisions_of("sleep")(revision)

    first = store.add_job_definition(build)
    second = store.add_job_definition(complete_revisions_of("sleep"))
    other = store.add_job_definition(complete_revisions_of("echo"))
    assert (first.revision, second.revision, other.revision) == (1, 2, 1)
    assert 1 in seen
    assert store.get_job_definition("sleep", 2) == second
    assert store.get_job_definition("sleep", 3) is None
    assert store.get_job_definition("nope", 1) is None

    store.put_job_definition(replace(second, status="INACTIVE"))
    assert store.latest_job_definition("sleep", active_only=False) == replace(
        second, status="INACTIVE"
    )
    assert store.latest_job_definition("sleep", active_only=True) == first
    assert store.latest_job_definition("nope", active_only=False) is None
    third = store.add_job_definition(complete_revisions_of("sleep"))
    assert third.revision == 3  # revisions continue after an INACTIVE one

    listed = store.list_job_definitions()
    assert [(d.name, d.revision) for d in listed] == [
        ("echo", 1),
        ("sleep", 1),
        ("sleep", 2),
        ("sleep", 3),
    ]
    with pytest.raises(ConflictError):
        store.put_job_definition(complete_revisions_of("sleep")(9))


def test_job_definition_keeps_every_field(store: AnyStore) -> None:
    build = complete_revisions_of(
        "full",
        parameters={"p": "v"},
        retry_strategy={"attempts": 2},
        timeout={"attemptDurationSeconds": 60},
        node_properties=None,
        propagate_tags=True,
        scheduling_priority=5,
        tags={"a": "b"},
        created_at=77,
    )
    added = store.add_job_definition(build)
    assert added == build(1)
    assert store.get_job_definition("full", 1) == build(1)
