"""The store contract for fair share and consumable resources, for MemoryStore and SqlStore.

Consumable resources: CRUD, listing jobs by resource, in-use accounting on every job write, the
commit guard. Fair share: share usage rows, accruals, per-share RUNNABLE heads (the same in both
stores). SQL only at the end: the 0002 migration of an existing database, index use, statements
per snapshot.
"""

from __future__ import annotations

import contextlib
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchyard.domain.model import (
    Attempt,
    ConsumableRequirement,
    ConsumableResource,
    Job,
    JobStatus,
    ShareUsage,
)
from batchyard.scheduling import fairshare
from batchyard.scheduling.snapshot import Plan, Snapshot, UsageAccrual
from batchyard.store import codec
from batchyard.store.base import ConsumableJobQuery, JobQuery, SnapshotLimits
from batchyard.store.memory import MemoryStore
from batchyard.store.sql import SqlStore
from tests.contract.test_store import (
    array,
    evaluate_all,
    job,
    job_queue,
    scheduling_policy,
    set_status,
)

AnyStore = MemoryStore | SqlStore
S = JobStatus
FAIR_ARN = scheduling_policy("fair").arn
RES_ARN = "arn:aws:batch:us-east-1:000000000000:consumable-resource/{}"


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    opened: AnyStore
    if request.param == "memory":
        opened = MemoryStore()
    else:
        opened = SqlStore(f"sqlite:///{tmp_path / 'batchyard.db'}")
    yield opened
    opened.close()


def resource(name: str, total: int, **fields: Any) -> ConsumableResource:
    values: dict[str, Any] = {
        "arn": RES_ARN.format(name),
        "resource_type": "REPLENISHABLE",
        "tags": {"team": "a"},
        "created_at": 7,
    }
    values.update(fields)
    return ConsumableResource(name=name, total_quantity=total, **values)


def needs(**quantities: int) -> tuple[ConsumableRequirement, ...]:
    return tuple(ConsumableRequirement(name, q) for name, q in quantities.items())


def placed(current: Job, at: int = 10) -> Job:
    """The planner's placement of a RUNNABLE job: STARTING with a new attempt."""
    attempt = Attempt(f"{current.job_id}-{len(current.attempts)}", "ce", placed_at=at)
    return replace(
        current,
        status=S.STARTING,
        attempts=(*current.attempts, attempt),
        compute_environment="ce",
    )


def place(store: AnyStore, *job_ids: str) -> set[str]:
    updates = []
    for job_id in job_ids:
        current = store.get_job(job_id)
        assert current is not None
        updates.append(placed(current))
    return store.commit(Plan(updates=tuple(updates), starts=job_ids))


def held(store: AnyStore, name: str) -> tuple[int, int]:
    """(in_use, total) of a resource."""
    found = store.get_consumable_resource(name)
    assert found is not None
    return found.in_use_quantity, found.total_quantity


# -- codec -----------------------------------------------------------------------------------------


def test_job_consumable_resources_round_trip(store: AnyStore) -> None:
    submitted = job("a", consumable_resources=needs(lic=2, gpu_slot=1), scheduling_priority=0)
    stored, plain = store.insert_jobs([submitted, job("plain")])
    assert stored.consumable_resources == needs(lic=2, gpu_slot=1)
    assert "consumable_resources" not in codec.job_document(plain)
    # Read back decoded from the database, not from the SQL store's cache of written jobs.
    reader = SqlStore(f"sqlite:///{store.where}") if isinstance(store, SqlStore) else store
    try:
        assert reader.get_jobs(["a", "plain"]) == [stored, plain]
        read = reader.get_job("a")
        assert read is not None
        assert read.scheduling_priority == 0  # 0 is kept apart from absent
    finally:
        if reader is not store:
            reader.close()


def test_consumable_resource_document_round_trip() -> None:
    original = resource("lic", 5, in_use_quantity=2, resource_type="NON_REPLENISHABLE")
    text = codec.dumps(codec.consumable_resource_document(original))
    assert codec.consumable_resource_from_document(codec.loads(text)) == original


# -- consumable resources: CRUD --------------------------------------------------------------------


def test_consumable_resources_put_get_list_delete(store: AnyStore) -> None:
    assert store.get_consumable_resource("b") is None
    store.put_consumable_resource(resource("b", 3), create=True)
    store.put_consumable_resource(resource("a", 1), create=True)
    assert store.get_consumable_resource("b") == resource("b", 3)
    assert store.list_consumable_resources() == [resource("a", 1), resource("b", 3)]
    with pytest.raises(Exception, match="already exists"):
        store.put_consumable_resource(resource("a", 9), create=True)
    assert store.get_consumable_resource("a") == resource("a", 1)

    store.put_consumable_resource(resource("a", 1, tags={"x": "y"}), create=False)
    assert store.get_consumable_resource("a") == resource("a", 1, tags={"x": "y"})
    store.put_consumable_resource(resource("c", 0), create=False)  # replace of a missing inserts
    assert store.get_consumable_resource("c") == resource("c", 0)

    store.delete_consumable_resource("a")
    store.delete_consumable_resource("missing")
    assert [r.name for r in store.list_consumable_resources()] == ["b", "c"]
    assert store.snapshot().consumable_resources == {
        "b": resource("b", 3),
        "c": resource("c", 0),
    }


