"""The store contract for ListJobs (filters, order, pages) and deleting finished jobs: MemoryStore
and SqlStore (a SQLite file) must behave the same."""

from __future__ import annotations

from typing import Any, TypedDict

import pytest

from batchyard.domain.model import (
    JobStatus,
)
from batchyard.store.base import JobQuery
from tests.builders import (
    a_submitted_array,
    a_submitted_job,
    arn,
)
from tests.contract.store.steps import (
    AnyStore,
    evaluate_all,
    flagged_ids,
    set_status,
)

S = JobStatus


# -- list_jobs ---------------------------------------------------------------------------------


def _listing_fixture(store: AnyStore) -> None:
    store.insert_jobs(
        [
            a_submitted_job("a", job_name="Alpha-1", created_at=100, status=S.RUNNABLE),
            a_submitted_job("b", job_name="alpha-2", created_at=200, share_identifier="blue"),
            *a_submitted_array("arr", 3, job_name="Arr", created_at=300),
            a_submitted_job(
                "c",
                job_name="beta",
                created_at=400,
                job_definition_name="other",
                job_definition_arn=arn("job-definition", "other:2"),
                status=S.RUNNABLE,
                share_identifier="blue",
            ),
            a_submitted_job(
                "d",
                job_name="ALPHA-1",
                created_at=500,
                job_definition_arn=arn("job-definition", "def:2"),
            ),
            a_submitted_job("elsewhere", job_queue="q2", created_at=600),
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
        [a_submitted_job(f"j{i:02}", status=S.RUNNABLE if i % 3 else S.PENDING) for i in range(25)]
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
        ({"job_definition_arn": arn("job-definition", "def:2")}, ["d"]),
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
    store.insert_jobs(a_submitted_array("p", 12))
    store.mutate_job("p:4", set_status(S.RUNNABLE))
    store.mutate_job("p:9", set_status(S.RUNNABLE))
    assert _ids(store, array_job_id="p") == [f"p:{i}" for i in range(12)]
    assert _ids(store, array_job_id="p", after=3, limit=4) == ["p:4", "p:5", "p:6", "p:7"]
    assert _ids(store, array_job_id="p", status=S.RUNNABLE) == ["p:4", "p:9"]
    assert _ids(store, array_job_id="p", status=S.RUNNABLE, after=4) == ["p:9"]
    assert _ids(store, array_job_id="missing") == []
    assert _ids(store, multi_node_job_id="p") == []


class _Selectors(TypedDict, total=False):
    job_queue: str
    array_job_id: str
    multi_node_job_id: str


@pytest.mark.parametrize(
    "selectors",
    [{}, {"job_queue": "q1", "array_job_id": "p"}, {"array_job_id": "p", "multi_node_job_id": "p"}],
)
def test_a_job_query_needs_exactly_one_selector(selectors: _Selectors) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        JobQuery(**selectors)


# -- delete ----------------------------------------------------------------------------------


def test_delete_jobs_finished_before(store: AnyStore) -> None:
    store.insert_jobs(
        [
            a_submitted_job("old-ok", status=S.SUCCEEDED, stopped_at=100),
            a_submitted_job("old-failed", status=S.FAILED, stopped_at=50, wait_for=("old-ok",)),
            a_submitted_job("at-cutoff", status=S.SUCCEEDED, stopped_at=200),
            a_submitted_job("recent", status=S.FAILED, stopped_at=300),
            a_submitted_job("running", status=S.RUNNING, stopped_at=10),
            a_submitted_job("no-stop", status=S.SUCCEEDED),
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
    [new] = store.insert_jobs([a_submitted_job("new")])
    assert new.seq == 7  # seq is never reused


def test_deleted_job_is_no_longer_a_dependent(store: AnyStore) -> None:
    store.insert_jobs(
        [
            a_submitted_job("dep"),
            a_submitted_job("gone", status=S.FAILED, stopped_at=1, wait_for=("dep",)),
        ]
    )
    store.delete_jobs_finished_before(10)
    evaluate_all(store)
    store.mutate_job("dep", set_status(S.SUCCEEDED, stopped_at=20))
    assert flagged_ids(store) == ["dep"]
    assert store.get_job("gone") is None
