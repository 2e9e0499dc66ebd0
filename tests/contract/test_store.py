"""One contract for every Store: MemoryStore and SqlStore (SQLite file) must behave the same.

SQL-only tests at the end cover durability (reopen, kill -9), foreign files and index use.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchyard.domain.model import (
    ALL_JOB_STATUSES,
    Attempt,
    ComputeEnvironment,
    ComputeEnvironmentOrder,
    Dependency,
    EvaluateOnExit,
    Job,
    JobDefinition,
    JobQueue,
    JobStateTimeLimitAction,
    JobStatus,
    Resources,
    ResourceState,
    ResourceStatus,
    RetryStrategy,
    SchedulingPolicy,
    StopCause,
)
from batchyard.scheduling.snapshot import Plan
from batchyard.store.base import ConflictError, JobQuery, SnapshotLimits, StoreError
from batchyard.store.memory import MemoryStore
from batchyard.store.sql import SqlStore

AnyStore = MemoryStore | SqlStore
S = JobStatus
DEF_ARN = "arn:aws:batch:us-east-1:000000000000:job-definition/{}:{}"


# -- fixtures and builders -------------------------------------------------------------------


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    opened: AnyStore
    if request.param == "memory":
        opened = MemoryStore()
    else:
        opened = SqlStore(f"sqlite:///{tmp_path / 'batchyard.db'}")
    yield opened
    opened.close()


@pytest.fixture
def db_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'batchyard.db'}"


def job(job_id: str, **fields: Any) -> Job:
    values: dict[str, Any] = {
        "job_name": f"name-{job_id}",
        "job_queue": "q1",
        "job_definition_arn": DEF_ARN.format("def", 1),
        "job_definition_name": "def",
        "status": S.SUBMITTED,
        "created_at": 1_000,
    }
    values.update(fields)
    return Job(job_id=job_id, seq=0, **values)


def array(parent_id: str, size: int, **fields: Any) -> list[Job]:
    parent = job(parent_id, array_size=size, **fields)
    children = [
        job(f"{parent_id}:{i}", array_parent_id=parent_id, array_index=i, **fields)
        for i in range(size)
    ]
    return [parent, *children]


def compute_environment(name: str, **fields: Any) -> ComputeEnvironment:
    values: dict[str, Any] = {
        "arn": f"arn:aws:batch:us-east-1:000000000000:compute-environment/{name}",
        "type": "MANAGED",
        "state": ResourceState.ENABLED,
        "status": ResourceStatus.VALID,
        "status_reason": "ComputeEnvironment Healthy",
        "runtime": "process",
        "compute_resources": {"type": "EC2", "maxvCpus": 8, "subnets": ["s-1"]},
        "tags": {"team": "a"},
        "created_at": 5,
    }
    values.update(fields)
    return ComputeEnvironment(name=name, **values)


def job_queue(name: str, **fields: Any) -> JobQueue:
    values: dict[str, Any] = {
        "arn": f"arn:aws:batch:us-east-1:000000000000:job-queue/{name}",
        "state": ResourceState.ENABLED,
        "status": ResourceStatus.VALID,
        "status_reason": "JobQueue Healthy",
        "priority": 1,
        "compute_environment_order": (
            ComputeEnvironmentOrder(2, "ce-b"),
            ComputeEnvironmentOrder(1, "ce-a"),
        ),
        "job_state_time_limit_actions": (JobStateTimeLimitAction("r", "RUNNABLE", 600, "CANCEL"),),
        "service_environment_order": ({"order": 1, "serviceEnvironment": "se"},),
        "tags": {"k": "v"},
    }
    values.update(fields)
    return JobQueue(name=name, **values)


def scheduling_policy(name: str, **fields: Any) -> SchedulingPolicy:
    values: dict[str, Any] = {
        "arn": f"arn:aws:batch:us-east-1:000000000000:scheduling-policy/{name}",
        "fairshare_policy": {"shareDecaySeconds": 60, "shareDistribution": []},
        "tags": {},
    }
    values.update(fields)
    return SchedulingPolicy(name=name, **values)


def definition_builder(name: str, status: str = "ACTIVE", **fields: Any) -> Any:
    def build(revision: int) -> JobDefinition:
        return JobDefinition(
            name=name,
            revision=revision,
            arn=DEF_ARN.format(name, revision),
            status=status,
            type="container",
            container_properties={"image": "busybox", "command": ["true"]},
            platform_capabilities=("EC2",),
            **fields,
        )

    return build


def flagged_ids(store: AnyStore) -> list[str]:
    return [j.job_id for j in store.snapshot(SnapshotLimits(to_evaluate=100_000)).to_evaluate]


def evaluate_all(store: AnyStore) -> None:
    """Clear every evaluation flag, as a planner that decided nothing would."""
    snap = store.snapshot(SnapshotLimits(to_evaluate=100_000))
    store.commit(Plan(evaluated=tuple((j.job_id, j.version) for j in snap.to_evaluate)))


def set_status(status: JobStatus, **fields: Any) -> Any:
    def mutation(current: Job) -> Job:
        return replace(current, status=status, **fields)

    return mutation


def summary(**counts: int) -> dict[str, int]:
    """An array_status_summary: every status, zero unless given."""
    return {status.value: counts.get(status.value, 0) for status in ALL_JOB_STATUSES}


def recount(store: AnyStore, parent_id: str) -> dict[str, int]:
    counts = dict.fromkeys((s.value for s in ALL_JOB_STATUSES), 0)
    after = None
    while True:
        page = store.list_jobs(JobQuery(array_job_id=parent_id, limit=7, after=after))
        if not page:
            return counts
        for child in page:
            counts[child.status.value] += 1
        after = page[-1].array_index


# -- compute environments, job queues, scheduling policies ----------------------------------

RESOURCE_KINDS = {
    "compute_environment": (compute_environment, "list_compute_environments"),
    "job_queue": (job_queue, "list_job_queues"),
    "scheduling_policy": (scheduling_policy, "list_scheduling_policies"),
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
    queue = job_queue("nested", scheduling_policy_arn="arn:sp", job_queue_type="ECS")
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
        return definition_builder("sleep")(revision)

    first = store.add_job_definition(build)
    second = store.add_job_definition(definition_builder("sleep"))
    other = store.add_job_definition(definition_builder("echo"))
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
    third = store.add_job_definition(definition_builder("sleep"))
    assert third.revision == 3  # revisions continue after an INACTIVE one

    listed = store.list_job_definitions()
    assert [(d.name, d.revision) for d in listed] == [
        ("echo", 1),
        ("sleep", 1),
        ("sleep", 2),
        ("sleep", 3),
    ]
    with pytest.raises(ConflictError):
        store.put_job_definition(definition_builder("sleep")(9))


def test_job_definition_keeps_every_field(store: AnyStore) -> None:
    build = definition_builder(
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


# -- jobs: insert and read -------------------------------------------------------------------


RICH = job(
    "rich",
    status=S.RUNNING,
    status_reason="Essential container in task exited",
    started_at=5,
    depends_on=(Dependency("dep-a", None), Dependency("dep-b", "SEQUENTIAL")),
    wait_for=("dep-a", "dep-b"),
    parameters={"p": "v"},
    container={"command": ["echo", "Ref::p"], "environment": [{"name": "X", "value": "1"}]},
    resources=Resources(vcpus=0.5, memory_mib=512, gpus=1),
    retry_strategy=RetryStrategy(
        3, (EvaluateOnExit("RETRY", on_exit_code="1*"), EvaluateOnExit("EXIT", on_reason="*"))
    ),
    timeout_seconds=60,
    tags={"k": "v"},
    propagate_tags=True,
    platform_capabilities=("EC2",),
    scheduling_priority=7,
    share_identifier="blue",
    extra={"nodeOverrides": {"numNodes": 2}},
    attempts=(
        Attempt(
            "t1",
            "ce1",
            placed_at=1,
            started_at=2,
            stopped_at=3,
            exit_code=1,
            reason="r",
            status_reason="sr",
            log_stream_name="def/default/t1",
            runtime_handle="pid:1",
        ),
        Attempt("t2", "ce1", placed_at=4),
    ),
    compute_environment="ce1",
    cancel_reason="c",
    terminate_reason="t",
    stop_cause=StopCause.TIMEOUT,
    is_cancelled=True,
    is_terminated=True,
    blocked_since=9,
)


def test_insert_and_get_keep_every_field(store: AnyStore) -> None:
    [stored] = store.insert_jobs([RICH])
    expected = replace(RICH, seq=1, run_order=1, version=1)
    assert stored == expected
    assert store.get_job("rich") == expected
    assert store.get_job("missing") is None


def test_insert_assigns_seq_run_order_version_and_flags(store: AnyStore) -> None:
    first = store.insert_jobs([job("a"), job("b")])
    second = store.insert_jobs([job("c", run_order=99, version=42)])
    assert [(j.job_id, j.seq, j.run_order, j.version) for j in first + second] == [
        ("a", 1, 1, 1),
        ("b", 2, 2, 1),
        ("c", 3, 3, 1),
    ]
    assert all(j.array_status_summary is None for j in first + second)
    assert flagged_ids(store) == ["a", "b", "c"]
    assert store.insert_jobs([]) == []


def test_insert_duplicate_id_is_a_conflict_and_stores_nothing(store: AnyStore) -> None:
    store.insert_jobs([job("a")])
    with pytest.raises(ConflictError):
        store.insert_jobs([job("b"), job("a")])
    with pytest.raises(ConflictError):
        store.insert_jobs([job("c"), job("c")])
    assert store.get_jobs(["a", "b", "c"]) == [store.get_job("a")]
    [later] = store.insert_jobs([job("d")])
    assert later.seq == 2  # a failed insert leaves no gap behind it


def test_get_jobs_keeps_order_and_drops_unknown(store: AnyStore) -> None:
    store.insert_jobs([job(f"j{i}") for i in range(150)])
    wanted = [f"j{i}" for i in range(149, -1, -3)] + ["nope"]
    found = store.get_jobs(iter(wanted))
    assert [j.job_id for j in found] == [w for w in wanted if w != "nope"]
    hundred = [f"j{i}" for i in random.Random(7).sample(range(150), 100)]
    assert [j.job_id for j in store.get_jobs(hundred)] == hundred
    assert store.get_jobs([]) == []


def test_array_parent_counts_children_of_the_same_and_later_calls(store: AnyStore) -> None:
    parent, *children = array("p", 4)
    stored = store.insert_jobs([parent, *children[:3]])
    assert stored[0].array_status_summary == {
        "SUBMITTED": 3,
        "PENDING": 0,
        "RUNNABLE": 0,
        "STARTING": 0,
        "RUNNING": 0,
        "SUCCEEDED": 0,
        "FAILED": 0,
    }
    assert stored[1].array_status_summary is None
    evaluate_all(store)
    version = store.get_job("p").version  # type: ignore[union-attr]

    store.insert_jobs([replace(children[3], status=S.PENDING)])
    now = store.get_job("p")
    assert now is not None
    assert now.array_status_summary == summary(SUBMITTED=3, PENDING=1)
    assert now.version == version + 1
    assert flagged_ids(store) == ["p", "p:3"]


def test_empty_array_parent_has_all_seven_zero_counts(store: AnyStore) -> None:
    [parent] = store.insert_jobs([job("p", array_size=2)])
    assert parent.array_status_summary == summary()
    assert store.get_job("p") == parent


# -- jobs: mutate ----------------------------------------------------------------------------


def test_mutate_job(store: AnyStore) -> None:
    store.insert_jobs([job("a"), job("b")])
    evaluate_all(store)
    changed = store.mutate_job("a", set_status(S.PENDING, status_reason="why"))
    assert changed is not None
    assert (changed.status, changed.status_reason, changed.version, changed.seq) == (
        S.PENDING,
        "why",
        2,
        1,
    )
    assert store.get_job("a") == changed
    assert flagged_ids(store) == ["a"]

    unchanged = store.mutate_job("b", lambda current: None)
    assert unchanged == store.get_job("b")
    assert unchanged is not None
    assert unchanged.version == 1
    assert flagged_ids(store) == ["a"]
    assert store.mutate_job("missing", set_status(S.FAILED)) is None


def test_mutate_child_updates_parent_counts(store: AnyStore) -> None:
    store.insert_jobs(array("p", 3))
    evaluate_all(store)
    store.mutate_job("p:1", set_status(S.RUNNABLE))
    parent = store.get_job("p")
    assert parent is not None
    assert parent.array_status_summary == summary(SUBMITTED=2, RUNNABLE=1)
    assert parent.version == 2
    assert flagged_ids(store) == ["p", "p:1"]

    store.mutate_job("p:1", set_status(S.RUNNABLE, status_reason="same status"))
    assert store.get_job("p") == parent  # no status change: the parent is left alone


def test_mutate_array_children(store: AnyStore) -> None:
    store.insert_jobs(array("p", 5) + array("other", 2))
    evaluate_all(store)

    def cancel_odd(child: Job) -> Job | None:
        if child.array_index is not None and child.array_index % 2:
            return replace(child, status=S.FAILED, is_cancelled=True, stopped_at=10)
        return None

    assert store.mutate_array_children("p", cancel_odd) == 2
    parent = store.get_job("p")
    assert parent is not None
    assert parent.array_status_summary == summary(SUBMITTED=3, FAILED=2)
    assert parent.version == 2  # one bump for the whole batch
    assert flagged_ids(store) == ["p", "p:1", "p:3"]
    assert [j.version for j in store.get_jobs(["p:0", "p:1", "p:3"])] == [1, 2, 2]
    assert store.mutate_array_children("missing", cancel_odd) == 0
    assert store.mutate_array_children("other", lambda child: None) == 0


def test_mutate_jobs_applies_each_mutation_in_one_write(store: AnyStore) -> None:
    store.insert_jobs([*array("p", 3), job("a"), job("b"), job("waiter", wait_for=("a",))])
    evaluate_all(store)
    seen: list[int] = []
    store.on_change(lambda: seen.append(store.change_counter()))
    before = store.change_counter()

    def add_attempt(current: Job) -> Job:
        return replace(current, attempts=(*current.attempts, Attempt("t1", "ce1", placed_at=1)))

    changed = store.mutate_jobs(
        [
            ("p:0", set_status(S.RUNNING)),
            ("a", add_attempt),
            ("missing", set_status(S.FAILED)),  # unknown: skipped
            ("b", lambda current: None),  # no change: not stored, not flagged
            ("p:1", set_status(S.RUNNING)),
            ("a", set_status(S.FAILED, stopped_at=7)),  # applies to the result of add_attempt
        ]
    )
    assert changed == 3
    assert len(seen) == 1  # one write, one notification
    assert store.change_counter() > before
    a = store.get_job("a")
    assert a is not None
    assert (a.status, a.stopped_at, a.version) == (S.FAILED, 7, 2)  # one new version
    assert [attempt.task_id for attempt in a.attempts] == ["t1"]
    b = store.get_job("b")
    assert b is not None
    assert b.version == 1
    parent = store.get_job("p")
    assert parent is not None
    assert parent.array_status_summary == summary(SUBMITTED=1, RUNNING=2)
    assert parent.version == 2  # one bump for the whole batch
    assert flagged_ids(store) == ["p", "p:0", "p:1", "a", "waiter"]  # waiter: a ended
    assert store.mutate_jobs([]) == 0
    assert store.mutate_jobs([("b", lambda current: None), ("gone", set_status(S.FAILED))]) == 0
    assert len(seen) == 1


def test_mutate_jobs_is_all_or_nothing(store: AnyStore) -> None:
    store.insert_jobs([job("a"), job("b")])
    with pytest.raises(ValueError, match="job_id"):
        store.mutate_jobs(
            [
                ("a", set_status(S.PENDING)),
                ("b", lambda current: replace(current, job_id="renamed")),
            ]
        )
    assert [(j.status, j.version) for j in store.get_jobs(["a", "b"])] == [
        (S.SUBMITTED, 1),
        (S.SUBMITTED, 1),
    ]
    assert store.get_job("renamed") is None


# -- commit ----------------------------------------------------------------------------------


def test_commit_applies_only_matching_versions(store: AnyStore) -> None:
    a, b = store.insert_jobs([job("a"), job("b")])
    store.mutate_job("b", set_status(S.PENDING))  # b is now at version 2
    plan = Plan(
        updates=(
            replace(a, status=S.RUNNABLE),
            replace(b, status=S.RUNNABLE),  # read at version 1: stale
            replace(job("ghost"), version=1),
        )
    )
    assert store.commit(plan) == {"a"}
    stored_a = store.get_job("a")
    assert stored_a is not None
    assert (stored_a.status, stored_a.version) == (S.RUNNABLE, 2)
    stored_b = store.get_job("b")
    assert stored_b is not None
    assert (stored_b.status, stored_b.version) == (S.PENDING, 2)
    assert store.get_job("ghost") is None
    assert flagged_ids(store) == ["b"]  # applied updates clear the flag


def test_commit_same_job_twice_applies_the_first(store: AnyStore) -> None:
    [a] = store.insert_jobs([job("a")])
    plan = Plan(updates=(replace(a, status=S.PENDING), replace(a, status=S.FAILED)))
    assert store.commit(plan) == {"a"}
    stored = store.get_job("a")
    assert stored is not None
    assert (stored.status, stored.version) == (S.PENDING, 2)


def test_commit_evaluated_clears_flag_only_on_matching_version(store: AnyStore) -> None:
    a, b, _ = store.insert_jobs([job("a"), job("b"), job("c")])
    store.mutate_job("b", set_status(S.PENDING))
    plan = Plan(evaluated=(("a", a.version), ("b", b.version), ("missing", 1)))
    assert store.commit(plan) == set()
    assert flagged_ids(store) == ["b", "c"]
    assert store.get_job("a") == a  # clearing a flag is not a new version


def test_commit_bumps_parent_and_flags_dependents(store: AnyStore) -> None:
    store.insert_jobs(
        [
            *array("p", 2),
            job("after-child", wait_for=("p:0",)),
            job("after-parent", wait_for=("p",)),
            job("unrelated"),
        ]
    )
    store.commit(Plan(updates=tuple(replace(j, status=S.RUNNABLE) for j in _all(store))))
    evaluate_all(store)
    child = store.get_job("p:0")
    assert child is not None
    plan = Plan(
        updates=(replace(child, status=S.SUCCEEDED, stopped_at=50),),
        evaluated=tuple((j.job_id, j.version) for j in _all(store)),
    )
    assert store.commit(plan) == {"p:0"}
    parent = store.get_job("p")
    assert parent is not None
    assert parent.array_status_summary == summary(RUNNABLE=1, SUCCEEDED=1)
    # The dependent was marked evaluated in the same plan, yet its dependency just ended.
    assert flagged_ids(store) == ["p", "after-child"]
    dependent = store.get_job("after-child")
    assert dependent is not None
    assert dependent.version == 3


def test_commit_parent_and_child_together_leaves_parent_flagged(store: AnyStore) -> None:
    parent, child = store.insert_jobs(array("p", 1))
    plan = Plan(updates=(replace(child, status=S.RUNNABLE), replace(parent, status=S.PENDING)))
    assert store.commit(plan) == {"p", "p:0"}
    stored = store.get_job("p")
    assert stored is not None
    assert stored.status is S.PENDING
    assert stored.version == 3  # the plan's write, then the child's count change
    assert stored.array_status_summary == summary(RUNNABLE=1)
    assert flagged_ids(store) == ["p"]


def test_dependents_are_flagged_on_any_terminal_write_path(store: AnyStore) -> None:
    store.insert_jobs([job("dep"), job("waiter", wait_for=("dep", "dep"))])
    evaluate_all(store)
    store.mutate_job("dep", set_status(S.FAILED, stopped_at=1))
    assert flagged_ids(store) == ["dep", "waiter"]
    evaluate_all(store)
    store.mutate_job("dep", set_status(S.FAILED, status_reason="still failed"))
    assert flagged_ids(store) == ["dep"]  # no status change, dependents left alone


def _all(store: AnyStore) -> list[Job]:
    jobs: list[Job] = []
    for top in store.list_jobs(JobQuery(job_queue="q1", limit=1000)):
        jobs.append(top)
        if top.is_array_parent:
            jobs.extend(store.list_jobs(JobQuery(array_job_id=top.job_id, limit=1000)))
    return jobs


# -- snapshot --------------------------------------------------------------------------------


def test_snapshot(store: AnyStore) -> None:
    store.put_compute_environment(compute_environment("ce-b"), create=True)
    store.put_compute_environment(compute_environment("ce-a"), create=True)
    store.put_job_queue(job_queue("q2"), create=True)
    store.put_job_queue(job_queue("q1"), create=True)
    store.put_scheduling_policy(scheduling_policy("fair"), create=True)
    store.insert_jobs(
        [
            job("r1", status=S.RUNNABLE),
            job("r2", status=S.RUNNABLE),
            job("r3", status=S.RUNNABLE),
            job("r4", status=S.RUNNABLE, job_queue="q2"),
            job("s1", status=S.STARTING),
            job("run1", status=S.RUNNING),
            job("done", status=S.SUCCEEDED),
            job("waiter", wait_for=("done", "s1", "unknown")),
            job("other-queue", status=S.RUNNABLE, job_queue="deleted-queue"),
        ]
    )
    evaluate_all(store)
    # A retry jumps ahead: run_order is what orders the RUNNABLE heads, then seq.
    store.mutate_job("r3", lambda j: replace(j, run_order=0))
    store.mutate_job("waiter", lambda j: replace(j, status_reason="look again"))

    snap = store.snapshot(SnapshotLimits(runnable_per_queue=2, to_evaluate=10))
    assert list(snap.compute_environments) == ["ce-a", "ce-b"]
    assert snap.compute_environments["ce-a"] == compute_environment("ce-a")
    assert [q.name for q in snap.job_queues] == ["q1", "q2"]
    assert snap.scheduling_policies == {scheduling_policy("fair").arn: scheduling_policy("fair")}
    assert [j.job_id for j in snap.active] == ["s1", "run1"]
    assert {name: [j.job_id for j in jobs] for name, jobs in snap.runnable.items()} == {
        "q1": ["r3", "r1"],
        "q2": ["r4"],
    }
    assert [j.job_id for j in snap.to_evaluate] == ["r3", "waiter"]
    assert snap.dependency_status == {"done": S.SUCCEEDED, "s1": S.STARTING}
    assert snap.host_limits == {}
    assert store.active_jobs() == list(snap.active)

    bounded = store.snapshot(SnapshotLimits(runnable_per_queue=1, to_evaluate=1))
    assert [j.job_id for j in bounded.runnable["q1"]] == ["r3"]
    assert [j.job_id for j in bounded.to_evaluate] == ["r3"]
    assert bounded.dependency_status == {}


def test_snapshot_to_evaluate_is_oldest_first(store: AnyStore) -> None:
    store.insert_jobs([job(f"j{i}") for i in range(6)])
    evaluate_all(store)
    for job_id in ("j4", "j1", "j5"):
        store.mutate_job(job_id, lambda j: replace(j, status_reason="x"))
    snap = store.snapshot(SnapshotLimits(to_evaluate=2))
    assert [j.job_id for j in snap.to_evaluate] == ["j1", "j4"]


# -- list_jobs ---------------------------------------------------------------------------------


def _listing_fixture(store: AnyStore) -> None:
    store.insert_jobs(
        [
            job("a", job_name="Alpha-1", created_at=100, status=S.RUNNABLE),
            job("b", job_name="alpha-2", created_at=200, share_identifier="blue"),
            *array("arr", 3, job_name="Arr", created_at=300),
            job(
                "c",
                job_name="beta",
                created_at=400,
                job_definition_name="other",
                job_definition_arn=DEF_ARN.format("other", 2),
                status=S.RUNNABLE,
                share_identifier="blue",
            ),
            job(
                "d", job_name="ALPHA-1", created_at=500, job_definition_arn=DEF_ARN.format("def", 2)
            ),
            job("elsewhere", job_queue="q2", created_at=600),
        ]
    )


def _ids(store: AnyStore, **query: Any) -> list[str]:
    return [j.job_id for j in store.list_jobs(JobQuery(**query))]


def test_list_jobs_of_a_queue_newest_first_top_level_only(store: AnyStore) -> None:
    _listing_fixture(store)
    assert _ids(store, job_queue="q1") == ["d", "c", "arr", "b", "a"]
    assert _ids(store, job_queue="q2") == ["elsewhere"]
    assert _ids(store, job_queue="nope") == []
    assert _ids(store, job_queue="q1", limit=2) == ["d", "c"]
    assert _ids(store, job_queue="q1", limit=0) == []


def test_list_jobs_keyset_pagination(store: AnyStore) -> None:
    store.insert_jobs(
        [job(f"j{i:02}", status=S.RUNNABLE if i % 3 else S.PENDING) for i in range(25)]
    )
    pages: list[list[str]] = []
    after = None
    while True:
        page = store.list_jobs(JobQuery(job_queue="q1", status=S.RUNNABLE, limit=4, after=after))
        if not page:
            break
        pages.append([j.job_id for j in page])
        after = page[-1].seq
    listed = [job_id for page in pages for job_id in page]
    assert listed == [f"j{i:02}" for i in range(24, -1, -1) if i % 3]
    assert all(len(page) == 4 for page in pages[:-1])


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"status": S.RUNNABLE}, ["c", "a"]),
        ({"job_name": "alpha-1"}, ["d", "a"]),
        ({"job_name_prefix": "ALPHA"}, ["d", "b", "a"]),
        ({"job_name_prefix": "alpha-2"}, ["b"]),
        ({"job_definition_name": "def"}, ["d", "arr", "b", "a"]),
        ({"job_definition_name": "DEF"}, []),
        ({"job_definition_name_prefix": "ot"}, ["c"]),
        ({"job_definition_arn": DEF_ARN.format("def", 2)}, ["d"]),
        ({"created_before": 300}, ["b", "a"]),
        ({"created_after": 300}, ["d", "c"]),
        ({"created_after": 100, "created_before": 500}, ["c", "arr", "b"]),
        ({"share_identifier": "blue"}, ["c", "b"]),
        ({"share_identifier": "blue", "status": S.SUBMITTED}, ["b"]),
        ({"job_name_prefix": "a", "created_after": 150, "limit": 2}, ["d", "arr"]),
        ({"job_name_prefix": "a", "after": 5}, ["arr", "b", "a"]),
    ],
)
def test_list_jobs_filters(store: AnyStore, query: dict[str, Any], expected: list[str]) -> None:
    _listing_fixture(store)
    assert _ids(store, job_queue="q1", **query) == expected


def test_list_array_children_by_index(store: AnyStore) -> None:
    store.insert_jobs(array("p", 12))
    store.mutate_job("p:4", set_status(S.RUNNABLE))
    store.mutate_job("p:9", set_status(S.RUNNABLE))
    assert _ids(store, array_job_id="p") == [f"p:{i}" for i in range(12)]
    assert _ids(store, array_job_id="p", after=3, limit=4) == ["p:4", "p:5", "p:6", "p:7"]
    assert _ids(store, array_job_id="p", status=S.RUNNABLE) == ["p:4", "p:9"]
    assert _ids(store, array_job_id="p", status=S.RUNNABLE, after=4) == ["p:9"]
    assert _ids(store, array_job_id="missing") == []
    assert _ids(store, multi_node_job_id="p") == []


@pytest.mark.parametrize(
    "selectors",
    [{}, {"job_queue": "q1", "array_job_id": "p"}, {"array_job_id": "p", "multi_node_job_id": "p"}],
)
def test_a_job_query_needs_exactly_one_selector(selectors: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JobQuery(**selectors)


# -- delete ----------------------------------------------------------------------------------


def test_delete_jobs_finished_before(store: AnyStore) -> None:
    store.insert_jobs(
        [
            job("old-ok", status=S.SUCCEEDED, stopped_at=100),
            job("old-failed", status=S.FAILED, stopped_at=50, wait_for=("old-ok",)),
            job("at-cutoff", status=S.SUCCEEDED, stopped_at=200),
            job("recent", status=S.FAILED, stopped_at=300),
            job("running", status=S.RUNNING, stopped_at=10),
            job("no-stop", status=S.SUCCEEDED),
        ]
    )
    removed = store.delete_jobs_finished_before(200)
    assert [j.job_id for j in removed] == ["old-failed", "old-ok"]
    assert [j.job_id for j in store.list_jobs(JobQuery(job_queue="q1"))] == [
        "no-stop",
        "running",
        "recent",
        "at-cutoff",
    ]
    assert "old-ok" not in flagged_ids(store)
    assert store.delete_jobs_finished_before(200) == []
    [new] = store.insert_jobs([job("new")])
    assert new.seq == 7  # seq is never reused


def test_deleted_job_is_no_longer_a_dependent(store: AnyStore) -> None:
    store.insert_jobs([job("dep"), job("gone", status=S.FAILED, stopped_at=1, wait_for=("dep",))])
    store.delete_jobs_finished_before(10)
    evaluate_all(store)
    store.mutate_job("dep", set_status(S.SUCCEEDED, stopped_at=20))
    assert flagged_ids(store) == ["dep"]
    assert store.get_job("gone") is None


# -- change notification and threads -----------------------------------------------------------


def test_change_counter_and_listeners(store: AnyStore) -> None:
    seen: list[tuple[int, list[str]]] = []

    def listener() -> None:
        # Called after the commit: another reader already sees the write.
        seen.append((store.change_counter(), [j.job_id for j in store.snapshot().to_evaluate]))

    store.on_change(listener)
    start = store.change_counter()
    [a] = store.insert_jobs([job("a")])
    assert seen == [(store.change_counter(), ["a"])]
    assert store.change_counter() > start

    before = store.change_counter()
    store.commit(Plan(evaluated=(("a", a.version),)))  # only clears a flag: no job write
    assert store.change_counter() == before
    assert len(seen) == 1

    store.commit(Plan(updates=(replace(a, status=S.PENDING),)))
    assert store.change_counter() > before
    assert len(seen) == 2
    store.mutate_job("a", set_status(S.RUNNABLE))
    assert len(seen) == 3
    assert seen[-1][1] == ["a"]
    store.mutate_job("a", lambda j: None)
    store.commit(Plan(updates=(a,)))  # stale: nothing applied
    assert len(seen) == 3
    # Resource writes wake listeners too (a new queue or capacity may allow a placement).
    store.put_job_queue(job_queue("q1"), create=True)
    store.delete_job_queue("missing")  # no-op: no write
    store.add_job_definition(definition_builder("def"))
    assert len(seen) == 5
    counters = [counter for counter, _ in seen]
    assert counters == sorted(set(counters))


def test_concurrent_writers_lose_no_update(store: AnyStore) -> None:
    store.insert_jobs([job("counter", tags={"n": "0"})])
    errors: list[BaseException] = []

    def increment(current: Job) -> Job:
        return replace(current, tags={"n": str(int(current.tags["n"]) + 1)})

    def writer() -> None:
        try:
            for _ in range(20):
                store.mutate_job("counter", increment)
                store.snapshot()
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert errors == []
    final = store.get_job("counter")
    assert final is not None
    assert final.tags == {"n": "80"}
    assert final.version == 81


# -- properties ----------------------------------------------------------------------------------

_statuses = st.sampled_from(ALL_JOB_STATUSES)
_steps = st.lists(
    st.tuples(
        st.sampled_from(["mutate", "commit", "stale-commit", "children"]),
        st.integers(min_value=0, max_value=5),
        _statuses,
    ),
    min_size=1,
    max_size=25,
)
_example = iter(range(1_000_000))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_steps)
def test_parent_summary_equals_a_recount_of_children(
    store: AnyStore, steps: list[tuple[str, int, JobStatus]]
) -> None:
    parent_id = f"p{next(_example)}"
    store.insert_jobs(array(parent_id, 6))
    for action, index, status in steps:
        child_id = f"{parent_id}:{index}"
        if action == "mutate":
            store.mutate_job(child_id, set_status(status))
        elif action in ("commit", "stale-commit"):
            child = store.get_job(child_id)
            assert child is not None
            stale = 1 if action == "stale-commit" else 0
            update = replace(child, status=status, version=child.version - stale)
            assert store.commit(Plan(updates=(update,))) == (set() if stale else {child_id})
        else:
            store.mutate_array_children(
                parent_id,
                lambda j, index=index, status=status: (
                    replace(j, status=status) if (j.array_index or 0) % 3 == index % 3 else None
                ),
            )
        parent = store.get_job(parent_id)
        assert parent is not None
        assert parent.array_status_summary == recount(store, parent_id)


@pytest.fixture
def store_pair(tmp_path: Path) -> Iterator[tuple[MemoryStore, SqlStore]]:
    memory, sql = MemoryStore(), SqlStore(f"sqlite:///{tmp_path / 'pair.db'}")
    yield memory, sql
    sql.close()


_pair_steps = st.lists(
    st.tuples(
        st.sampled_from(["mutate", "plan", "children", "delete"]),
        st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=4),
        _statuses,
        st.integers(min_value=0, max_value=2),
    ),
    min_size=1,
    max_size=15,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_pair_steps)
def test_memory_and_sql_stores_agree(
    store_pair: tuple[MemoryStore, SqlStore], steps: list[tuple[str, list[int], JobStatus, int]]
) -> None:
    memory, sql = store_pair
    n = next(_example)
    ids = [f"x{n}", f"x{n}:0", f"x{n}:1", f"x{n}:2", f"y{n}", f"z{n}", f"w{n}"]
    initial = [
        *array(f"x{n}", 3),
        job(f"y{n}", wait_for=(f"x{n}:0", f"z{n}")),
        job(f"z{n}", status=S.RUNNABLE),
        job(f"w{n}", wait_for=(f"x{n}",), status=S.PENDING),
    ]
    for store in (memory, sql):
        store.insert_jobs(initial)
    for action, picks, status, skew in steps:
        chosen = list(dict.fromkeys(ids[p] for p in picks))
        # A plan is built once, from the memory store: both must agree on versions.
        current = memory.get_jobs(chosen)
        plan = Plan(
            updates=tuple(
                replace(j, status=status, version=j.version - (skew == 1)) for j in current
            ),
            evaluated=tuple((j.job_id, j.version - (skew == 2)) for j in current),
        )
        for store in (memory, sql):
            if action == "mutate":
                store.mutate_job(chosen[0], set_status(status, stopped_at=skew))
            elif action == "children":
                store.mutate_array_children(
                    f"x{n}",
                    lambda j, status=status, skew=skew: (
                        replace(j, status=status) if j.array_index != skew else None
                    ),
                )
            elif action == "delete":
                store.delete_jobs_finished_before(skew)
            else:
                assert store.commit(plan) == {j.job_id for j in current if skew != 1}
        assert memory.get_jobs(ids) == sql.get_jobs(ids)
        assert flagged_ids(memory) == flagged_ids(sql)
        assert memory.snapshot() == sql.snapshot()


# -- SQL only: durability -------------------------------------------------------------------------


def test_reopen_keeps_everything(db_url: str) -> None:
    first = SqlStore(db_url)
    first.put_compute_environment(compute_environment("ce"), create=True)
    first.put_job_queue(job_queue("q1"), create=True)
    first.put_scheduling_policy(scheduling_policy("fair"), create=True)
    definition = first.add_job_definition(definition_builder("def"))
    stored = first.insert_jobs([RICH, *array("p", 2)])
    first.mutate_job("p:0", set_status(S.RUNNABLE))
    first.delete_jobs_finished_before(0)
    jobs_before = first.get_jobs(["rich", "p", "p:0", "p:1"])
    snapshot_before = first.snapshot()
    counter = first.change_counter()
    first.close()

    second = SqlStore(db_url)
    assert second.get_compute_environment("ce") == compute_environment("ce")
    assert second.get_job_queue("q1") == job_queue("q1")
    assert second.get_scheduling_policy("fair") == scheduling_policy("fair")
    assert second.get_job_definition("def", 1) == definition
    assert second.get_jobs(["rich", "p", "p:0", "p:1"]) == jobs_before
    assert second.get_job("rich") == stored[0]
    assert second.snapshot() == snapshot_before
    assert second.change_counter() == counter
    [later] = second.insert_jobs([job("later")])
    assert later.seq == 5
    assert second.add_job_definition(definition_builder("def")).revision == 2
    second.close()


def test_data_survives_kill_9(db_url: str, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from batchyard.domain.model import Job, JobStatus
        from batchyard.store.sql import SqlStore

        store = SqlStore({db_url!r})
        store.insert_jobs([
            Job(job_id=f"k{{i}}", job_name="k", job_queue="q1", job_definition_arn="arn",
                job_definition_name="d", status=JobStatus.SUBMITTED, created_at=1, seq=0)
            for i in range(50)
        ])
        print("ok", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout == "ok\n", done.stderr
    assert done.returncode == -signal.SIGKILL
    # The writes sit in the WAL (no clean close checkpointed them) and must be recovered.
    assert (tmp_path / "batchyard.db-wal").stat().st_size > 0
    reopened = SqlStore(db_url)
    found = reopened.get_jobs([f"k{i}" for i in range(50)])
    assert [j.seq for j in found] == list(range(1, 51))
    reopened.close()


# -- SQL only: foreign files --------------------------------------------------------------------


def _assert_refused(path: Path) -> None:
    before = path.read_bytes()
    siblings = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(StoreError) as raised:
        SqlStore(f"sqlite:///{path}")
    assert str(path) in str(raised.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == siblings


def test_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(random.Random(1234).randbytes(8192))
    _assert_refused(path)


def test_refuses_a_text_file_shorter_than_a_header(tmp_path: Path) -> None:
    path = tmp_path / "short.db"
    path.write_bytes(b"hello")
    _assert_refused(path)


def test_refuses_a_sqlite_database_of_another_application(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("INSERT INTO customers (name) VALUES ('ada')")
    connection.commit()
    connection.close()
    _assert_refused(path)


def test_refuses_a_sqlite_database_with_a_foreign_marker(tmp_path: Path) -> None:
    path = tmp_path / "marker.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE batchyard_meta (key TEXT PRIMARY KEY, value TEXT)")
    connection.execute("INSERT INTO batchyard_meta VALUES ('schema', 'someone-else')")
    connection.commit()
    connection.close()
    _assert_refused(path)


def test_refuses_a_directory_and_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=str(tmp_path)):
        SqlStore(f"sqlite:///{tmp_path}")
    missing = tmp_path / "nope" / "b.db"
    with pytest.raises(StoreError, match=str(missing)):
        SqlStore(f"sqlite:///{missing}")
    assert not missing.parent.exists()


def test_refuses_a_database_from_a_newer_batchyard(db_url: str, tmp_path: Path) -> None:
    SqlStore(db_url).close()
    path = tmp_path / "batchyard.db"
    connection = sqlite3.connect(path)
    connection.execute("UPDATE alembic_version SET version_num = 'from-the-future'")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match=str(path)):
        SqlStore(db_url)


def test_an_empty_file_becomes_a_batchyard_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    store = SqlStore(f"sqlite:///{path}")
    store.insert_jobs([job("a")])
    store.close()
    reopened = SqlStore(f"sqlite:///{path}")
    assert reopened.get_job("a") is not None
    reopened.close()


# -- SQL only: bounded queries ---------------------------------------------------------------------


def test_queries_use_indexes(db_url: str) -> None:
    store = SqlStore(db_url)
    store.put_job_queue(job_queue("q1"), create=True)
    store.insert_jobs(array("p", 50) + [job(f"r{i}", status=S.RUNNABLE) for i in range(50)])
    statements: list[tuple[str, Any]] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM jobs" in statement:
            statements.append((statement, parameters))

    store.snapshot()
    store.list_jobs(JobQuery(job_queue="q1", status=S.RUNNABLE, limit=10, after=40))
    store.list_jobs(JobQuery(job_queue="q1", limit=10))
    store.list_jobs(JobQuery(job_queue="q1", share_identifier="x", limit=10))
    store.list_jobs(JobQuery(array_job_id="p", after=10, limit=10))
    store.get_jobs([f"r{i}" for i in range(20)])
    store.delete_jobs_finished_before(5)
    sa.event.remove(store.engine, "before_cursor_execute", capture)
    assert len(statements) >= 9

    with store.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        for statement, parameters in statements:
            plan = [row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            scans = [step for step in plan if step.startswith("SCAN jobs")]
            assert scans == [], (statement, plan)
            if "LIMIT" in statement:
                assert not any("TEMP B-TREE" in step for step in plan), (statement, plan)
    store.close()