def test_put_and_mutate_keep_the_stores_in_use(store: AnyStore) -> None:
    store.put_consumable_resource(resource("lic", 5), create=True)
    store.insert_jobs([job("a", status=S.RUNNABLE, consumable_resources=needs(lic=2))])
    assert place(store, "a") == {"a"}
    assert held(store, "lic") == (2, 5)

    seen: list[int] = []
    store.on_change(lambda: seen.append(1))
    # A replace (tags) and a mutation cannot set in_use: it is what jobs hold.
    store.put_consumable_resource(resource("lic", 5, in_use_quantity=0, tags={}), create=False)
    assert held(store, "lic") == (2, 5)
    updated = store.mutate_consumable_resource(
        "lic", lambda r: replace(r, total_quantity=r.total_quantity + 3, in_use_quantity=99)
    )
    assert updated == resource("lic", 8, in_use_quantity=2, tags={})
    assert store.get_consumable_resource("lic") == updated
    assert len(seen) == 2
    assert store.mutate_consumable_resource("missing", lambda r: r) is None

    def refuse(current: ConsumableResource) -> ConsumableResource:
        raise ValueError("quantity below 0")

    with pytest.raises(ValueError, match="below 0"):
        store.mutate_consumable_resource("lic", refuse)
    assert store.get_consumable_resource("lic") == updated
    with pytest.raises(ValueError, match="rename"):
        store.mutate_consumable_resource("lic", lambda r: replace(r, name="other"))
    assert store.get_consumable_resource("other") is None
    assert len(seen) == 2


def test_a_created_resource_counts_what_running_jobs_already_hold(store: AnyStore) -> None:
    store.insert_jobs(
        [
            job("a", status=S.RUNNING, consumable_resources=needs(lic=2, other=1)),
            job("b", status=S.STARTING, consumable_resources=needs(lic=1)),
            job("c", status=S.RUNNABLE, consumable_resources=needs(lic=4)),
        ]
    )
    store.put_consumable_resource(resource("lic", 10), create=True)
    assert held(store, "lic") == (3, 10)
    store.mutate_job("a", set_status(S.SUCCEEDED, stopped_at=5))
    assert held(store, "lic") == (1, 10)


# -- consumable resources: listing jobs ------------------------------------------------------------


def _listed(store: AnyStore, **query: Any) -> list[str]:
    return [j.job_id for j in store.list_jobs_by_consumable_resource(ConsumableJobQuery(**query))]


def test_list_jobs_by_consumable_resource(store: AnyStore) -> None:
    store.insert_jobs(
        [
            job("a", job_name="Render-1", consumable_resources=needs(lic=1)),
            job("b", job_name="render-2", consumable_resources=needs(lic=1, gpu=2)),
            job("c", job_name="other", consumable_resources=needs(gpu=1), job_queue="q2"),
            job("d", job_name="RENDER-1", status=S.RUNNABLE, consumable_resources=needs(lic=3)),
            *array("arr", 2, job_name="arr", consumable_resources=needs(lic=1)),
            job("none", job_name="render-3"),
        ]
    )
    assert _listed(store, resource="lic") == ["arr:1", "arr:0", "arr", "d", "b", "a"]
    assert _listed(store, resource="gpu") == ["c", "b"]
    assert _listed(store, resource="unknown") == []
    assert _listed(store, resource="lic", status=S.RUNNABLE) == ["d"]
    assert _listed(store, resource="lic", job_name="render-1") == ["d", "a"]
    assert _listed(store, resource="lic", job_name_prefix="REND") == ["d", "b", "a"]
    assert _listed(store, resource="lic", limit=0) == []

    pages: list[list[str]] = []
    after = None
    while True:
        page = store.list_jobs_by_consumable_resource(
            ConsumableJobQuery(resource="lic", limit=4, after=after)
        )
        if not page:
            break
        pages.append([j.job_id for j in page])
        after = page[-1].seq
    assert pages == [["arr:1", "arr:0", "arr", "d"], ["b", "a"]]


def test_jobs_removed_by_retention_leave_the_listing(store: AnyStore) -> None:
    store.insert_jobs(
        [
            job("old", status=S.SUCCEEDED, stopped_at=10, consumable_resources=needs(lic=1)),
            job("new", status=S.SUCCEEDED, stopped_at=90, consumable_resources=needs(lic=1)),
        ]
    )
    assert [j.job_id for j in store.delete_jobs_finished_before(50)] == ["old"]
    assert _listed(store, resource="lic") == ["new"]


# -- consumable resources: accounting --------------------------------------------------------------


