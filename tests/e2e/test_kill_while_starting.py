"""kill -9 while jobs are STARTING: after each restart no attempt runs beside itself, and every
job ends as its attempts did, judged by the jobs' own start and end records (not the server's).
Process runtime and Docker runtime.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.containers import define_container_job, docker_queue
from tests.fixtures import (
    ServerProcess,
    define_job,
    make_environment,
    submit_job,
    wait_for,
)

# Each attempt appends one line when it starts and one when it ends (O_APPEND: whole lines),
# with its job id, attempt number and a clock both runtimes' jobs share: the wall clock in
# nanoseconds (process), the host's uptime in seconds (busybox's date has no nanoseconds).
RECORD = (
    'echo "start $AWS_BATCH_JOB_ID $AWS_BATCH_JOB_ATTEMPT {clock}" >> {path}; sleep {sleep}; '
    'echo "end $AWS_BATCH_JOB_ID $AWS_BATCH_JOB_ATTEMPT {clock}" >> {path}'
)


@dataclass(frozen=True)
class Setup:
    cycles: int
    array_size: int  # two arrays a cycle, placed together: STARTING lasts a while
    clock: str
    sleep: str  # longer than a restart, so a retry beside a live attempt would overlap it


SETUPS = {
    "process": Setup(cycles=6, array_size=40, clock="$(date +%s%N)", sleep="2"),
    "docker": Setup(cycles=3, array_size=6, clock="$(cut -d' ' -f1 /proc/uptime)", sleep="4"),
}


@pytest.fixture(params=["process", pytest.param("docker", marks=pytest.mark.docker)])
def runtime(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def placed_children(batch: Any, parents: list[str]) -> int:
    """Children STARTING or RUNNING. A kill once any is placed lands while others are still
    STARTING: a round places a few more of a queue's heads than the last (4, 16, 64, ...)."""
    summaries = [
        job["arrayProperties"]["statusSummary"] for job in batch.describe_jobs(jobs=parents)["jobs"]
    ]
    return sum(summary.get(s, 0) for summary in summaries for s in ("STARTING", "RUNNING"))


def details(batch: Any, job_ids: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for i in range(0, len(job_ids), 100):
        found.extend(batch.describe_jobs(jobs=job_ids[i : i + 100])["jobs"])
    return found


def own_records(path: Path) -> dict[tuple[str, int], list[tuple[str, float]]]:
    """(job id, attempt number) -> [(start or end, time)], in the order written."""
    runs: dict[tuple[str, int], list[tuple[str, float]]] = defaultdict(list)
    for line in path.read_text().splitlines():
        what, job_id, attempt, at = line.split()
        runs[(job_id, int(attempt))].append((what, float(at)))
    return runs


def test_no_attempt_runs_twice_at_once_across_kill_9_while_starting(
    runtime: str, tmp_path: Path
) -> None:
    setup = SETUPS[runtime]
    server = ServerProcess(tmp_path / "data", "--stop-timeout", "2")
    server.start()
    records = tmp_path / "records"
    records.mkdir()
    (records / "log").touch()
    parents: list[str] = []
    try:
        batch = server.client()
        if runtime == "docker":
            queue = docker_queue(batch, max_vcpus=64)
            command = RECORD.format(path="/records/log", clock=setup.clock, sleep=setup.sleep)
            definition = define_container_job(
                batch,
                ["sh", "-c", command],
                volumes=[{"name": "records", "host": {"sourcePath": str(records)}}],
                mountPoints=[{"sourceVolume": "records", "containerPath": "/records"}],
            )
        else:
            (queue,) = make_environment(batch, max_vcpus=256)
            command = RECORD.format(path=records / "log", clock=setup.clock, sleep=setup.sleep)
            definition = define_job(batch, ["sh", "-c", command])
        for _ in range(setup.cycles):
            submitted = [
                submit_job(
                    batch,
                    queue,
                    definition,
                    arrayProperties={"size": setup.array_size},
                    retryStrategy={"attempts": attempts},
                )
                for attempts in (1, 3)
            ]
            parents.extend(submitted)
            wait_for(
                functools.partial(placed_children, batch, submitted),  # truthy: some placed
                timeout=60,
                interval=0.005,
                what="children placed",
            )
            server.kill9()
            server.start()
            batch = server.client()

        children = [f"{p}:{i}" for p in parents for i in range(setup.array_size)]
        wait_for(
            lambda: all(j["status"] in ("SUCCEEDED", "FAILED") for j in details(batch, children)),
            timeout=180,
            interval=0.5,
            what="every job ended",
        )
        ended = {job["jobId"]: job for job in details(batch, children)}
    finally:
        server.stop()

    # The kills did land while starts were not yet stored (else this tests nothing).
    found = re.findall(r"Recovery found (\d+) attempts whose start was not stored", server.output())
    assert sum(int(n) for n in found) > 0, server.output()[-3000:]
    runs = own_records(records / "log")
    overlaps: list[tuple[str, int, int, float]] = []
    for job_id in children:
        intervals = []
        for attempt in range(1, 4):
            marks = runs.get((job_id, attempt))
            if marks is None:
                continue
            starts = [at for what, at in marks if what == "start"]
            ends = [at for what, at in marks if what == "end"]
            # Each attempt ran at most once, and ran to its end (kill -9 of the server kills
            # no job).
            assert len(starts) == len(ends) == 1, (job_id, attempt, marks)
            intervals.append((starts[0], ends[0], attempt))
        intervals.sort()
        for (_, first_end, first), (second_start, _, second) in itertools.pairwise(intervals):
            if second_start < first_end:
                overlaps.append((job_id, first, second, first_end - second_start))
    assert overlaps == []

    wrong: list[tuple[Any, ...]] = []
    for job_id in children:
        job = ended[job_id]
        for number, attempt in enumerate(job["attempts"], start=1):
            ran = (job_id, number) in runs
            exit_code = attempt["container"].get("exitCode")
            # An attempt that ran exited 0 (its own record says so); one that never ran has no
            # exit code.
            if ran != (exit_code == 0):
                wrong.append((job_id, number, ran, exit_code, attempt["statusReason"]))
        ran_attempts = {a for (j, a) in runs if j == job_id}
        if not ran_attempts <= set(range(1, len(job["attempts"]) + 1)):
            wrong.append((job_id, "ran attempts it does not list", sorted(ran_attempts)))
        if job["status"] == "FAILED" and ran_attempts:
            wrong.append((job_id, "FAILED though it ran", sorted(ran_attempts)))
        if job["status"] == "SUCCEEDED":
            assert ran_attempts, job_id
    assert wrong == []
