"""The store contract for jobs: insert and read back every field, mutate one job or an array's
children, dependents flagged for evaluation: MemoryStore and SqlStore (a SQLite file) must
behave the same."""

from __future__ import annotations

import random
from dataclasses import replace

import pytest

from batchyard.domain.model import (
    Attempt,
    Job,
    JobStatus,
)
from batchyard.store.base import ConflictError
from tests.builders import (
    a_complete_job,
    a_submitted_array,
    a_submitted_job,
)
from tests.contract.store.steps import (
    AnyStore,
    evaluate_all,
    flagged_ids,
    set_status,
    summary,
)

S = JobStatus


# -- jobs: insert and read -------------------------------------------------------------------


RICH = a_complete_job()


def test_insert_and_get_keep_every_field(store: AnyStore) -> None:
    [stored] = store.insert_jobs([RICH])
    expected = replace(RICH, seq=1, run_order=1, version=1)
    assert stored == expected
    assert store.get_job("rich") == expected
    assert store.get_job("missing") is None


def test_insert_assigns_seq_run_order_version_and_flags(store: AnyStore) -> None:
    first = store.insert_jobs([a_submitted_job("a"), a_submitted_job("b")])
    second = store.insert_jobs([a_submitted_job("c", run_order=99, version=42)])
    assert [(j.job_id, j.seq, j.run_order, j.version) for j in first + second] == [
        ("a", 1, 1, 1),
        ("b", 2, 2, 1),
        ("c", 3, 3, 1),
    ]
    assert all(j.array_status_summary is None for j in first + second)
    assert flagged_ids(store) == ["a", "b", "c"]
    assert store.insert_jobs([]) == []


def test_insert_duplicate_id_is_a_conflict_and_stores_nothing(store: AnyStore) -> None:
    store.insert_jobs([a_submitted_job("a")])
    with pytest.raises(ConflictError):
        store.insert_jobs([a_submitted_job("b"), a_submitted_job("a")])
    with pytest.raises(ConflictError):
        store.insert_jobs([a_submitted_job("c"), a_submitted_job("c")])
    assert store.get_jobs(["a", "b", "c"]) == [store.get_job("a")]
    [later] = store.insert_jobs([a_submitted_job("d")])
    assert later.seq == 2  # a failed insert leaves no gap behind it


def test_get_jobs_keeps_order_and_drops_unknown(store: AnyStore) -> None:
    store.insert_jobs([a_submitted_job(f"j{i}") for i in range(150)])
    wanted = [f"j{i}" for i in range(149, -1, -3)] + ["nope"]
    found = store.get_jobs(iter(wanted))
    assert [j.job_id for j in found] == [w for w in wanted if w != "nope"]
    hundred = [f"j{i}" for i in random.Random(7).sample(range(150), 100)]
    assert [j.job_id for j in store.get_jobs(hundred)] == hundred
    assert store.get_jobs([]) == []


def test_array_parent_counts_children_of_the_same_and_later_calls(store: AnyStore) -> None:
    parent, *children = a_submitted_array("p", 4)
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
    [parent] = store.insert_jobs([a_submitted_job("p", array_size=2)])
    assert parent.array_status_summary == summary()
    assert store.get_job("p") == parent


# -- jobs: mutate ----------------------------------------------------------------------------


def test_mutate_job(store: AnyStore) -> None:
    store.insert_jobs([a_submitted_job("a"), a_submitted_job("b")])
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
    store.insert_jobs(a_submitted_array("p", 3))
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
    store.insert_jobs(a_submitted_array("p", 5) + a_submitted_array("other", 2))
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
    store.insert_jobs(
        [
            *a_submitted_array("p", 3),
            a_submitted_job("a"),
            a_submitted_job("b"),
            a_submitted_job("waiter", wait_for=("a",)),
        ]
    )
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
    store.insert_jobs([a_submitted_job("a"), a_submitted_job("b")])
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