def test_accounting_through_placement_end_and_retry(store: AnyStore) -> None:
    store.put_consumable_resource(resource("lic", 5), create=True)
    store.put_consumable_resource(resource("gpu", 2), create=True)
    store.insert_jobs(
        [
            job("a", status=S.RUNNABLE, consumable_resources=needs(lic=2, gpu=1)),
            job("b", status=S.RUNNABLE, consumable_resources=needs(lic=1, missing=4)),
            job("free", status=S.RUNNABLE),
        ]
    )
    assert place(store, "a", "b", "free") == {"a", "b", "free"}
    assert (held(store, "lic"), held(store, "gpu")) == ((3, 5), (1, 2))
    snap = store.snapshot()
    assert snap.consumable_resources["lic"].available_quantity == 2

    store.mutate_job("a", set_status(S.RUNNING, started_at=11))  # still held
    assert held(store, "lic") == (3, 5)
    # A retry: back to RUNNABLE gives the quantities back.
    store.mutate_jobs([("a", set_status(S.RUNNABLE, stopped_at=None))])
    assert (held(store, "lic"), held(store, "gpu")) == ((1, 5), (0, 2))
    assert place(store, "a") == {"a"}
    assert (held(store, "lic"), held(store, "gpu")) == ((3, 5), (1, 2))
    # The planner's end (a commit) and a runtime's end (a mutation) both give back.
    a = store.get_job("a")
    assert a is not None
    assert store.commit(Plan(updates=(replace(a, status=S.FAILED, stopped_at=20),))) == {"a"}
    store.mutate_job("b", set_status(S.SUCCEEDED, stopped_at=21))
    assert (held(store, "lic"), held(store, "gpu")) == ((0, 5), (0, 2))


def test_accounting_of_array_children_and_inserted_active_jobs(store: AnyStore) -> None:
    store.put_consumable_resource(resource("lic", 10), create=True)
    store.insert_jobs(array("p", 3, consumable_resources=needs(lic=2)))
    store.insert_jobs([job("direct", status=S.RUNNING, consumable_resources=needs(lic=1))])
    assert held(store, "lic") == (1, 10)
    store.mutate_array_children("p", set_status(S.RUNNABLE))
    assert place(store, "p:0", "p:1") == {"p:0", "p:1"}
    assert held(store, "lic") == (5, 10)
    assert store.mutate_array_children("p", set_status(S.FAILED, stopped_at=30)) == 3
    assert held(store, "lic") == (1, 10)


def test_non_replenishable_leaves_the_total_when_the_job_ends(store: AnyStore) -> None:
    store.put_consumable_resource(
        resource("token", 4, resource_type="NON_REPLENISHABLE"), create=True
    )
    store.insert_jobs(
        [
            job("a", status=S.RUNNABLE, consumable_resources=needs(token=3)),
            job("b", status=S.RUNNABLE, consumable_resources=needs(token=2)),
        ]
    )
    assert place(store, "a") == {"a"}
    assert held(store, "token") == (3, 4)
    assert place(store, "b") == set()  # 1 available
    store.mutate_job("a", set_status(S.SUCCEEDED, stopped_at=5))
    assert held(store, "token") == (0, 1)  # consumed for good
    assert place(store, "b") == set()
    store.mutate_consumable_resource("token", lambda r: replace(r, total_quantity=2))
    assert place(store, "b") == {"b"}
    # The total can be set below what a running job holds; its end stops at 0.
    store.mutate_consumable_resource("token", lambda r: replace(r, total_quantity=1))
    store.mutate_job("b", set_status(S.FAILED, stopped_at=6))
    assert held(store, "token") == (0, 0)


def test_commit_guard_refuses_a_placement_that_would_over_allocate(store: AnyStore) -> None:
    store.put_job_queue(job_queue("q1"), create=True)
    store.put_consumable_resource(resource("lic", 3), create=True)
    store.insert_jobs(
        [
            job("a", status=S.RUNNABLE, consumable_resources=needs(lic=2)),
            job("b", status=S.RUNNABLE, consumable_resources=needs(lic=2)),
            job("c", status=S.RUNNABLE, consumable_resources=needs(lic=1)),
            job("d", status=S.RUNNABLE, consumable_resources=needs(lic=1)),
        ]
    )
    evaluate_all(store)
    b_before = store.get_job("b")
    # Counting the takes applied earlier in the same commit: b does not fit after a.
    assert place(store, "a", "b", "c") == {"a", "c"}
    assert held(store, "lic") == (3, 3)
    assert store.get_job("b") == b_before  # untouched, as if its version had changed
    assert [j.job_id for j in store.snapshot().runnable["q1"]] == ["b", "d"]
    # A take before a release in the same plan does not see the release; one after does.
    a, b, c, d = store.get_jobs(["a", "b", "c", "d"])
    assert store.commit(Plan(updates=(placed(d), replace(a, status=S.SUCCEEDED)))) == {"a"}
    assert held(store, "lic") == (1, 3)
    assert store.commit(Plan(updates=(replace(c, status=S.FAILED), placed(b)))) == {"c", "b"}
    assert held(store, "lic") == (2, 3)
    assert store.commit(Plan(updates=(placed(d),))) == {"d"}  # refused before: same version
    assert held(store, "lic") == (3, 3)


def test_guard_ignores_unknown_resources_and_jobs_already_holding(store: AnyStore) -> None:
    store.put_consumable_resource(resource("lic", 1), create=True)
    store.insert_jobs(
        [
            job("ghost", status=S.RUNNABLE, consumable_resources=needs(nothing=5)),
            job("a", status=S.RUNNABLE, consumable_resources=needs(lic=1)),
        ]
    )
    assert place(store, "ghost", "a") == {"ghost", "a"}
    store.mutate_consumable_resource("lic", lambda r: replace(r, total_quantity=0))
    a = store.get_job("a")
    assert a is not None
    # STARTING -> RUNNING takes nothing more: no guard, though nothing is available.
    assert store.commit(Plan(updates=(replace(a, status=S.RUNNING),))) == {"a"}
    assert held(store, "lic") == (1, 0)


