"""What the process runtime reads of processes and the host in /proc (proc(5)), and the one
signal it sends a process group: whether an attempt's process runs, whether its group is still
ours to signal, and the host's memory."""

from __future__ import annotations

import contextlib
import os


def proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time in clock ticks since boot), None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])  # fields 3, 4 and 22 of proc(5)


def is_running(pid: int, start_ticks: int) -> bool:
    """Alive, or a zombie whose launcher is about to record its exit code."""
    info = proc_stat(pid)
    if info is None or info[2] != start_ticks:
        return False
    state, parent, _ = info
    return state not in ("Z", "X") or (state == "Z" and parent != 1)


def group_is_ours(pid: int, start_ticks: int) -> bool:
    """Whether signalling process group `pid` reaches our attempt and nothing else. A live pid
    with another start time was reused, which Linux allows only once our group is empty."""
    info = proc_stat(pid)
    return info is None or info[2] == start_ticks


def signal_group(pid: int, signo: int) -> None:
    """Signal process group `pid`; one that is gone (or not ours to signal) is left alone."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signo)


def meminfo_total_mib() -> int:
    """The host's memory, from /proc/meminfo."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal missing from /proc/meminfo")
