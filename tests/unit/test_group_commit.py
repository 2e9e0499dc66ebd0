"""SubmitJob's group commit (api/group_commit.py) on both stores: the submissions of one
event-loop turn share a transaction, and one that cannot be stored fails alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from batchyard.api.group_commit import GroupCommit
from batchyard.domain.model import Job
from batchyard.store.base import ConflictError
from batchyard.store.memory import MemoryStore
from batchyard.store.sql import SqlStore
from tests.builders import a_submitted_array, a_submitted_job

AnyStore = MemoryStore | SqlStore


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[AnyStore]:
    opened: AnyStore = (
        MemoryStore()
        if request.param == "memory"
        else SqlStore(f"sqlite:///{tmp_path / 'batchyard.db'}")
    )
    yield opened
    opened.close()


def commits_of(store: AnyStore) -> list[int]:
    """Counts the store's committed writes (one call per transaction)."""
    calls: list[int] = []
    store.on_change(lambda: calls.append(1))
    return calls


def test_submissions_of_one_loop_turn_share_one_transaction(store: AnyStore) -> None:
    commits = commits_of(store)

    async def main() -> list[str]:
        group = GroupCommit(store)
        stored = await asyncio.gather(
            group.insert([a_submitted_job("a")]),
            group.insert(a_submitted_array("p", 3)),
            group.insert([a_submitted_job("b")]),
        )
        return [j.job_id for j in stored]

    assert asyncio.run(main()) == ["a", "p", "b"]
    assert len(commits) == 1
    assert [j.seq for j in store.get_jobs(["a", "p", "p:2", "b"])] == [1, 2, 5, 6]


def test_a_submission_that_cannot_be_stored_fails_alone(store: AnyStore) -> None:
    store.insert_jobs([a_submitted_job("taken")])

    async def main() -> Sequence[Job | BaseException]:
        group = GroupCommit(store)
        return await asyncio.gather(
            group.insert([a_submitted_job("x")]),
            group.insert([a_submitted_job("taken")]),
            group.insert([a_submitted_job("y")]),
            return_exceptions=True,
        )

    x, taken, y = asyncio.run(main())
    assert isinstance(taken, ConflictError)
    assert [getattr(x, "job_id", x), getattr(y, "job_id", y)] == ["x", "y"]
    assert [j.job_id for j in store.get_jobs(["x", "y"])] == ["x", "y"]


def test_turns_apart_are_transactions_apart(store: AnyStore) -> None:
    commits = commits_of(store)

    async def main() -> None:
        group = GroupCommit(store)
        await group.insert([a_submitted_job("first")])
        await group.insert([a_submitted_job("second")])

    asyncio.run(main())
    assert len(commits) == 2