# -- consumable resources: any interleaving --------------------------------------------------------

_QUANTITIES = (1, 2, 3)
_step = st.one_of(
    st.tuples(st.just("place"), st.lists(st.integers(0, 5), min_size=1, max_size=4)),
    st.tuples(st.just("start"), st.integers(0, 5)),
    st.tuples(st.just("end"), st.integers(0, 5)),
    st.tuples(st.just("retry"), st.integers(0, 5)),
    st.tuples(st.just("cancel-children"), st.integers(0, 2)),
    st.tuples(st.sampled_from(["SET", "ADD", "REMOVE"]), st.integers(0, 6)),
)
_example = iter(range(1_000_000))


def _update_total(operation: str, quantity: int) -> Any:
    """UpdateConsumableResource's SET / ADD / REMOVE, as the service would mutate."""

    def update(current: ConsumableResource) -> ConsumableResource:
        value = {
            "SET": quantity,
            "ADD": current.total_quantity + quantity,
            "REMOVE": current.total_quantity - quantity,
        }[operation]
        if value < 0:
            raise ValueError("below 0")
        return replace(current, total_quantity=value)

    return update


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(_step, min_size=1, max_size=30),
    kind=st.sampled_from(["REPLENISHABLE", "NON_REPLENISHABLE"]),
)
def test_in_use_matches_active_jobs_whatever_interleaves(
    store: AnyStore, steps: list[tuple[str, Any]], kind: str
) -> None:
    n = next(_example)
    name = f"r{n}"
    store.put_consumable_resource(resource(name, 4, resource_type=kind), create=True)
    ids = [f"j{n}-{i}" for i in range(3)] + [f"p{n}:{i}" for i in range(3)]
    quantity = {job_id: _QUANTITIES[i % 3] for i, job_id in enumerate(ids)}
    store.insert_jobs(
        [
            *(
                job(
                    job_id,
                    status=S.RUNNABLE,
                    consumable_resources=needs(**{name: quantity[job_id]}),
                )
                for job_id in ids[:3]
            ),
            job(f"p{n}", array_size=3, status=S.PENDING),
            *(
                job(
                    job_id,
                    status=S.RUNNABLE,
                    array_parent_id=f"p{n}",
                    array_index=i,
                    consumable_resources=needs(**{name: quantity[job_id]}),
                )
                for i, job_id in enumerate(ids[3:])
            ),
        ]
    )
    total = 4
    for action, arg in steps:
        before = store.get_consumable_resource(name)
        assert before is not None
        if action == "place":
            chosen = [ids[i] for i in dict.fromkeys(arg)]
            current = {j.job_id: j for j in store.get_jobs(chosen)}
            updates = tuple(placed(current[i]) for i in chosen if current[i].status is S.RUNNABLE)
            applied = store.commit(Plan(updates=updates))
            # The guard, replayed: each applied take fitted what was left at its turn.
            available = before.available_quantity
            for update in updates:
                if update.job_id in applied:
                    assert quantity[update.job_id] <= available
                    available -= quantity[update.job_id]
                else:
                    assert quantity[update.job_id] > available
        elif action == "start":
            store.mutate_job(
                ids[arg], lambda j: replace(j, status=S.RUNNING) if j.status is S.STARTING else None
            )
        elif action in ("end", "retry"):
            status = S.SUCCEEDED if action == "end" else S.RUNNABLE
            store.mutate_jobs(
                [
                    (
                        ids[arg],
                        lambda j, s=status: replace(j, status=s) if j.status.is_active else None,
                    )
                ]
            )
        elif action == "cancel-children":
            store.mutate_array_children(
                f"p{n}",
                lambda j, k=arg: (
                    replace(j, status=S.RUNNABLE)
                    if j.array_index == k and j.status.is_active
                    else None
                ),
            )
        else:
            with contextlib.suppress(ValueError):
                store.mutate_consumable_resource(name, _update_total(action, arg))
        after = store.get_consumable_resource(name)
        assert after is not None
        jobs = store.get_jobs(ids)
        holding = sum(quantity[j.job_id] for j in jobs if j.status.is_active)
        assert after.in_use_quantity == holding
        if action in ("SET", "ADD", "REMOVE"):
            total = after.total_quantity
        elif kind == "NON_REPLENISHABLE":
            released = before.in_use_quantity - after.in_use_quantity
            total = max(0, total - max(0, released))
        assert after.total_quantity == total


# -- fair share: share usage rows and accruals -----------------------------------------------------


def _fair_queues(store: AnyStore) -> None:
    store.put_scheduling_policy(scheduling_policy("fair"), create=True)
    store.put_job_queue(job_queue("fq", scheduling_policy_arn=FAIR_ARN), create=True)
    store.put_job_queue(job_queue("q1"), create=True)


