"""The dispatcher on the memory store with the fake runtime, in virtual time.

Everything real but the clock and the processes: service functions submit, the dispatcher
snapshots, plans, commits and starts attempts on the fake runtime, whose exits fall due as the
virtual clock moves.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from batchyard.dispatcher import Dispatcher
from batchyard.domain.model import JobStatus, Resources
from batchyard.runtimes.fake import FakeRuntime
from batchyard.service import job_cancellation, job_queues
from tests.simulation import T0, World


def run(scenario: Callable[[World], Awaitable[None]], **world: Any) -> None:
    async def main() -> None:
        w = World(**world)
        try:
            await scenario(w)
        finally:
            await w.dispatcher.close()

    asyncio.run(main())


def test_job_runs_and_succeeds_in_virtual_time() -> None:
    async def scenario(w: World) -> None:
        await w.open()
        job_id = w.submit(w.define(["fake", "exit", "0", "after", "5000"]))
        await w.settle()
        job = w.job(job_id)
        assert job.status is JobStatus.RUNNING
        assert job.started_at == T0
        await w.advance(4999)
        assert w.job(job_id).status is JobStatus.RUNNING
        await w.advance(1)
        job = w.job(job_id)
        assert job.status is JobStatus.SUCCEEDED
        assert job.stopped_at == T0 + 5000
        assert job.status_reason == "Essential container in task exited"

    run(scenario)


def test_attempt_environment() -> None:
    async def scenario(w: World) -> None:
        await w.open()
        parent = w.submit(w.define(["fake", "exit", "0"]), array_properties={"size": 2})
        await w.settle()
        spec = next(s for s in w.runtime.started if s.job_id == f"{parent}:1")
        assert spec.environment["AWS_BATCH_JOB_ARRAY_INDEX"] == "1"
        assert spec.environment["AWS_BATCH_JOB_ARRAY_SIZE"] == "2"
        assert spec.environment["AWS_BATCH_JQ_NAME"] == "q"
        assert spec.environment["AWS_BATCH_CE_NAME"] == "ce"
        assert spec.environment["AWS_BATCH_JOB_ATTEMPT"] == "1"
        assert w.job(parent).status is JobStatus.SUCCEEDED

    run(scenario)


def test_timeout_stops_the_attempt_and_is_not_retried() -> None:
    async def scenario(w: World) -> None:
        await w.open()
        job_id = w.submit(
            w.define(["fake", "run-forever"]),
            timeout={"attemptDurationSeconds": 60},
            retry_strategy={"attempts": 3},
        )
        await w.settle()
        decided = await w.dispatcher.step()
        assert decided.next_wakeup == T0 + 60_000  # the loop sleeps exactly until the deadline
        await w.advance(59_999)
        assert w.runtime.stopped == []
        await w.advance(1)
        job = w.job(job_id)
        assert w.runtime.stopped == [job.attempts[0].task_id]
        assert job.status is JobStatus.FAILED
        assert job.status_reason == "Job attempt duration exceeded timeout"
        assert len(job.attempts) == 1

    run(scenario)


def test_retries_run_new_attempts() -> None:
    async def scenario(w: World) -> None:
        await w.open()
        job_id = w.submit(
            w.define(["fake", "exit", "1", "after", "1000"]), retry_strategy={"attempts": 3}
        )
        await w.settle()
        for _ in range(3):
            await w.advance(1000)
        job = w.job(job_id)
        assert job.status is JobStatus.FAILED
        assert [a.exit_code for a in job.attempts] == [1, 1, 1]
        assert [s.attempt_number for s in w.runtime.started] == [1, 2, 3]
        assert len({a.task_id for a in job.attempts}) == 3

    run(scenario)


def test_capacity_is_respected_over_time() -> None:
    async def scenario(w: World) -> None:
        await w.open()
        definition = w.define(["fake", "exit", "0", "after", "1000"])
        ids = [w.submit(definition) for _ in range(5)]
        await w.settle()
        peak = len(w.running())
        for _ in range(3):
            await w.advance(1000)
            peak = max(peak, len(w.running()))
        assert peak == 2
        assert all(w.job(i).status is JobStatus.SUCCEEDED for i in ids)
        starts = sorted(w.job(i).started_at or 0 for i in ids)
        assert starts == [T0, T0, T0 + 1000, T0 + 1000, T0 + 2000]

    run(scenario, max_vcpus=2)


def test_sequential_array_in_virtual_time() -> None:
    async def scenario(w: World) -> None:
        await w.open()
        parent = w.submit(
            w.define(["fake", "exit", "0", "after", "1000"]),
            array_properties={"size": 3},
            depends_on=[{"type": "SEQUENTIAL"}],
        )
        await w.settle()
        for _ in range(3):
            await w.advance(1000)
        assert [w.job(f"{parent}:{i}").started_at for i in range(3)] == [
            T0,
            T0 + 1000,
            T0 + 2000,
        ]
        assert w.job(parent).status is JobStatus.SUCCEEDED

    run(scenario)


def test_time_limit_action_cancels_a_job_that_can_never_fit() -> None:
    action = {
        "reason": "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE",
        "state": "RUNNABLE",
        "maxTimeSeconds": 600,
        "action": "CANCEL",
    }

    async def scenario(w: World) -> None:
        await w.open([action])
        too_big = w.submit(w.define(["fake", "exit", "0"], vcpus=8))
        behind = w.submit(w.define(["fake", "exit", "0"]))
        await w.settle()
        job = w.job(too_big)
        assert job.status is JobStatus.RUNNABLE
        assert job.status_reason is not None
        assert job.status_reason.startswith("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE")
        assert w.job(behind).status is JobStatus.RUNNABLE  # FIFO: blocked behind the head
        await w.advance(600_000)
        job = w.job(too_big)
        assert job.status is JobStatus.FAILED
        assert job.status_reason == (
            "Canceled by JobStateTimeLimit action due to reason: "
            "MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE"
        )
        assert w.job(behind).status is JobStatus.SUCCEEDED

    run(scenario, max_vcpus=2)


def test_restart_with_a_lost_attempt_lets_the_retry_strategy_decide() -> None:
    async def scenario(w: World) -> None:
        await w.open()
        job_id = w.submit(w.define(["fake", "run-forever"]), retry_strategy={"attempts": 2})
        await w.settle()
        assert w.job(job_id).status is JobStatus.RUNNING
        await w.dispatcher.close()

        # A new dispatcher and a runtime that never saw the attempt: the host is lost.
        w.runtime = FakeRuntime(w.clock, Resources(vcpus=64, memory_mib=65536, gpus=0))
        w.dispatcher = Dispatcher(w.store, {"process": w.runtime}, w.clock)
        await w.dispatcher.open()
        await w.settle()
        job = w.job(job_id)
        assert job.attempts[0].status_reason == "Host EC2 (instance batchyard) terminated."
        assert job.status is JobStatus.RUNNING
        assert len(job.attempts) == 2

    run(scenario)


@pytest.mark.parametrize("status", ["SUBMITTED", "RUNNABLE"])
def test_cancel_before_start(status: str) -> None:
    async def scenario(w: World) -> None:
        await w.open()
        blocker = w.submit(w.define(["fake", "run-forever"], vcpus=4))
        await w.settle()
        job_id = w.submit(w.define(["fake", "exit", "0"]))
        if status == "RUNNABLE":
            await w.settle()
        assert w.job(job_id).status.value == status
        job_cancellation.cancel_job(w.ctx, job_id=job_id, reason="no longer needed")
        await w.settle()
        job = w.job(job_id)
        assert job.status is JobStatus.FAILED
        assert job.is_cancelled
        assert job.attempts == ()
        assert w.job(blocker).status is JobStatus.RUNNING

    run(scenario)


def test_a_deleted_queue_ends_every_unfinished_job_then_goes() -> None:
    async def scenario(w: World) -> None:
        await w.open()
        running = w.submit(w.define(["fake", "run-forever"], vcpus=4))
        await w.settle()
        waiting = w.submit(w.define(["fake", "exit", "0"]))
        array = w.submit(w.define(["fake", "exit", "0"]), array_properties={"size": 3})
        pending = w.submit(w.define(["fake", "exit", "0"]), depends_on=[{"jobId": running}])
        await w.settle()
        assert w.job(running).status is JobStatus.RUNNING
        assert w.job(pending).status is JobStatus.PENDING
        job_queues.update_job_queue(w.ctx, job_queue="q", state="DISABLED")
        await w.settle()
        job_queues.delete_job_queue(w.ctx, job_queue="q")
        await w.settle()
        ended = [running, waiting, array, pending, *(f"{array}:{i}" for i in range(3))]
        for job_id in ended:
            job = w.job(job_id)
            assert (job_id, job.status) == (job_id, JobStatus.FAILED)
        assert w.job(running).status_reason == "JobQueue deleted"
        assert w.job(waiting).status_reason == "JobQueue deleted"
        assert w.store.get_job_queue("q") is None
        assert [s.job_id for s in w.runtime.started] == [running]

    run(scenario)
