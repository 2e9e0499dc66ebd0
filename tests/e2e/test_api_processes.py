"""`batchyard server --api-processes N`: API-only processes share the listening socket, their
writes wake the main process's dispatcher, and they live and die with the main process.

Which process served a connection is read from /proc (the accepted socket's inode in the
process's descriptors), so the server needs no test-only API.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from batchyard.store.sql import SqlStore
from tests.api_processes import alive, api_pids, serving_pid, wait_api_pids
from tests.fixtures import (
    ServerProcess,
    define_job,
    make_environment,
    unique,
    wait_for,
)

HEADERS = {"Content-Type": "application/json"}


# -- connections to one process -----------------------------------------------------------


def call(
    connection: http.client.HTTPConnection,
    method: str,
    path: str,
    body: Any = None,
    headers: dict[str, str] = HEADERS,
) -> tuple[int, Any]:
    connection.request(method, path, None if body is None else json.dumps(body), headers)
    response = connection.getresponse()
    data = response.read()
    return response.status, json.loads(data) if data else None


def connection_served_by(
    server: ServerProcess, pid: int, candidates: list[int]
) -> http.client.HTTPConnection:
    """A keep-alive connection that `pid` accepted (and answered /health 200 on)."""
    deadline = time.monotonic() + 15
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
        status, body = call(connection, "GET", "/health")
        assert status == 200
        assert body["status"] == "ok"
        if serving_pid(connection, server.port, candidates) == pid:
            return connection
        connection.close()
        if time.monotonic() > deadline:
            raise AssertionError(f"no connection was accepted by process {pid}")


@pytest.fixture(scope="module")
def two(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path_factory.mktemp("api2") / "data", "--api-processes", "2")
    proc.start()
    yield proc
    assert proc.stop() == 0


# -- serving ----------------------------------------------------------------------------


def test_one_process_by_default(server: ServerProcess) -> None:
    assert server.process is not None
    assert api_pids(server.process.pid) == []


def test_every_process_accepts_and_answers_health(two: ServerProcess) -> None:
    assert two.process is not None
    main = two.process.pid
    (worker,) = wait_api_pids(two, 1)
    for pid in (main, worker):
        connection = connection_served_by(two, pid, [main, worker])
        connection.close()


def test_submits_through_an_api_process_wake_the_dispatcher(two: ServerProcess) -> None:
    """Each job is submitted to the API-only process while the dispatcher is idle (the job
    before it has finished): only the wake-up channel can start it."""
    assert two.process is not None
    main = two.process.pid
    (worker,) = wait_api_pids(two, 1)
    batch = two.client()
    queue = make_environment(batch, max_vcpus=2)[0]
    definition = define_job(batch, ["true"])
    connection = connection_served_by(two, worker, [main, worker])
    started: list[int] = []
    try:
        for _ in range(8):
            status, body = call(
                connection,
                "POST",
                "/v1/submitjob",
                {"jobName": unique("via-api"), "jobQueue": queue, "jobDefinition": definition},
            )
            assert status == 200, body
            job_id = body["jobId"]

            def finished(job_id: str = job_id) -> dict[str, Any] | None:
                status, body = call(connection, "POST", "/v1/describejobs", {"jobs": [job_id]})
                assert status == 200, body
                (job,) = body["jobs"]
                return job if job["status"] in ("SUCCEEDED", "FAILED") else None

            job = wait_for(finished, timeout=20, what=f"job {job_id} to finish")
            assert job["status"] == "SUCCEEDED", job
            started.append(job["startedAt"] - job["createdAt"])
        assert serving_pid(connection, two.port, [main, worker]) == worker
    finally:
        connection.close()
    # A sanity bound, not a benchmark: without the wake-up a job would wait for ever.
    assert statistics.median(started) < 200, started


def test_concurrent_submits_are_all_accepted_and_all_succeed(two: ServerProcess) -> None:
    batch = two.client()
    queue = make_environment(batch, max_vcpus=4)[0]
    definition = define_job(batch, ["true"])

    def submit_many(client: int) -> list[str]:
        connection = http.client.HTTPConnection("127.0.0.1", two.port, timeout=30)
        ids = []
        try:
            for index in range(15):
                status, body = call(
                    connection,
                    "POST",
                    "/v1/submitjob",
                    {
                        "jobName": f"c{client}-{index}",
                        "jobQueue": queue,
                        "jobDefinition": definition,
                    },
                )
                assert status == 200, body
                ids.append(body["jobId"])
        finally:
            connection.close()
        return ids

    with ThreadPoolExecutor(16) as pool:
        ids = [job_id for part in pool.map(submit_many, range(16)) for job_id in part]
    assert len(set(ids)) == 16 * 15

    def all_succeeded() -> bool:
        statuses = []
        for first in range(0, len(ids), 100):
            statuses += [
                j["status"] for j in batch.describe_jobs(jobs=ids[first : first + 100])["jobs"]
            ]
        assert "FAILED" not in statuses
        return len(statuses) == len(ids) and set(statuses) == {"SUCCEEDED"}

    wait_for(all_succeeded, timeout=90, interval=0.2, what="every job SUCCEEDED")


def test_an_api_process_reads_the_logs_the_main_process_writes(two: ServerProcess) -> None:
    """Read while the job runs, then after: an API process must not keep what it read."""
    assert two.process is not None
    main = two.process.pid
    (worker,) = wait_api_pids(two, 1)
    batch = two.client()
    queue = make_environment(batch, max_vcpus=2)[0]
    definition = define_job(batch, ["sh", "-c", "echo first; sleep 0.5; echo second"])
    job_id = batch.submit_job(jobName=unique("logs"), jobQueue=queue, jobDefinition=definition)[
        "jobId"
    ]

    def job() -> dict[str, Any]:
        return dict(batch.describe_jobs(jobs=[job_id])["jobs"][0])

    stream = wait_for(
        lambda: job().get("container", {}).get("logStreamName"), what="the job's log stream"
    )
    connection = connection_served_by(two, worker, [main, worker])
    headers = {
        "Content-Type": "application/x-amz-json-1.1",
        "X-Amz-Target": "Logs_20140328.GetLogEvents",
    }
    request = {"logGroupName": "/aws/batch/job", "logStreamName": stream, "startFromHead": True}

    def messages() -> list[str]:
        status, page = call(connection, "POST", "/", request, headers)
        if status != 200:  # the stream has no file before the job's first line
            assert page["__type"] == "ResourceNotFoundException", page
            return []
        return [event["message"] for event in page["events"]]

    try:
        assert wait_for(messages, what="the job's first line")[0] == "first"
        wait_for(lambda: job()["status"] == "SUCCEEDED", timeout=20, what="the job to succeed")
        assert messages() == ["first", "second"]
        assert serving_pid(connection, two.port, [main, worker]) == worker
    finally:
        connection.close()


# -- lifecycle ------------------------------------------------------------------------------


def test_a_rate_limit_holds_for_the_server_whichever_process_answers(tmp_path: Path) -> None:
    # 4 a second, a burst of 4: from two processes that each kept their own buckets, a quick
    # burst of 16 calls would get 8 through.
    proc = ServerProcess(tmp_path / "data", "--api-processes", "2", "--rate-limit", "ListJobs=4")
    proc.start()
    try:
        assert proc.process is not None
        main = proc.process.pid
        (worker,) = wait_api_pids(proc, 1)
        connections = [connection_served_by(proc, pid, [main, worker]) for pid in (main, worker)]
        started = time.monotonic()
        statuses = [
            call(connections[i % 2], "POST", "/v1/listjobs", {"jobQueue": "nope"})
            for i in range(16)
        ]
        elapsed = time.monotonic() - started
        # Admitted calls are answered (no such queue); the others are throttled.
        admitted = [body for status, body in statuses if status == 400]
        throttled = [body for status, body in statuses if status == 429]
        assert len(admitted) + len(throttled) == 16, statuses
        assert 4 <= len(admitted) <= 4 + int(elapsed * 4) + 1, (len(admitted), elapsed)
        assert {body["__type"] for body in admitted} == {"ClientException"}
        assert {body["__type"] for body in throttled} == {"TooManyRequestsException"}
        for connection in connections:
            connection.close()
    finally:
        assert proc.stop() == 0


def test_sigterm_stops_every_process_and_exits_zero(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data", env={"BATCHYARD_API_PROCESSES": "3"})
    proc.start()
    try:
        workers = wait_api_pids(proc, 2)
    finally:
        code = proc.stop()
    assert code == 0, proc.output()
    assert [pid for pid in workers if alive(pid)] == []


def test_api_process_restarts_after_dying_and_stops_when_main_is_killed(tmp_path: Path) -> None:
    proc = ServerProcess(tmp_path / "data", "--api-processes", "2")
    proc.start()
    try:
        assert proc.process is not None
        main = proc.process.pid
        (first,) = wait_api_pids(proc, 1)
        os.kill(first, signal.SIGKILL)
        (second,) = wait_for(
            lambda: pids if (pids := api_pids(main)) and pids != [first] else None,
            timeout=30,
            what="a new API process",
        )
        assert f"API process 1 (pid {first}) exited with signal SIGKILL" in proc.output()
        connection = connection_served_by(proc, second, [main, second])
        acknowledged = []
        try:
            status, body = call(
                connection,
                "POST",
                "/v1/registerjobdefinition",
                {
                    "jobDefinitionName": "kept",
                    "type": "container",
                    "containerProperties": {"image": "busybox", "command": ["true"]},
                },
            )
            assert status == 200, body
            for index in range(20):
                status, body = call(
                    connection,
                    "POST",
                    "/v1/submitjob",
                    {"jobName": f"kept-{index}", "jobQueue": "default", "jobDefinition": "kept"},
                )
                assert status == 200, body
                acknowledged.append(body["jobId"])
        finally:
            connection.close()

        proc.kill9()
        wait_for(lambda: not alive(second), timeout=15, what="the API process to exit")
        # What an API process acknowledged is in the store.
        store = SqlStore(f"sqlite:///{proc.data_dir / 'batchyard.db'}")
        try:
            assert {job.job_id for job in store.get_jobs(acknowledged)} == set(acknowledged)
        finally:
            store.close()
        # Nothing holds the listening socket any more.
        with pytest.raises(ConnectionRefusedError), socket.socket() as probe:
            probe.connect(("127.0.0.1", proc.port))
    finally:
        if proc.process is not None and proc.process.poll() is None:
            proc.kill9()


def test_api_processes_must_be_at_least_one(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "batchyard", "server", "--api-processes", "0",
         "--data-dir", str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "--api-processes must be at least 1" in done.stderr
    assert not (tmp_path / "data").exists()