def test_share_rows_are_created_at_insert(store: AnyStore) -> None:
    _fair_queues(store)
    store.insert_jobs(
        [
            job("a", job_queue="fq", share_identifier="blue", created_at=100),
            job("b", job_queue="fq", share_identifier="blue", created_at=50),
            job("c", job_queue="fq", share_identifier="red", created_at=300),
            job("other", job_queue="fq2", share_identifier="blue", created_at=400),
            job("fifo", created_at=500),
        ]
    )
    store.insert_jobs([job("d", job_queue="fq", share_identifier="red", created_at=900)])
    snap = store.snapshot()
    assert snap.share_usage == {
        "fq": {
            "blue": ShareUsage("fq", "blue", 0.0, 100),
            "red": ShareUsage("fq", "red", 0.0, 300),
        }
    }
    assert "q1" not in snap.share_usage


def test_share_identifiers_seen_and_active(store: AnyStore) -> None:
    _fair_queues(store)
    store.insert_jobs(
        [
            job("a", job_queue="fq", share_identifier="blue"),
            job("b", job_queue="fq", share_identifier="red", status=JobStatus.RUNNING),
            job("c", job_queue="fq", share_identifier="green", status=JobStatus.SUCCEEDED),
            job("d", job_queue="fq2", share_identifier="gold"),
            job("fifo"),
        ]
    )
    assert store.seen_share_count("fq") == 3
    assert store.active_share_identifiers("fq") == {"blue", "red"}
    store.mutate_job("a", lambda j: replace(j, status=JobStatus.FAILED, stopped_at=5))
    assert store.active_share_identifiers("fq") == {"red"}
    assert store.seen_share_count("fq") == 3
    assert store.active_share_identifiers("fq2") == {"gold"}
    assert store.seen_share_count("q1") == 0


def test_accruals_apply_only_with_their_jobs_update(store: AnyStore) -> None:
    _fair_queues(store)
    a, b = store.insert_jobs(
        [
            job("a", job_queue="fq", share_identifier="blue", status=S.RUNNING, created_at=0),
            job("b", job_queue="fq", share_identifier="blue", status=S.RUNNING, created_at=0),
        ]
    )
    store.mutate_job("b", lambda j: replace(j, status_reason="moved on"))  # b's read is stale
    window = 60_000
    plan = Plan(
        updates=(
            replace(a, status=S.SUCCEEDED, stopped_at=1_000),
            replace(b, status=S.SUCCEEDED, stopped_at=1_000),
        ),
        accruals=(
            UsageAccrual("a", "fq", "blue", 2.0, 1_000, window),
            UsageAccrual("b", "fq", "blue", 5.0, 1_000, window),
            UsageAccrual("a", "fq", "green", 0.5, 1_000, window),  # a share with no row yet
        ),
    )
    assert store.commit(plan) == {"a"}
    usage = store.snapshot().share_usage["fq"]
    assert usage["blue"] == ShareUsage("fq", "blue", 2.0, 1_000)
    assert usage["green"] == ShareUsage("fq", "green", 0.5, 1_000)

    later = store.get_job("b")
    assert later is not None
    plan = Plan(
        updates=(replace(later, status=S.SUCCEEDED, stopped_at=61_000),),
        accruals=(UsageAccrual("b", "fq", "blue", 1.0, 61_000, window),),
    )
    assert store.commit(plan) == {"b"}
    blue = store.snapshot().share_usage["fq"]["blue"]
    assert blue.at == 61_000
    assert blue.value == pytest.approx(2.0 / math.e + 1.0)
    assert blue.value == fairshare.decayed(2.0, 1_000, 61_000, window) + 1.0


def test_accrual_of_a_refused_placement_is_not_applied(store: AnyStore) -> None:
    _fair_queues(store)
    store.put_consumable_resource(resource("lic", 0), create=True)
    store.insert_jobs(
        [job("a", job_queue="fq", share_identifier="blue", status=S.RUNNABLE, created_at=0)]
    )
    store.mutate_job("a", lambda j: replace(j, consumable_resources=needs(lic=1)))
    current = store.get_job("a")
    assert current is not None
    plan = Plan(
        updates=(placed(current),),
        accruals=(UsageAccrual("a", "fq", "blue", 3.0, 5, 1_000),),
    )
    assert store.commit(plan) == set()
    assert store.snapshot().share_usage["fq"]["blue"] == ShareUsage("fq", "blue", 0.0, 0)


# -- fair share: heads per share -------------------------------------------------------------------


