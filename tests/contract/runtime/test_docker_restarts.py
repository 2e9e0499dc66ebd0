"""What only the docker runtime does, against a real Docker engine and the locally built test
image (scripts/provision): recovery after a restart re-attaches, reports and reaps by label."""

from __future__ import annotations

import asyncio
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from batchyard.runtimes.base import (
    ESSENTIAL_CONTAINER_EXITED,
    HOST_LOST,
    AttemptExited,
    AttemptSpec,
    AttemptStarted,
)
from batchyard.runtimes.docker import (
    HOST_LOST_NOT_FOUND,
    LABEL_ATTEMPT,
    LABEL_JOB_ID,
    LABEL_OWNER,
    LABEL_TASK_ID,
    owner_label,
)
from tests.builders import a_container_spec
from tests.containers import IMAGE, RUN_FOREVER, remove_containers
from tests.contract.runtime.dock import Dock, gated, in_dock, open_dock, ref_of
from tests.contract.runtime.harness import poll

# -- restarts ----------------------------------------------------------------------------------


@pytest.mark.docker
def test_recover_reattaches_to_a_running_container_without_repeating_lines(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def main() -> None:
        first = await open_dock(engine, tmp_path, owner)
        spec, gate = gated(tmp_path, "echo one; echo two", "echo three; exit 5")
        await first.runtime.start(spec)
        await poll(lambda: first.messages(spec) == ["one", "two"])
        handle = first.handle_of(spec)
        await first.runtime.close()  # the server stops; the container runs on
        assert first.states(spec) == ["running"]

        second = await open_dock(engine, tmp_path, owner)  # a new log store instance too
        try:
            await second.runtime.recover([ref_of(spec, handle)])
            gate.touch()
            exited = await second.exited(spec)
            await second.gone(spec)
        finally:
            await second.runtime.close()

        assert (exited.exit_code, exited.status_reason) == (5, ESSENTIAL_CONTAINER_EXITED)
        assert second.messages(spec) == ["one", "two", "three"]
        assert second.of(spec) == [exited]  # its start was recorded before the restart
        assert first.exit_of(spec) is None

    asyncio.run(main())


@pytest.mark.docker
def test_recover_reports_and_reaps_a_container_that_ended_while_the_server_was_down(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    async def main() -> None:
        first = await open_dock(engine, tmp_path, owner)
        spec, gate = gated(tmp_path, "echo a; echo b", "echo c; exit 4")
        await first.runtime.start(spec)
        await poll(lambda: first.messages(spec) == ["a", "b"])
        handle = first.handle_of(spec)
        await first.runtime.close()
        gate.touch()
        await poll(lambda: first.states(spec) == ["exited"])

        second = await open_dock(engine, tmp_path, owner)
        try:
            await second.runtime.recover([ref_of(spec, handle)])
            exited = await second.exited(spec)
            await second.gone(spec)
        finally:
            await second.runtime.close()

        assert exited.exit_code == 4
        assert second.messages(spec) == ["a", "b", "c"]

    asyncio.run(main())


@pytest.mark.docker
def test_an_exit_not_yet_stored_keeps_its_container_for_the_next_server(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    # The server dies after its runtime reported an exit but before the dispatcher stored it:
    # the next server's recovery must find the exit code, not call the host lost.
    async def main() -> None:
        first = await open_dock(engine, tmp_path, owner, stores_exits=False)
        spec = a_container_spec(("sh", "-c", "echo done; exit 7"))
        assert (await first.run(spec)).exit_code == 7
        await first.runtime.close()
        assert first.states(spec) == ["exited"]

        second = await open_dock(engine, tmp_path, owner)
        try:
            await second.runtime.recover([ref_of(spec, first.handle_of(spec))])
            again = await second.exited(spec)
            await second.gone(spec)  # stored this time: the container goes
        finally:
            await second.runtime.close()

        assert (again.exit_code, again.status_reason) == (7, ESSENTIAL_CONTAINER_EXITED)
        assert second.messages(spec) == ["done"]

    asyncio.run(main())


@pytest.mark.docker
def test_recover_finds_containers_by_label_whatever_the_server_recorded(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    """A container started but never recorded (no handle), one created but never started, one
    no attempt claims (left by an earlier server), and an attempt whose container is gone."""

    def create(spec: AttemptSpec, command: list[str]) -> Container:
        labels = {
            LABEL_OWNER: owner_label(owner),
            LABEL_JOB_ID: spec.job_id,
            LABEL_TASK_ID: spec.task_id,
            LABEL_ATTEMPT: "1",
        }
        return engine.containers.create(IMAGE, command, labels=labels, network_mode="none")

    async def scenario(dock: Dock) -> None:
        unrecorded = a_container_spec(("x",), job_id="job-unrecorded")
        create(unrecorded, ["sh", "-c", "echo early; sleep 0.5; exit 2"]).start()
        never_started = a_container_spec(("x",), job_id="job-created")
        create(never_started, ["sh", "-c", "echo late; exit 3"])
        orphan = a_container_spec(("x",), job_id="job-finished-long-ago")
        create(orphan, ["true"]).start()
        lost = a_container_spec(("x",), job_id="job-lost")

        await dock.runtime.recover(
            [ref_of(unrecorded, None), ref_of(never_started, None), ref_of(lost, "{}")]
        )

        assert (await dock.exited(unrecorded)).exit_code == 2
        assert [type(e) for e in dock.of(unrecorded)] == [AttemptStarted, AttemptExited]
        assert dock.messages(unrecorded) == ["early"]
        assert (await dock.exited(never_started)).exit_code == 3
        assert [type(e) for e in dock.of(never_started)] == [AttemptStarted, AttemptExited]
        assert dock.messages(never_started) == ["late"]
        gone = dock.exit_of(lost)
        assert gone is not None
        assert (gone.exit_code, gone.status_reason, gone.reason) == (
            None,
            HOST_LOST,
            HOST_LOST_NOT_FOUND,
        )
        assert dock.of(orphan) == []
        await poll(lambda: dock.containers() == [])  # nothing leaked

    in_dock(engine, tmp_path, owner, scenario)


@pytest.mark.docker
def test_close_leaves_containers_running_and_other_owners_alone(
    engine: docker.DockerClient, tmp_path: Path, owner: str
) -> None:
    neighbour = f"{owner}-neighbour"

    async def main() -> None:
        other = await open_dock(engine, tmp_path / "other", neighbour)
        theirs = a_container_spec(RUN_FOREVER)
        await other.runtime.start(theirs)
        await poll(lambda: other.messages(theirs) == ["up"])
        await other.runtime.close()

        dock = await open_dock(engine, tmp_path, owner)
        try:
            await dock.runtime.recover([])  # reaps only its own owner's containers
            assert other.states(theirs) == ["running"]
        finally:
            await dock.runtime.close()

    try:
        asyncio.run(main())
    finally:
        remove_containers(engine, owner_label(neighbour))
