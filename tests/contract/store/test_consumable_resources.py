"""The store contract for consumable resources: the codec, CRUD, listing jobs by resource, and
in-use accounting on every job write. For MemoryStore and SqlStore alike."""

from __future__ import annotations

from dataclasses import replace

import pytest

from batchyard.domain.model import (
    ConsumableResource,
    JobStatus,
)
from batchyard.scheduling.snapshot import Plan
from batchyard.store import codec
from batchyard.store.base import ConsumableJobQuery
from batchyard.store.sql import SqlStore
from tests.builders import (
    a_complete_consumable_resource,
    a_complete_queue,
    a_submitted_array,
    a_submitted_job,
)
from tests.contract.store.steps import (
    AnyStore,
    evaluate_all,
    held,
    listed_by_resource,
    needs,
    place,
    placed,
    set_status,
)

S = JobStatus


# -- codec -----------------------------------------------------------------------------------------


def test_job_consumable_resources_round_trip(store: AnyStore) -> None:
    submitted = a_submitted_job(
        "a", consumable_resources=needs(lic=2, gpu_slot=1), scheduling_priority=0
    )
    stored, plain = store.insert_jobs([submitted, a_submitted_job("plain")])
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
    original = a_complete_consumable_resource(
        "lic", 5, in_use_quantity=2, resource_type="NON_REPLENISHABLE"
    )
    text = codec.dumps(codec.consumable_resource_document(original))
    assert codec.consumable_resource_from_document(codec.loads(text)) == original


# -- consumable resources: CRUD --------------------------------------------------------------------


def test_consumable_resources_put_get_list_delete(store: AnyStore) -> None:
    assert store.get_consumable_resource("b") is None
    store.put_consumable_resource(a_complete_consumable_resource("b", 3), create=True)
    store.put_consumable_resource(a_complete_consumable_resource("a", 1), create=True)
    assert store.get_consumable_resource("b") == a_complete_consumable_resource("b", 3)
    assert store.list_consumable_resources() == [
        a_complete_consumable_resource("a", 1),
        a_complete_consumable_resource("b", 3),
    ]
    with pytest.raises(Exception, match="already exists"):
        store.put_consumable_resource(a_complete_consumable_resource("a", 9), create=True)
    assert store.get_consumable_resource("a") == a_complete_consumable_resource("a", 1)

    store.put_consumable_resource(
        a_complete_consumable_resource("a", 1, tags={"x": "y"}), create=False
    )
    assert store.get_consumable_resource("a") == a_complete_consumable_resource(
        "a", 1, tags={"x": "y"}
    )
    store.put_consumable_resource(
        a_complete_consumable_resource("c", 0), create=False
    )  # replace of a missing inserts
    assert store.get_consumable_resource("c") == a_complete_consumable_resource("c", 0)

    store.delete_consumable_resource("a")
    store.delete_consumable_resource("missing")
    assert [r.name for r in store.list_consumable_resources()] == ["b", "c"]
    assert store.snapshot().consumable_resources == {
        "b": a_complete_consumable_resource("b", 3),
        "c": a_complete_consumable_resource("c", 0),
    }


def test_put_and_mutate_keep_the_stores_in_use(store: AnyStore) -> None:
    store.put_consumable_resource(a_complete_consumable_resource("lic", 5), create=True)
    store.insert_jobs([a_submitted_job("a", status=S.RUNNABLE, consumable_resources=needs(lic=2))])
    assert place(store, "a") == {"a"}
    assert held(store, "lic") == (2, 5)

    seen: list[int] = []
    store.on_change(lambda: seen.append(1))
    # A replace (tags) and a mutation cannot set in_use: it is what jobs hold.
    store.put_consumable_resource(
        a_complete_consumable_resource("lic", 5, in_use_quantity=0, tags={}), create=False
    )
    assert held(store, "lic") == (2, 5)
    updated = store.mutate_consumable_resource(
        "lic", lambda r: replace(r, total_quantity=r.total_quantity + 3, in_use_quantity=99)
    )
    assert updated == a_complete_consumable_resource("lic", 8, in_use_quantity=2, tags={})
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
            a_submitted_job("a", status=S.RUNNING, consumable_resources=needs(lic=2, other=1)),
            a_submitted_job("b", status=S.STARTING, consumable_resources=needs(lic=1)),
            a_submitted_job("c", status=S.RUNNABLE, consumable_resources=needs(lic=4)),
        ]
    )
    store.put_consumable_resource(a_complete_consumable_resource("lic", 10), create=True)
    assert held(store, "lic") == (3, 10)
    store.mutate_job("a", set_status(S.SUCCEEDED, stopped_at=5))
    assert held(store, "lic") == (1, 10)


# -- consumable resources: listing jobs ------------------------------------------------------------