def test_runnable_by_share_order_and_bounds(store: AnyStore) -> None:
    _fair_queues(store)
    store.put_job_queue(job_queue("empty-fq", scheduling_policy_arn=FAIR_ARN), create=True)

    def fair(job_id: str, share: str, priority: int | None = None, **fields: Any) -> Job:
        return job(
            job_id,
            job_queue="fq",
            share_identifier=share,
            scheduling_priority=priority,
            status=fields.pop("status", S.RUNNABLE),
            **fields,
        )

    store.insert_jobs(
        [
            fair("b1", "blue"),
            fair("b2", "blue", 5),
            fair("b3", "blue", 0),
            fair("b4", "blue", 5),
            fair("b5", "blue", 9),
            fair("r1", "red", 1),
            fair("r2", "red", status=S.PENDING),
            fair("g1", "green", status=S.RUNNING),  # a share with no RUNNABLE job
            job("f1", status=S.RUNNABLE),
        ]
    )
    # A retry jumps ahead within its priority.
    store.mutate_job("b4", lambda j: replace(j, run_order=0))
    snap = store.snapshot(SnapshotLimits(runnable_per_queue=4))
    heads = {
        queue: {share: [j.job_id for j in jobs] for share, jobs in shares.items()}
        for queue, shares in snap.runnable_by_share.items()
    }
    assert heads == {
        "fq": {"blue": ["b5", "b4", "b2", "b1"], "red": ["r1"]},
        "empty-fq": {},
    }
    assert set(snap.runnable) == {"q1"}  # fair-share queues have no FIFO heads
    assert [j.job_id for j in snap.runnable["q1"]] == ["f1"]
    assert set(snap.share_usage["fq"]) == {"blue", "red", "green"}
    assert snap.share_usage["empty-fq"] == {}

    # A priority change and a status change move a job within and out of its share's heads.
    store.mutate_job("b1", lambda j: replace(j, scheduling_priority=10))
    store.mutate_job("b5", set_status(S.FAILED, stopped_at=1))
    store.mutate_job("r2", set_status(S.RUNNABLE))
    snap = store.snapshot(SnapshotLimits(runnable_per_queue=3))
    assert {s: [j.job_id for j in jobs] for s, jobs in snap.runnable_by_share["fq"].items()} == {
        "blue": ["b1", "b4", "b2"],
        "red": ["r1", "r2"],
    }
    assert snap.runnable_by_share["fq"]["blue"][0] == store.get_job("b1")


# -- both stores agree -----------------------------------------------------------------------------


def test_memory_and_sql_snapshots_agree(tmp_path: Path) -> None:
    memory, sql = MemoryStore(), SqlStore(f"sqlite:///{tmp_path / 'pair.db'}")
    try:
        for store in (memory, sql):
            _fair_queues(store)
            store.put_consumable_resource(resource("lic", 3), create=True)
            store.insert_jobs(
                [
                    job(
                        f"j{i}",
                        job_queue="fq",
                        share_identifier=f"s{i % 3}",
                        status=S.RUNNABLE,
                        scheduling_priority=i % 2 or None,
                        consumable_resources=needs(lic=1),
                        created_at=i,
                    )
                    for i in range(12)
                ]
            )
            place(store, "j0", "j1", "j2", "j3")
            store.mutate_job("j1", set_status(S.SUCCEEDED, stopped_at=40))
            j2 = store.get_job("j2")
            assert j2 is not None
            store.commit(
                Plan(
                    updates=(replace(j2, status=S.FAILED, stopped_at=50),),
                    accruals=(UsageAccrual("j2", "fq", "s2", 0.25, 50, 600_000),),
                )
            )
        assert memory.snapshot() == sql.snapshot()
        assert memory.list_consumable_resources() == sql.list_consumable_resources()
    finally:
        sql.close()


# Share names whose order differs between case, length and code point (SQL and Python must agree).
_SHARES = ("a", "B", "b", "a b", "ab", "10", "9", "\u00e9", "z" * 40)
_PRIORITIES = (None, 0, 1, 5, 9999)
_STATUSES = (S.RUNNABLE, S.RUNNABLE, S.RUNNABLE, S.PENDING, S.RUNNING, S.SUCCEEDED)
# A fair-share job: (queue 0/1, share among the example's, scheduling_priority, status).
_fair_job = st.tuples(
    st.integers(0, 1),
    st.integers(0, len(_SHARES) - 1),
    st.sampled_from(_PRIORITIES),
    st.sampled_from(_STATUSES),
)
# A later change of job i: its priority, a retry's run order (ahead of others), or its status.
_change = st.one_of(
    st.tuples(st.just("scheduling_priority"), st.integers(0), st.sampled_from(_PRIORITIES)),
    st.tuples(st.just("run_order"), st.integers(0), st.integers(0, 150)),
    st.tuples(st.just("status"), st.integers(0), st.sampled_from(_STATUSES)),
)


def _expected_heads(jobs: list[Job], queue: str, limit: int) -> list[tuple[str, list[str]]]:
    """The documented heads: per share seen, in share order, its first RUNNABLE jobs by
    schedulingPriority descending (absent = 0), then run order."""
    shares = sorted({j.share_identifier or "" for j in jobs if j.job_queue == queue})
    heads = []
    for share in shares:
        runnable = sorted(
            (
                j
                for j in jobs
                if j.job_queue == queue and j.share_identifier == share and j.status is S.RUNNABLE
            ),
            key=lambda j: (-(j.scheduling_priority or 0), j.run_order, j.seq),
        )
        if runnable:  # even when none is to be read (limit 0)
            heads.append((share, [j.job_id for j in runnable[:limit]]))
    return heads


