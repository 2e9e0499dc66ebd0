"""The store contract under change notification and threads, and properties over random
sequences of writes: MemoryStore and SqlStore (a SQLite file) must behave the same."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from functools import partial
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchyard.domain.model import (
    ALL_JOB_STATUSES,
    Job,
    JobStatus,
)
from batchyard.scheduling.snapshot import Plan
from batchyard.store.memory import MemoryStore
from batchyard.store.sql import SqlStore
from tests.builders import (
    a_complete_queue,
    a_submitted_array,
    a_submitted_job,
    complete_revisions_of,
)
from tests.contract.store.steps import (
    AnyStore,
    flagged_ids,
    recount,
    set_status,
)

S = JobStatus


# -- change notification and threads -----------------------------------------------------------


def test_change_counter_and_listeners(store: AnyStore) -> None:
    seen: list[tuple[int, list[str]]] = []

    def listener() -> None:
        # Called after the commit: another reader already sees the write.
        seen.append((store.change_counter(), [j.job_id for j in store.snapshot().to_evaluate]))

    store.on_change(listener)
    start = store.change_counter()
    [a] = store.insert_jobs([a_submitted_job("a")])
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
    store.put_job_queue(a_complete_queue("q1"), create=True)
    store.delete_job_queue("missing")  # no-op: no write
    store.add_job_definition(complete_revisions_of("def"))
    assert len(seen) == 5
    counters = [counter for counter, _ in seen]
    assert counters == sorted(set(counters))


def test_concurrent_writers_lose_no_update(store: AnyStore) -> None:
    store.insert_jobs([a_submitted_job("counter", tags={"n": "0"})])
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


def _set_status_modulo_3(index: int, status: JobStatus, child: Job) -> Job | None:
    """A mutation for the children whose array index is index's class modulo 3."""
    return replace(child, status=status) if (child.array_index or 0) % 3 == index % 3 else None


def _set_status_but_index(index: int, status: JobStatus, child: Job) -> Job | None:
    """A mutation for every child but the one at array index `index`."""
    return replace(child, status=status) if child.array_index != index else None


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=_steps)
def test_parent_summary_equals_a_recount_of_children(
    store: AnyStore, steps: list[tuple[str, int, JobStatus]]
) -> None:
    parent_id = f"p{next(_example)}"
    store.insert_jobs(a_submitted_array(parent_id, 6))
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
            store.mutate_array_children(parent_id, partial(_set_status_modulo_3, index, status))
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
        *a_submitted_array(f"x{n}", 3),
        a_submitted_job(f"y{n}", wait_for=(f"x{n}:0", f"z{n}")),
        a_submitted_job(f"z{n}", status=S.RUNNABLE),
        a_submitted_job(f"w{n}", wait_for=(f"x{n}",), status=S.PENDING),
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
                store.mutate_array_children(f"x{n}", partial(_set_status_but_index, skew, status))
            elif action == "delete":
                store.delete_jobs_finished_before(skew)
            else:
                assert store.commit(plan) == {j.job_id for j in current if skew != 1}
        assert memory.get_jobs(ids) == sql.get_jobs(ids)
        assert flagged_ids(memory) == flagged_ids(sql)
        assert memory.snapshot() == sql.snapshot()
