"""A server's API-only processes (`--api-processes`), observed from /proc: which are alive, and
which one holds the server's end of a connection (the accepted socket's inode among its
descriptors), so the server needs no test-only API.
"""

from __future__ import annotations

import http.client
import os
from pathlib import Path

from tests.fixtures import (
    ServerProcess,
    wait_for,
)


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def api_pids(main_pid: int) -> list[int]:
    """The live API-only processes the main server process started."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == main_pid and b"--internal-api-process" in cmdline and alive(int(entry.name)):
            found.append(int(entry.name))
    return sorted(found)


def wait_api_pids(server: ServerProcess, count: int) -> list[int]:
    assert server.process is not None
    main = server.process.pid
    return wait_for(
        lambda: pids if len(pids := api_pids(main)) == count else None,
        timeout=30,
        what=f"{count} API processes",
    )


def serving_pid(connection: http.client.HTTPConnection, port: int, candidates: list[int]) -> int:
    """The process holding the server's end of this (accepted) connection."""
    assert connection.sock is not None
    client_port = connection.sock.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if int(local.split(":")[1], 16) == port and int(remote.split(":")[1], 16) == client_port:
            inode = fields[9]
    assert inode is not None, "the server's end of the connection is not in /proc/net/tcp"
    target = f"socket:[{inode}]"
    for pid in candidates:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no process of {candidates} holds {target}")