def _heads(snap: Snapshot) -> dict[str, list[tuple[str, list[str]]]]:
    """runnable_by_share with its order made visible (dict equality ignores order)."""
    return {
        queue: [(share, [j.job_id for j in jobs]) for share, jobs in shares.items()]
        for queue, shares in snap.runnable_by_share.items()
    }


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    shares=st.lists(st.sampled_from(_SHARES), min_size=1, max_size=len(_SHARES), unique=True),
    jobs=st.lists(_fair_job, min_size=20, max_size=120),
    batches=st.integers(1, 3),
    changes=st.lists(_change, max_size=40),
    per_queue=st.integers(1, 5),
    read=st.dictionaries(st.sampled_from(["fa", "fb", "fifo"]), st.integers(0, 5), max_size=3),
)
def test_runnable_by_share_is_the_same_in_both_stores(
    tmp_path: Path,
    shares: list[str],
    jobs: list[tuple[int, int, int | None, JobStatus]],
    batches: int,
    changes: list[tuple[str, int, Any]],
    per_queue: int,
    read: dict[str, int],
) -> None:
    memory = MemoryStore()
    sql = SqlStore(f"sqlite:///{tmp_path / f'heads{next(_example)}.db'}")
    try:
        submitted = [
            job(
                f"j{i}",
                job_queue=("fa", "fb")[queue],
                share_identifier=shares[share % len(shares)],
                scheduling_priority=priority,
                status=status,
            )
            for i, (queue, share, priority, status) in enumerate(jobs)
        ]
        for store in (memory, sql):
            store.put_scheduling_policy(scheduling_policy("fair"), create=True)
            for name in ("fa", "fb", "idle"):
                store.put_job_queue(job_queue(name, scheduling_policy_arn=FAIR_ARN), create=True)
            store.put_job_queue(job_queue("fifo"), create=True)
            size = -(-len(submitted) // batches) or 1
            for start in range(0, len(submitted), size):
                store.insert_jobs(submitted[start : start + size])
            store.insert_jobs([job("f0", job_queue="fifo", status=S.RUNNABLE)])
            for field, index, value in changes:
                store.mutate_job(f"j{index % len(submitted)}", _set_field(field, value))
        limits = SnapshotLimits(runnable_per_queue=per_queue, runnable_read=read)
        from_memory, from_sql = memory.snapshot(limits), sql.snapshot(limits)
        assert _heads(from_sql) == _heads(from_memory)
        assert from_sql.runnable_by_share == from_memory.runnable_by_share  # the same jobs
        assert from_sql.share_usage == from_memory.share_usage
        stored = sql.get_jobs([f"j{i}" for i in range(len(submitted))])
        assert _heads(from_sql) == {
            queue: _expected_heads(stored, queue, limits.heads_of(queue))
            for queue in ("fa", "fb", "idle")
        }
    finally:
        sql.close()


def _set_field(name: str, value: Any) -> Any:
    def mutation(current: Job) -> Job:
        return replace(current, **{name: value})

    return mutation


# -- SQL only: the 0002 migration ------------------------------------------------------------------


def test_a_0001_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        config = Config()
        migrations = Path(codec.__file__).resolve().parent / "migrations"
        config.set_main_option("script_location", str(migrations))
        config.set_main_option("path_separator", "os")
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        columns = {c["name"] for c in sa.inspect(connection).get_columns("jobs")}
        assert "scheduling_priority" not in columns
        base = {
            "version": 1,
            "needs_eval": False,
            "job_queue": "fq",
            "status": "RUNNABLE",
            "job_name": "old",
            "job_name_lc": "old",
            "job_definition_name": "def",
            "job_definition_arn": "arn:def",
            "created_at": 100,
            "share_identifier": "blue",
        }
        rows = [
            {**base, "job_id": "low", "seq": 1, "run_order": 1, "doc": "{}"},
            {
                **base,
                "job_id": "high",
                "seq": 2,
                "run_order": 2,
                "doc": '{"scheduling_priority":7}',
            },
            {
                **base,
                "job_id": "done",
                "seq": 3,
                "run_order": 3,
                "status": "SUCCEEDED",
                "share_identifier": "red",
                "created_at": 50,
                "doc": "{}",
            },
        ]
        connection.execute(
            sa.text(
                "INSERT INTO jobs (job_id, seq, version, needs_eval, job_queue, status, "
                "run_order, job_name, job_name_lc, job_definition_name, job_definition_arn, "
                "created_at, share_identifier, doc) VALUES (:job_id, :seq, :version, "
                ":needs_eval, :job_queue, :status, :run_order, :job_name, :job_name_lc, "
                ":job_definition_name, :job_definition_arn, :created_at, :share_identifier, "
                ":doc)"
            ),
            rows,
        )
        connection.execute(sa.text("UPDATE counters SET value = 3 WHERE name = 'seq'"))
    engine.dispose()

    store = SqlStore(f"sqlite:///{path}")
    try:
        high = store.get_job("high")
        assert high is not None
        assert high.scheduling_priority == 7
        store.put_scheduling_policy(scheduling_policy("fair"), create=True)
        store.put_job_queue(job_queue("fq", scheduling_policy_arn=FAIR_ARN), create=True)
        snap = store.snapshot()
        assert {
            s: [j.job_id for j in jobs] for s, jobs in snap.runnable_by_share["fq"].items()
        } == {"blue": ["high", "low"]}
        assert snap.share_usage["fq"] == {
            "blue": ShareUsage("fq", "blue", 0.0, 100),
            "red": ShareUsage("fq", "red", 0.0, 50),
        }
        [new] = store.insert_jobs(
            [job("new", job_queue="fq", share_identifier="blue", consumable_resources=needs(x=1))]
        )
        assert new.seq == 4
        assert _listed(store, resource="x") == ["new"]
    finally:
        store.close()
    connection_ = sqlite3.connect(path)
    try:
        [(version,)] = connection_.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        connection_.close()
    assert version == "0002"


def test_reopen_keeps_resources_and_share_usage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    first = SqlStore(url)
    _fair_queues(first)
    first.put_consumable_resource(resource("lic", 3), create=True)
    first.insert_jobs(
        [
            job(
                "a",
                job_queue="fq",
                share_identifier="s",
                status=S.RUNNING,
                consumable_resources=needs(lic=2),
            )
        ]
    )
    before = first.snapshot()
    first.close()
    second = SqlStore(url)
    try:
        assert second.snapshot() == before
        assert held(second, "lic") == (2, 3)
    finally:
        second.close()


def test_share_heads_and_resource_listing_use_indexes(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'i.db'}")
    _fair_queues(store)
    store.insert_jobs(
        [
            job(
                f"j{i}",
                job_queue="fq",
                share_identifier=f"s{i % 4}",
                status=S.RUNNABLE,
                scheduling_priority=i % 3,
                consumable_resources=needs(lic=1),
            )
            for i in range(60)
        ]
    )
    statements: list[tuple[str, Any]] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "jobs" in statement:
            statements.append((statement, parameters))

    store.snapshot(SnapshotLimits(runnable_per_queue=5))
    store.list_jobs_by_consumable_resource(ConsumableJobQuery(resource="lic", limit=5, after=30))
    store.list_jobs_by_consumable_resource(
        ConsumableJobQuery(resource="lic", status=S.RUNNABLE, limit=5)
    )
    sa.event.remove(store.engine, "before_cursor_execute", capture)
    share_heads = []
    with store.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        for statement, parameters in statements:
            plan = [row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            assert not any(step.startswith("SCAN") for step in plan), (statement, plan)
            if "FROM share_usage JOIN jobs" in statement:
                share_heads.append(plan)
                # Each share's heads come from the index, then only they are sorted, one share
                # (one share_usage row) at a time.
                assert "CORRELATED LIST SUBQUERY 1" in plan, plan
                assert any("COVERING INDEX ix_jobs_runnable_share" in step for step in plan), plan
                sorts = [step for step in plan if "TEMP B-TREE" in step]
                assert sorts == ["USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"], plan
            elif "LIMIT" in statement:
                assert not any("TEMP B-TREE" in step for step in plan), (statement, plan)
    store.close()
    assert len(share_heads) == 1
    assert len(statements) >= 6


def test_snapshot_statements_do_not_grow_with_the_shares(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        _fair_queues(store)
        store.insert_jobs(
            [
                job(f"a{i}", job_queue="fq", share_identifier=f"s{i % 2}", status=S.RUNNABLE)
                for i in range(6)
            ]
        )
        statements: list[str] = []

        @sa.event.listens_for(store.engine, "before_cursor_execute")
        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        def snapshot() -> tuple[int, Snapshot]:
            # Counted on a warm store: no job to evaluate, every job already decoded (whole
            # rows of jobs not yet decoded are read in chunks, a count that grows with them).
            evaluate_all(store)
            store.snapshot()
            statements.clear()
            taken = store.snapshot(SnapshotLimits(runnable_per_queue=3))
            return len(statements), taken

        few, snap = snapshot()
        assert len(snap.runnable_by_share["fq"]) == 2
        # 200 shares more: half with RUNNABLE jobs, half whose jobs ended (their rows stay).
        store.insert_jobs(
            [
                job(
                    f"b{i}",
                    job_queue="fq",
                    share_identifier=f"t{i % 200:03d}",
                    status=S.RUNNABLE if i % 200 < 100 else S.SUCCEEDED,
                    scheduling_priority=i % 3,
                )
                for i in range(800)
            ]
        )
        many, snap = snapshot()
        assert len(snap.share_usage["fq"]) == 202
        heads = snap.runnable_by_share["fq"]
        assert len(heads) == 102
        assert [len(jobs) for jobs in heads.values()] == [3] * 102
        assert many == few > 0
    finally:
        store.close()


def test_list_jobs_still_work_with_fair_share_jobs(store: AnyStore) -> None:
    _fair_queues(store)
    store.insert_jobs([job("a", job_queue="fq", share_identifier="blue", scheduling_priority=3)])
    assert [j.job_id for j in store.list_jobs(JobQuery(job_queue="fq"))] == ["a"]


def test_changed_requirements_move_the_listing_and_what_is_held(store: AnyStore) -> None:
    store.put_consumable_resource(resource("lic", 5), create=True)
    store.put_consumable_resource(resource("gpu", 5), create=True)
    store.insert_jobs([job("a", status=S.RUNNING, consumable_resources=needs(lic=2))])
    store.mutate_job("a", lambda j: replace(j, consumable_resources=needs(gpu=3)))
    assert (held(store, "lic"), held(store, "gpu")) == ((0, 5), (3, 5))
    assert _listed(store, resource="lic") == []
    assert _listed(store, resource="gpu") == ["a"]
