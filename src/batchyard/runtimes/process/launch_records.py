"""What the process runtime's launcher records of each attempt it starts, and the lock that
orders its starts against a restarted server's recovery.

Beside each attempt directory `<task id>/`, `<task id>.exit_code` holds the attempt's record,
two fixed-width lines created blank: the exit code (written in place when the attempt ends),
and `<pid> <start time in clock ticks> <started at, epoch ms>`, written in place by the
launcher right after the spawn (in place: no new disk block, so a full disk cannot refuse it).
So the attempt can be found by its task id alone, which the store knows from the moment the
attempt is placed, even when the server died before it stored the runtime handle.

The launcher starts attempts only while holding the launch lock (`.launch.lock` in the work
directory), and only while its server is alive. A recovering server takes the lock once: after
that, every attempt an earlier launcher started has its record, and no earlier launcher starts
another (its server is gone). So "no record" means "never ran and never will".
"""

from __future__ import annotations

import fcntl
import os
from dataclasses import dataclass

EXIT_CODE = ".exit_code"  # the record's file, beside the attempt directory
# The attempt's stdout and stderr, beside (not inside) its directory, which stays the job's own.
OUTPUT = ".output"
NO_EXIT_CODE = b"   \n"  # an exit code is written over it in place: "%3d\n"
BLANK_RECORD = NO_EXIT_CODE + b" " * 63 + b"\n"  # the launch line starts at len(NO_EXIT_CODE)
LAUNCH_LOCK = ".launch.lock"


@dataclass(frozen=True, slots=True)
class LaunchRecord:
    pid: int
    start_ticks: int  # the process's start time, field 22 of /proc/<pid>/stat
    started_at: int  # epoch ms, the launcher's clock
    exit_code: int | None  # None while it runs (or if it died unrecorded)


def read_exit_code(directory: str) -> int | None:
    """The attempt's recorded exit code, None if none is recorded (or no record exists)."""
    try:
        with open(directory + EXIT_CODE, "rb") as f:
            return _exit_code(f.read(len(NO_EXIT_CODE)))
    except OSError:
        return None


def read_launch_record(directory: str) -> LaunchRecord | None:
    """The record of the attempt whose directory is `directory`, None if it never started
    (a directory prepared but not yet started, a spare, or nothing at all)."""
    try:
        with open(directory + EXIT_CODE, "rb") as f:
            data = f.read(len(BLANK_RECORD))
    except OSError:
        return None
    head, _, rest = data.partition(b"\n")
    fields = rest.split(b"\n", 1)[0].split()
    if len(fields) != 3:
        return None
    try:
        pid, start_ticks, started_at = (int(field) for field in fields)
    except ValueError:
        return None
    return LaunchRecord(pid, start_ticks, started_at, _exit_code(head))


def wait_for_earlier_launches(work_dir: str) -> None:
    """Block until no earlier launcher is starting an attempt under `work_dir`: from then on
    every attempt started there has its record, and earlier launchers start no more."""
    fd = os.open(os.path.join(work_dir, LAUNCH_LOCK), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _exit_code(head: bytes) -> int | None:
    try:
        return int(head.strip())
    except ValueError:
        return None
