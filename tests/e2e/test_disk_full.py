"""A full disk, for real: the server's data directory on a small tmpfs that a job fills.

While the disk is full, writes answer a ServerException that says so and /health reports it;
reads keep working. Once space returns the server recovers on its own: the exits that could
not be stored are stored, output that could not be appended is appended (every line, in
order), waiting jobs run and SubmitJob works again. Mounting needs root: these tests fail,
never skip, without it.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batchyard import disk_full
from batchyard.logs import LogEvent
from batchyard.logs.file_store import FileLogStore
from tests.containers import IMAGE, docker_queue, require_engine
from tests.fixtures import (
    ServerProcess,
    define_job,
    describe_job,
    make_environment,
    submit_job,
    unique,
    wait_for,
    wait_status,
)

DISK_SIZE = "16m"
# /health's own free-space floor (64 MiB by default) would fail on a 16 MiB disk.
SERVER_ARGS = ("--stop-timeout", "2", "--min-free-disk-mb", "1")
RECOVERY_SECONDS = 60.0  # generous: the machine is shared; recovery takes about a second


@pytest.fixture
def markers(tmp_path: Path) -> Path:
    """Where the tests' jobs look for the files that tell them to go on or end."""
    found = tmp_path / "markers"
    found.mkdir()
    return found


