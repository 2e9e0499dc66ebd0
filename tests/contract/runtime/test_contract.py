"""The runtime contract (runtimes/base.py) over the process, docker and fake runtimes: exits and
their codes, stops, attempts that cannot start, attempts side by side, recovery after a
restart, host limits; then the fake runtime's virtual time."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import pytest

from batchyard.domain.model import Resources
from batchyard.runtimes.base import (
    ESSENTIAL_CONTAINER_EXITED,
    HOST_LOST,
    TASK_FAILED_TO_START,
    AttemptExited,
    AttemptRef,
    AttemptStarted,
    RuntimeEvent,
)
from batchyard.runtimes.fake import FakeRuntime
from tests.builders import FixedClock, an_attempt_spec
from tests.contract.runtime.harness import GROUP, Harness, with_runtime

# -- the contract, for every runtime ---------------------------------------------------------


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker), "fake"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.parametrize("code", [0, 3])
def test_reports_start_then_exit_with_the_exit_code(kind: str, tmp_path: Path, code: int) -> None:
    async def scenario(h: Harness) -> None:
        spec = an_attempt_spec(h.exit_with(code))
        await h.runtime.start(spec)
        exited = await h.exited(spec.task_id)

        started, ended = h.of(spec.task_id)
        assert isinstance(started, AttemptStarted)
        assert started.job_id == spec.job_id
        assert started.runtime_handle
        assert ended == exited
        assert exited.exit_code == code
        assert exited.status_reason == ESSENTIAL_CONTAINER_EXITED
        assert exited.reason is None
        assert started.started_at <= exited.stopped_at

    with_runtime(kind, tmp_path, scenario)


def test_stop_ends_a_running_attempt_with_143(kind: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        spec = an_attempt_spec(h.run_forever)
        await h.runtime.start(spec)
        await h.until(lambda: h.has_started(spec.task_id))
        assert h.exit_of(spec.task_id) is None

        await h.runtime.stop(spec.job_id, spec.task_id, grace_seconds=10)
        exited = await h.exited(spec.task_id)

        assert exited.exit_code == 143
        assert exited.status_reason == ESSENTIAL_CONTAINER_EXITED
        assert len(h.of(spec.task_id)) == 2

    with_runtime(kind, tmp_path, scenario)


def test_an_attempt_that_cannot_start_reports_only_task_failed_to_start(
    kind: str, tmp_path: Path
) -> None:
    async def scenario(h: Harness) -> None:
        spec = an_attempt_spec(h.cannot_start)
        await h.runtime.start(spec)
        exited = await h.exited(spec.task_id)

        assert h.of(spec.task_id) == [exited]
        assert exited.exit_code is None
        assert exited.status_reason == TASK_FAILED_TO_START
        assert exited.reason is not None
        assert exited.reason.startswith("CannotStartContainerError: ")

    with_runtime(kind, tmp_path, scenario)


def test_attempts_run_side_by_side_and_report_their_own_exits(kind: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        specs = [an_attempt_spec(h.exit_with(code), job_id=f"job-{code}") for code in (1, 2, 7)]
        for spec in specs:
            await h.runtime.start(spec)
        exits = [await h.exited(spec.task_id) for spec in specs]

        assert [(e.job_id, e.exit_code) for e in exits] == [
            ("job-1", 1),
            ("job-2", 2),
            ("job-7", 7),
        ]

    with_runtime(kind, tmp_path, scenario)


def test_recover_of_an_attempt_that_never_started_reports_host_lost(
    kind: str, tmp_path: Path
) -> None:
    async def scenario(h: Harness) -> None:
        ref = AttemptRef("job-9", uuid.uuid4().hex, GROUP, "render/default/x", None)
        await h.runtime.recover([ref])

        [lost] = h.of(ref.task_id)
        assert isinstance(lost, AttemptExited)
        assert (lost.job_id, lost.exit_code, lost.status_reason) == ("job-9", None, HOST_LOST)
        assert lost.status_reason.startswith("Host EC2 (instance ")

    with_runtime(kind, tmp_path, scenario)


def test_recover_finds_by_task_id_an_attempt_whose_handle_was_never_recorded(
    kind: str, tmp_path: Path
) -> None:
    # The server died after the runtime started these attempts but before the store recorded
    # their starts: the store hands them back with no handle. They must be found (a retry
    # beside a live attempt would run the job twice at once) and end with their real exits.
    async def scenario(h: Harness) -> None:
        ending = an_attempt_spec(h.exit_after_a_second(3), job_id="job-ending")
        running = an_attempt_spec(h.run_forever, job_id="job-running")
        for spec in (ending, running):
            await h.runtime.start(spec)
        await h.until(lambda: h.has_started(ending.task_id) and h.has_started(running.task_id))
        await h.restart()
        h.events.clear()

        refs = [
            AttemptRef(spec.job_id, spec.task_id, GROUP, spec.log_stream_name, None)
            for spec in (ending, running)
        ]
        await h.runtime.recover(refs)
        exited = await h.exited(ending.task_id)

        assert (exited.job_id, exited.exit_code, exited.status_reason) == (
            "job-ending",
            3,
            ESSENTIAL_CONTAINER_EXITED,
        )
        started = h.of(ending.task_id)[0]
        assert isinstance(started, AttemptStarted)  # reported again, now with a handle
        assert started.runtime_handle
        assert started.started_at <= exited.stopped_at
        [still_running] = h.of(running.task_id)
        assert isinstance(still_running, AttemptStarted)
        assert still_running.runtime_handle

        await h.runtime.stop(running.job_id, running.task_id, grace_seconds=10)
        assert (await h.exited(running.task_id)).exit_code == 143

    with_runtime(kind, tmp_path, scenario)


def test_stopping_an_unknown_attempt_reports_nothing(kind: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> None:
        await h.runtime.stop("job-x", uuid.uuid4().hex, grace_seconds=1)
        assert h.events == []

    with_runtime(kind, tmp_path, scenario)


def test_host_limits_are_positive(kind: str, tmp_path: Path) -> None:
    async def scenario(h: Harness) -> Resources:
        return h.runtime.host_limits()

    limits = with_runtime(kind, tmp_path, scenario)
    assert limits.vcpus > 0
    assert limits.memory_mib > 0
    assert limits.gpus == 0


# -- the fake runtime's virtual time ------------------------------------------------------------


def test_fake_runtime_reports_exits_only_when_time_reaches_them() -> None:
    async def main() -> None:
        clock = FixedClock()
        fake = FakeRuntime(clock)
        events: list[RuntimeEvent] = []
        await fake.open(events.append)
        t0 = clock.now
        slow, quick, forever = (
            an_attempt_spec(("fake", "exit", "4", "after", "5000")),
            an_attempt_spec(("fake", "oom", "after", "1000")),
            an_attempt_spec(("fake", "run-forever")),
        )
        for spec in (slow, quick, forever):
            await fake.start(spec)

        assert [type(e) for e in events] == [AttemptStarted] * 3
        assert fake.next_event_at() == t0 + 1000
        fake.advance_to(t0 + 999)
        assert len(events) == 3
        fake.advance_to(t0 + 6000)

        exits = [e for e in events[3:] if isinstance(e, AttemptExited)]
        assert [(e.task_id, e.exit_code, e.stopped_at) for e in exits] == [
            (quick.task_id, 137, t0 + 1000),
            (slow.task_id, 4, t0 + 5000),
        ]
        assert len(events) == 5
        assert exits[0].reason == "OutOfMemoryError: Container killed due to memory usage"
        assert fake.next_event_at() is None
        assert fake.running == (forever.task_id,)
        assert fake.started == [slow, quick, forever]

        await fake.stop(forever.job_id, forever.task_id, grace_seconds=30)
        await fake.stop("job-1", "unknown", grace_seconds=30)
        assert fake.stopped == [forever.task_id, "unknown"]
        assert not fake.running

    asyncio.run(main())


def test_fake_runtime_stop_cancels_a_scheduled_exit_and_recover_keeps_running_ones() -> None:
    async def main() -> None:
        clock = FixedClock()
        fake = FakeRuntime(clock)
        events: list[RuntimeEvent] = []
        await fake.open(events.append)
        stopped, kept = (
            an_attempt_spec(("fake", "exit", "0", "after", "10")),
            an_attempt_spec(("fake", "run-forever")),
        )
        await fake.start(stopped)
        await fake.start(kept)
        await fake.stop(stopped.job_id, stopped.task_id, grace_seconds=1)
        assert fake.next_event_at() is None

        await fake.close()  # a dispatcher restart over the same host
        await fake.open(events.append)
        handle = next(
            e.runtime_handle
            for e in events
            if isinstance(e, AttemptStarted) and e.task_id == kept.task_id
        )
        lost = AttemptRef("job-2", "gone", GROUP, "s", "fake:gone")
        await fake.recover([AttemptRef(kept.job_id, kept.task_id, GROUP, "s", handle), lost])

        assert fake.running == (kept.task_id,)
        assert [(e.task_id, e.status_reason) for e in events if isinstance(e, AttemptExited)] == [
            (stopped.task_id, ESSENTIAL_CONTAINER_EXITED),
            ("gone", HOST_LOST),
        ]

    asyncio.run(main())


def test_fake_runtime_rejects_a_malformed_script() -> None:
    async def main() -> None:
        fake = FakeRuntime(FixedClock())
        await fake.open(lambda event: None)
        with pytest.raises(ValueError, match="not a fake runtime script"):
            await fake.start(an_attempt_spec(("fake", "exit", "after", "10")))

    asyncio.run(main())
