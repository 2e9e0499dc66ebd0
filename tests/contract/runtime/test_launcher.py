"""The process runtime's launcher on its own (runtimes/process/launcher.py): started as the
runtime starts it, driven over its pipes with the JSON lines of its protocol, no server."""

from __future__ import annotations

import json
import os
import select
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchyard.runtimes.process.launch_records import (
    OUTPUT,
    read_exit_code,
    read_launch_record,
)
from batchyard.runtimes.process.launcher_client import launcher_command

DEADLINE_S = 30.0
TASK = "0123456789abcdef0123456789abcdef"
OTHER = "fedcba9876543210fedcba9876543210"


class Pipes:
    """A launcher process and a line reader of its replies."""

    def __init__(self, process: subprocess.Popen[bytes]) -> None:
        self.process = process
        self._buffer = b""

    def send(self, message: dict[str, Any]) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(json.dumps(message).encode() + b"\n")
        self.process.stdin.flush()

    def receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        fd = self.process.stdout.fileno()
        deadline = time.monotonic() + DEADLINE_S
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            assert left > 0, "the launcher did not answer in time"
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                data = os.read(fd, 1 << 16)
                assert data, "the launcher closed its end"
                self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        answer: dict[str, Any] = json.loads(line)
        return answer


@pytest.fixture
def launcher(tmp_path: Path) -> Iterator[Pipes]:
    command = launcher_command(str(tmp_path), None)
    with subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE) as process:
        yield Pipes(process)
        assert process.stdin is not None
        process.stdin.close()  # the launcher exits once its attempts have ended
        process.wait(timeout=DEADLINE_S)


def request(tmp_path: Path, task_id: str, *argv: str) -> dict[str, Any]:
    return {
        "id": task_id,
        "dir": str(tmp_path / task_id),
        "argv": list(argv),
        "env": {"PATH": os.environ.get("PATH", "/usr/bin:/bin")},
    }


def test_an_attempt_is_started_recorded_and_reaped(launcher: Pipes, tmp_path: Path) -> None:
    launcher.send(request(tmp_path, TASK, "/bin/sh", "-c", "echo out; echo err >&2; exit 3"))
    started = launcher.receive()
    assert (started["id"], started["cgroup"]) == (TASK, None)  # no cgroup given: a reaper
    directory = str(tmp_path / TASK)
    record = read_launch_record(directory)
    assert record is not None
    assert (record.pid, record.start_ticks) == (started["pid"], started["start"])
    assert launcher.receive() == {"id": TASK, "exit": 3}
    assert read_exit_code(directory) == 3
    assert Path(directory + OUTPUT).read_bytes() == b"out\nerr\n"
    assert os.listdir(directory) == []  # the job's own directory, empty at start


def test_a_command_that_cannot_run_is_answered_with_docker_s_words(
    launcher: Pipes, tmp_path: Path
) -> None:
    launcher.send(request(tmp_path, TASK, str(tmp_path / "no-such-program")))
    answer = launcher.receive()
    assert answer["id"] == TASK
    assert answer["error"] == f'exec: "{tmp_path / "no-such-program"}": no such file or directory'


def test_a_released_directory_is_taken_again_as_a_spare(launcher: Pipes, tmp_path: Path) -> None:
    launcher.send(request(tmp_path, TASK, "/bin/true"))
    assert launcher.receive()["id"] == TASK
    assert launcher.receive() == {"id": TASK, "exit": 0}
    launcher.send({"release": str(tmp_path / TASK)})
    launcher.send(request(tmp_path, OTHER, "/bin/true"))
    assert launcher.receive()["id"] == OTHER
    assert launcher.receive() == {"id": OTHER, "exit": 0}
    assert not (tmp_path / TASK).exists()  # renamed into the spares, then into place
    assert (tmp_path / OTHER).is_dir()
    assert read_exit_code(str(tmp_path / OTHER)) == 0


def test_attempts_outlive_the_server_s_end_and_the_launcher_waits_for_them(
    launcher: Pipes, tmp_path: Path
) -> None:
    marker = tmp_path / "go"
    loop = f"until [ -e {marker} ]; do sleep 0.05; done; exit 7"
    launcher.send(request(tmp_path, TASK, "/bin/sh", "-c", loop))
    assert launcher.receive()["id"] == TASK
    assert launcher.process.stdin is not None
    launcher.process.stdin.close()  # the server is gone
    with pytest.raises(subprocess.TimeoutExpired):
        launcher.process.wait(timeout=0.5)
    marker.touch()
    assert launcher.process.wait(timeout=DEADLINE_S) == 0
    assert read_exit_code(str(tmp_path / TASK)) == 7  # recorded with no server to tell