@pytest.fixture
def small_disk(tmp_path: Path, markers: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs at tmp_path/data, unmounted afterwards. The jobs of a test end when
    their marker files (outside it) appear: the finalizer makes them all, so no job holds
    the mount busy."""
    mountpoint = tmp_path / "data"
    mountpoint.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK_SIZE}", "tmpfs", str(mountpoint)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.fail(
            f"mounting a tmpfs failed ({mounted.stderr.strip()}): the disk-full tests need "
            "root (or CAP_SYS_ADMIN) and never skip"
        )
    yield mountpoint
    for marker in ("go", "release", "stop"):
        (markers / marker).touch()
    deadline = time.monotonic() + 30
    while subprocess.run(["umount", str(mountpoint)], capture_output=True).returncode != 0:
        if time.monotonic() > deadline:
            subprocess.run(["umount", "-l", str(mountpoint)], check=True)
            break
        time.sleep(0.2)  # the jobs (and the launcher) are ending


def _disk_full_error(batch: Any, queue: str, definition: str) -> dict[str, Any] | None:
    """SubmitJob's error while the disk is full (None if it succeeded)."""
    try:
        submit_job(batch, queue, definition)
    except ClientError as error:
        return {
            "code": error.response["Error"]["Code"],
            "message": error.response["Error"]["Message"],
            "status": error.response["ResponseMetadata"]["HTTPStatusCode"],
            "type": error.response["ResponseMetadata"]["HTTPHeaders"].get("x-amzn-errortype"),
        }
    return None


def _health(server: ServerProcess) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def _assert_full(server: ServerProcess, batch: Any, queue: str, definition: str) -> None:
    error = wait_for(
        lambda: _disk_full_error(batch, queue, definition),
        timeout=RECOVERY_SECONDS,
        interval=0.2,
        what="SubmitJob refused for want of space",
    )
    assert error["code"] == "ServerException"
    assert error["status"] == 500
    assert error["type"] == "ServerException"
    assert "disk is full" in error["message"]
    with pytest.raises(ClientError, match="disk is full") as other:  # any write, not just one
        batch.create_scheduling_policy(name=unique("sp"))
    assert other.value.response["Error"]["Code"] == "ServerException"
    status, body = _health(server)
    assert status == 503
    assert body["status"] == "unhealthy"
    assert body["checks"]["disk"]["status"] == "failing", body


def _assert_recovered(server: ServerProcess, batch: Any, queue: str, definition: str) -> None:
    """Within the deadline, with nobody's help: SubmitJob works, /health is ok."""
    wait_for(
        lambda: _disk_full_error(batch, queue, definition) is None,
        timeout=RECOVERY_SECONDS,
        interval=0.2,
        what="SubmitJob working again",
    )
    wait_for(lambda: _health(server)[0] == 200, timeout=RECOVERY_SECONDS, what="/health ok")
    assert _health(server)[1]["status"] == "ok"


def _assert_quiet(server: ServerProcess) -> None:
    """One warning when the episode (one disk, one episode) begins and one when it ends,
    whatever failed in between; no traceback."""
    output = server.output()
    assert "Traceback" not in output, output[-4000:]
    assert output.count("is full:") == 1, output[-4000:]
    assert output.count("has room again") == 1, output[-4000:]


def _stream_lines(server: ServerProcess, stream: str) -> list[str]:
    logs = server.client("logs")
    lines: list[str] = []
    token: str | None = None
    while True:
        page = logs.get_log_events(
            logGroupName="/aws/batch/job",
            logStreamName=stream,
            startFromHead=True,
            **({"nextToken": token} if token else {}),
        )
        lines.extend(event["message"] for event in page["events"])
        if page["nextForwardToken"] == token:
            return lines
        token = page["nextForwardToken"]


def _wait_for(marker: Path) -> str:
    return f'while [ ! -e "{marker}" ]; do sleep 0.05; done'


def test_an_exit_that_cannot_be_stored_releases_its_space(small_disk: Path, markers: Path) -> None:
    """The job that filled the disk ends: its directory is emptied at once, not after its
    exit is stored (which waits for that space), so the server recovers by itself."""
    server = ServerProcess(small_disk, *SERVER_ARGS)
    server.start()
    try:
        batch = server.client()
        queue = make_environment(batch, max_vcpus=1)[0]
        go, filled, release = (markers / name for name in ("go", "filled", "release"))
        fills = (
            f'{_wait_for(go)}; dd if=/dev/zero of=scratch bs=64k; touch "{filled}"; '
            f"{_wait_for(release)}; exit 3"
        )
        filler = submit_job(batch, queue, define_job(batch, ["sh", "-c", fills]))
        true = define_job(batch, ["true"])
        waiter = submit_job(batch, queue, true)  # no capacity until the filler ends
        wait_status(batch, waiter, ("RUNNABLE",))
        go.touch()
        wait_for(filled.exists, timeout=RECOVERY_SECONDS, what="the disk filled")

        _assert_full(server, batch, queue, true)
        assert describe_job(batch, filler)["status"] == "RUNNING"  # reads are served
        assert describe_job(batch, waiter)["status"] == "RUNNABLE"

        release.touch()
        _assert_recovered(server, batch, queue, true)
        ended = wait_status(batch, filler, timeout=RECOVERY_SECONDS)
        assert ended["status"] == "FAILED"
        assert ended["attempts"][-1]["container"]["exitCode"] == 3
        assert wait_status(batch, waiter, timeout=RECOVERY_SECONDS)["status"] == "SUCCEEDED"
        _assert_quiet(server)
    finally:
        server.stop()


def _output_is_kept_while_full(
    server: ServerProcess,
    markers: Path,
    writer_queue: str,
    writer_definition: str,
    lines_written: Callable[[str], int],
) -> None:
    """A job writes lines on until markers/stop appears, while a filler job fills the
    server's disk until markers/release appears (then removes its file and exits 3). Every
    line is stored, in order, once space returns; `lines_written(log stream)` counts what the
    writer has written so far (outside the log store)."""
    batch = server.client()
    queue = make_environment(batch, max_vcpus=1)[0]
    writer = submit_job(batch, writer_queue, writer_definition)
    stream = wait_status(batch, writer, ("RUNNING",))["container"]["logStreamName"]
    go, filled, release, stop = (markers / name for name in ("go", "filled", "release", "stop"))
    fill = server.data_dir / "fill"
    fills = (
        f'{_wait_for(go)}; dd if=/dev/zero of="{fill}" bs=64k; touch "{filled}"; '
        f'{_wait_for(release)}; rm "{fill}"; exit 3'
    )
    filler = submit_job(batch, queue, define_job(batch, ["sh", "-c", fills]))
    true = define_job(batch, ["true"])
    waiter = submit_job(batch, queue, true)  # no capacity until the filler ends
    wait_status(batch, waiter, ("RUNNABLE",))
    go.touch()
    wait_for(filled.exists, timeout=RECOVERY_SECONDS, what="the disk filled")

    _assert_full(server, batch, queue, true)
    # The job writes on; the log store holds back what it has no room for.
    wait_for(
        lambda: lines_written(stream) - len(_stream_lines(server, stream)) > 50,
        timeout=RECOVERY_SECONDS,
        what="output the log store could not take",
    )
    assert describe_job(batch, waiter)["status"] == "RUNNABLE"

    release.touch()
    _assert_recovered(server, batch, queue, true)
    stop.touch()
    assert wait_status(batch, writer, timeout=RECOVERY_SECONDS)["status"] == "SUCCEEDED"
    lines = _stream_lines(server, stream)
    last = int(lines[-1].removeprefix("last "))
    assert lines == [f"line {i}" for i in range(1, last + 1)] + [f"last {last}"]
    ended = wait_status(batch, filler, timeout=RECOVERY_SECONDS)
    assert ended["attempts"][-1]["container"]["exitCode"] == 3
    assert wait_status(batch, waiter, timeout=RECOVERY_SECONDS)["status"] == "SUCCEEDED"
    _assert_quiet(server)


def _writes(stop: Path) -> list[str]:
    return [
        "sh",
        "-c",
        f'i=0; while [ ! -e "{stop}" ]; do i=$((i+1)); echo "line $i"; sleep 0.01; done; '
        'echo "last $i"',
    ]


def test_output_written_while_the_disk_is_full_is_all_stored(
    small_disk: Path, markers: Path, tmp_path: Path
) -> None:
    """The log store has no room for a running job's output (its output file is on another
    disk, so the job itself writes on): nothing is lost, every line is stored in order once
    the filler removes its file."""
    attempts = tmp_path / "attempts"
    attempts.mkdir()
    (small_disk / "attempts").symlink_to(attempts)
    server = ServerProcess(small_disk, *SERVER_ARGS)
    server.start()
    try:
        batch = server.client()
        writer_queue = make_environment(batch, max_vcpus=1)[0]

        def lines_written(stream: str) -> int:
            output = attempts / (stream.rsplit("/", 1)[1] + ".output")
            return output.read_bytes().count(b"\n")

        writes = define_job(batch, _writes(markers / "stop"))
        _output_is_kept_while_full(server, markers, writer_queue, writes, lines_written)
    finally:
        server.stop()


@pytest.mark.docker
def test_container_output_written_while_the_disk_is_full_is_all_stored(
    small_disk: Path, markers: Path
) -> None:
    """The same with the writer in a Docker container: the Docker runtime keeps the lines
    the log store has no room for, and appends them all once there is."""
    engine = require_engine()
    server = ServerProcess(small_disk, *SERVER_ARGS)
    server.start()
    try:
        batch = server.client()
        writer_queue = docker_queue(batch, max_vcpus=1)

        def lines_written(stream: str) -> int:
            container = engine.containers.get(f"batchyard-{stream.rsplit('/', 1)[1]}")
            return int(container.logs().count(b"\n"))

        writes = batch.register_job_definition(
            jobDefinitionName=unique("jd"),
            type="container",
            containerProperties={
                "image": IMAGE,
                "command": _writes(Path("/markers/stop")),
                "resourceRequirements": [
                    {"type": "VCPU", "value": "1"},
                    {"type": "MEMORY", "value": "64"},
                ],
                "volumes": [{"name": "markers", "host": {"sourcePath": str(markers)}}],
                "mountPoints": [{"sourceVolume": "markers", "containerPath": "/markers"}],
            },
        )["jobDefinitionArn"]
        _output_is_kept_while_full(server, markers, writer_queue, writes, lines_written)
    finally:
        server.stop()
        engine.close()


def _fill(path: Path, leave: int = 0) -> None:
    """Write `path` until the disk is full, then give back `leave` bytes."""
    dd = subprocess.run(
        ["dd", "if=/dev/zero", f"of={path}", "bs=64k"], capture_output=True, text=True
    )
    assert "No space left" in dd.stderr
    if leave:
        os.truncate(path, path.stat().st_size - leave)


def test_log_store_append_refused_for_space_stores_nothing_of_it(small_disk: Path) -> None:
    """An append the disk takes only part of stores none of it: the next append (a caller
    retrying with what it has) starts where the stored events end."""
    logs = FileLogStore(small_disk / "logs")
    logs.append("g", "s", [(1, "first")], 1)
    _fill(small_disk / "fill", leave=8192)
    refused = [(2, "x" * 1000) for _ in range(100)]  # 100 KB: more than the 8 KB left
    with pytest.raises(OSError, match="No space left") as raised:
        logs.append("g", "s", refused, 2)
    assert disk_full.is_disk_full(raised.value)
    assert logs.read("g", "s", 0, 10) == [LogEvent(1, "first", 1)]
    assert disk_full.episodes.full() == [str(small_disk / "logs")]

    (small_disk / "fill").unlink()
    logs.append("g", "s", [(3, "retried")], 3)
    expected = [LogEvent(1, "first", 1), LogEvent(3, "retried", 3)]
    assert logs.read("g", "s", 0, 10) == expected
    assert FileLogStore(small_disk / "logs").read("g", "s", 0, 10) == expected  # on disk too
    wait_for(lambda: disk_full.episodes.full() == [], what="the episode's end")