def test_list_jobs_by_consumable_resource(store: AnyStore) -> None:
    store.insert_jobs(
        [
            a_submitted_job("a", job_name="Render-1", consumable_resources=needs(lic=1)),
            a_submitted_job("b", job_name="render-2", consumable_resources=needs(lic=1, gpu=2)),
            a_submitted_job(
                "c", job_name="other", consumable_resources=needs(gpu=1), job_queue="q2"
            ),
            a_submitted_job(
                "d", job_name="RENDER-1", status=S.RUNNABLE, consumable_resources=needs(lic=3)
            ),
            *a_submitted_array("arr", 2, job_name="arr", consumable_resources=needs(lic=1)),
            a_submitted_job("none", job_name="render-3"),
        ]
    )
    assert listed_by_resource(store, resource="lic") == ["arr:1", "arr:0", "arr", "d", "b", "a"]
    assert listed_by_resource(store, resource="gpu") == ["c", "b"]
    assert listed_by_resource(store, resource="unknown") == []
    assert listed_by_resource(store, resource="lic", status=S.RUNNABLE) == ["d"]
    assert listed_by_resource(store, resource="lic", job_name="render-1") == ["d", "a"]
    assert listed_by_resource(store, resource="lic", job_name_prefix="REND") == ["d", "b", "a"]
    assert listed_by_resource(store, resource="lic", limit=0) == []

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
            a_submitted_job(
                "old", status=S.SUCCEEDED, stopped_at=10, consumable_resources=needs(lic=1)
            ),
            a_submitted_job(
                "new", status=S.SUCCEEDED, stopped_at=90, consumable_resources=needs(lic=1)
            ),
        ]
    )
    assert [j.job_id for j in store.delete_jobs_finished_before(50)] == ["old"]
    assert listed_by_resource(store, resource="lic") == ["new"]


# -- consumable resources: accounting --------------------------------------------------------------


def test_accounting_through_placement_end_and_retry(store: AnyStore) -> None:
    store.put_consumable_resource(a_complete_consumable_resource("lic", 5), create=True)
    store.put_consumable_resource(a_complete_consumable_resource("gpu", 2), create=True)
    store.insert_jobs(
        [
            a_submitted_job("a", status=S.RUNNABLE, consumable_resources=needs(lic=2, gpu=1)),
            a_submitted_job("b", status=S.RUNNABLE, consumable_resources=needs(lic=1, missing=4)),
            a_submitted_job("free", status=S.RUNNABLE),
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
    store.put_consumable_resource(a_complete_consumable_resource("lic", 10), create=True)
    store.insert_jobs(a_submitted_array("p", 3, consumable_resources=needs(lic=2)))
    store.insert_jobs(
        [a_submitted_job("direct", status=S.RUNNING, consumable_resources=needs(lic=1))]
    )
    assert held(store, "lic") == (1, 10)
    store.mutate_array_children("p", set_status(S.RUNNABLE))
    assert place(store, "p:0", "p:1") == {"p:0", "p:1"}
    assert held(store, "lic") == (5, 10)
    assert store.mutate_array_children("p", set_status(S.FAILED, stopped_at=30)) == 3
    assert held(store, "lic") == (1, 10)


def test_non_replenishable_leaves_the_total_when_the_job_ends(store: AnyStore) -> None:
    store.put_consumable_resource(
        a_complete_consumable_resource("token", 4, resource_type="NON_REPLENISHABLE"), create=True
    )
    store.insert_jobs(
        [
            a_submitted_job("a", status=S.RUNNABLE, consumable_resources=needs(token=3)),
            a_submitted_job("b", status=S.RUNNABLE, consumable_resources=needs(token=2)),
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
    store.put_job_queue(a_complete_queue("q1"), create=True)
    store.put_consumable_resource(a_complete_consumable_resource("lic", 3), create=True)
    store.insert_jobs(
        [
            a_submitted_job("a", status=S.RUNNABLE, consumable_resources=needs(lic=2)),
            a_submitted_job("b", status=S.RUNNABLE, consumable_resources=needs(lic=2)),
            a_submitted_job("c", status=S.RUNNABLE, consumable_resources=needs(lic=1)),
            a_submitted_job("d", status=S.RUNNABLE, consumable_resources=needs(lic=1)),
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
    store.put_consumable_resource(a_complete_consumable_resource("lic", 1), create=True)
    store.insert_jobs(
        [
            a_submitted_job("ghost", status=S.RUNNABLE, consumable_resources=needs(nothing=5)),
            a_submitted_job("a", status=S.RUNNABLE, consumable_resources=needs(lic=1)),
        ]
    )
    assert place(store, "ghost", "a") == {"ghost", "a"}
    store.mutate_consumable_resource("lic", lambda r: replace(r, total_quantity=0))
    a = store.get_job("a")
    assert a is not None
    # STARTING -> RUNNING takes nothing more: no guard, though nothing is available.
    assert store.commit(Plan(updates=(replace(a, status=S.RUNNING),))) == {"a"}
    assert held(store, "lic") == (1, 0)
