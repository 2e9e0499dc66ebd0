"""The operation table (api/operations.py): how an entry's properties decide where and how the
edge runs its handler."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

from batchyard.api.operations import OPERATIONS, Operation
from batchyard.domain.model import Job
from batchyard.service.context import ServiceContext
from batchyard.store.memory import MemoryStore
from tests.builders import FixedClock, a_submitted_job


def _ctx() -> ServiceContext:
    return ServiceContext(store=MemoryStore(), clock=FixedClock())


def _thread_of_handler(ctx: ServiceContext, request: dict[str, Any]) -> dict[str, Any]:
    return {"thread": threading.get_ident()}


async def _not_stored(jobs: list[Job]) -> Job:
    raise AssertionError("only a group-committed operation stores through insert")


@pytest.mark.parametrize("runs_on", ["loop", "thread"])
def test_an_operation_runs_on_the_thread_its_entry_names(runs_on: Any) -> None:
    operation = Operation("Probe", "batch", _thread_of_handler, runs_on=runs_on)

    async def main() -> tuple[int, int]:
        result = await operation.invoke(_ctx(), {}, _not_stored)
        return result["thread"], threading.get_ident()

    handler_thread, loop_thread = asyncio.run(main())
    assert (handler_thread == loop_thread) is (runs_on == "loop")


def test_a_group_committed_operation_stores_through_the_edges_insert() -> None:
    ctx = _ctx()
    inserted: list[list[Job]] = []

    async def insert(jobs: list[Job]) -> Job:
        inserted.append(jobs)
        return jobs[0]

    async def handler(ctx: ServiceContext, request: dict[str, Any], insert: Any) -> dict[str, Any]:
        job = await insert([a_submitted_job(request["id"])])
        return {"jobId": job.job_id}

    operation = Operation("Probe", "batch", handler, commit="group")
    assert asyncio.run(operation.invoke(ctx, {"id": "j-1"}, insert)) == {"jobId": "j-1"}
    assert [[job.job_id for job in jobs] for jobs in inserted] == [["j-1"]]


def test_a_group_commit_off_the_loop_is_refused() -> None:
    with pytest.raises(ValueError, match="one turn of the event loop"):
        Operation("Probe", "batch", _thread_of_handler, runs_on="thread", commit="group")


def test_the_logs_operations_run_on_threads_and_submit_job_commits_in_groups() -> None:
    off_loop = {name for name, op in OPERATIONS.items() if op.runs_on == "thread"}
    assert off_loop == {name for name, op in OPERATIONS.items() if op.service == "logs"}
    grouped = {name for name, op in OPERATIONS.items() if op.commit == "group"}
    assert grouped == {"SubmitJob"}
