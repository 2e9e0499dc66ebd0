"""GET /health against a real server: each check named, 503 with the reason while one fails
(the store cannot be written, dispatch rounds fail, too little disk), 200 again once it passes."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.api_processes import serving_pid, wait_api_pids
from tests.fixtures import (
    ServerProcess,
    define_job,
    make_environment,
    submit_job,
    wait_for,
    wait_status,
)


def health(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _set_writable(path: Path, writable: bool) -> None:
    """Make a file unwritable even for its open handles' next writes: as root (who ignores
    modes) the immutable attribute, otherwise mode 0444 (which the health probe sees)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i" if writable else "+i", str(path)], check=True)
    else:
        path.chmod(0o644 if writable else 0o444)


@contextlib.contextmanager
def unwritable_store(data_dir: Path) -> Iterator[None]:
    files = [data_dir / "batchyard.db", data_dir / "batchyard.db-wal"]
    files = [path for path in files if path.exists()]
    try:
        for path in files:
            _set_writable(path, False)
        yield
    finally:
        for path in files:
            _set_writable(path, True)


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[ServerProcess]:
    proc = ServerProcess(tmp_path / "data", "--stop-timeout", "2")
    proc.start()
    yield proc
    proc.stop()


def test_health_names_each_check(own_server: ServerProcess) -> None:
    status, body = health(own_server)
    assert status == 200
    assert body["status"] == "ok"
    assert set(body["checks"]) == {"dispatcher", "store", "disk"}
    assert all(check["status"] == "ok" for check in body["checks"].values()), body


def test_health_503_while_the_store_cannot_be_written(own_server: ServerProcess) -> None:
    batch = own_server.client()
    with unwritable_store(own_server.data_dir):

        def failing() -> dict[str, Any] | None:
            status, body = health(own_server)
            return body if status == 503 else None

        body = wait_for(failing, timeout=20, what="/health 503")
        assert body["status"] == "unhealthy"
        assert body["checks"]["store"]["status"] == "failing"
        assert "batchyard.db" in body["checks"]["store"]["detail"]
        # A write is refused with an AWS error, not a traceback.
        with pytest.raises(batch.exceptions.ServerException):
            define_job(batch, ["true"])
    wait_for(lambda: health(own_server)[0] == 200, timeout=20, what="/health 200 again")
    assert health(own_server)[1]["checks"]["store"]["status"] == "ok"


def test_health_503_while_dispatch_rounds_fail(own_server: ServerProcess) -> None:
    batch = own_server.client()
    [queue] = make_environment(batch, max_vcpus=2)
    definition = define_job(batch, ["sleep", "2"])
    job_id = submit_job(batch, queue, definition)
    wait_status(batch, job_id, ("RUNNING",))
    with unwritable_store(own_server.data_dir):
        # The attempt's exit cannot be recorded: every round that tries fails.

        def dispatcher_failing() -> dict[str, Any] | None:
            status, body = health(own_server)
            failing = status == 503 and body["checks"]["dispatcher"]["status"] == "failing"
            return body if failing else None

        body = wait_for(dispatcher_failing, timeout=30, what="/health: dispatcher failing")
        assert "dispatch rounds in a row failed" in body["checks"]["dispatcher"]["detail"]
    wait_for(lambda: health(own_server)[0] == 200, timeout=30, what="/health 200 again")
    assert wait_status(batch, job_id)["status"] == "SUCCEEDED"


def test_health_503_when_the_disk_has_too_little_free(tmp_path: Path) -> None:
    # More free space demanded than any disk here has: statvfs says too little.
    proc = ServerProcess(tmp_path / "data", "--min-free-disk-mb", str(1 << 40))
    proc.start(wait=False)
    try:

        def answered() -> tuple[int, dict[str, Any]] | None:
            try:
                found = health(proc)
            except OSError:
                return None
            return found if found[1].get("status") != "starting" else None

        status, body = wait_for(answered, timeout=30, what="/health answering")
        assert status == 503
        assert body["checks"]["disk"]["status"] == "failing"
        assert "MiB free for the data directory" in body["checks"]["disk"]["detail"]
        assert body["checks"]["store"]["status"] == "ok"
    finally:
        proc.stop()


def test_api_processes_report_the_dispatcher_of_the_main_process(tmp_path: Path) -> None:
    """With --api-processes, a connection an API-only process accepted (it runs no
    dispatcher) answers the main process's dispatcher check too."""
    server = ServerProcess(tmp_path / "data", "--api-processes", "2", "--stop-timeout", "2")
    server.start()
    try:
        assert server.process is not None
        main = server.process.pid
        (worker,) = wait_api_pids(server, 1)
        batch = server.client()
        [queue] = make_environment(batch, max_vcpus=2)
        job_id = submit_job(batch, queue, define_job(batch, ["sleep", "2"]))
        wait_status(batch, job_id, ("RUNNING",))

        def health_from(pid: int) -> tuple[int, dict[str, Any]]:
            deadline = time.monotonic() + 20
            while True:
                connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
                connection.request("GET", "/health")  # answered: accepted by one of them
                response = connection.getresponse()
                answer = response.status, json.loads(response.read())
                served_by = serving_pid(connection, server.port, [main, worker])
                connection.close()
                if served_by == pid:
                    return answer
                assert time.monotonic() < deadline, f"no connection was accepted by {pid}"

        status, body = health_from(worker)
        assert (status, body["checks"]["dispatcher"]["status"]) == (200, "ok")
        with unwritable_store(server.data_dir):

            def worker_sees_dispatcher_failing() -> dict[str, Any] | None:
                status, body = health_from(worker)
                failing = status == 503 and body["checks"]["dispatcher"]["status"] == "failing"
                return body if failing else None

            body = wait_for(worker_sees_dispatcher_failing, timeout=30, what="worker: failing")
            detail = body["checks"]["dispatcher"]["detail"]
            assert "dispatch rounds in a row failed" in detail
            assert "reported by the main process" in detail
        wait_for(lambda: health_from(worker)[0] == 200, timeout=30, what="worker: 200 again")
        assert wait_status(batch, job_id)["status"] == "SUCCEEDED"
    finally:
        server.stop()
