"""Containment: every process an attempt of the process runtime starts ends with the attempt.

Two mechanisms (docs/runtimes.md says when each applies and what it guarantees):

- **cgroup**: each attempt runs in a cgroup v2 of its own, `<attempts cgroup>/<task id>`,
  where the attempts cgroup is `batchyard-<hash of the work directory>` under the server's own
  cgroup. A process cannot leave a cgroup by forking, `setsid` or double forking, and
  `cgroup.kill` ends all of them at once, including those forking while it runs.
- **subreaper**: where no writable cgroup v2 is available, a small reaper process (a fork of
  the launcher) sits between the launcher and the attempt's command as PR_SET_CHILD_SUBREAPER,
  so the attempt's orphans re-parent to it instead of to PID 1; once the command exits it kills
  every descendant it finds until none is left.

The launcher (launcher.py, run as `python -I -S`) imports this module, so it imports nothing
but the standard library.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
from collections.abc import Callable, Iterable

PR_SET_CHILD_SUBREAPER = 36
_CGROUP_PREFIX = "batchyard-"


# -- cgroup v2 --------------------------------------------------------------------------------


def _unescape(field: str) -> str:
    """mountinfo escapes space, tab, newline and backslash as octal (\\040)."""
    if "\\" not in field:
        return field
    return field.encode().decode("unicode_escape").encode("latin-1").decode()


def own_cgroup(pid: int | str = "self") -> str | None:
    """The directory of a process's cgroup v2 in the file system (e.g. `/sys/fs/cgroup/unified`
    on a hybrid host, `/sys/fs/cgroup/system.slice/x.service` on a pure-v2 one), found through
    /proc/<pid>/mountinfo; None without a cgroup v2 mount that shows it."""
    try:
        with open(f"/proc/{pid}/cgroup") as f:
            cgroups = f.read()
        with open(f"/proc/{pid}/mountinfo") as f:
            mountinfo = f.read()
    except OSError:
        return None
    return cgroup_directory(cgroups, mountinfo)


def cgroup_directory(cgroups: str, mountinfo: str) -> str | None:
    """Where the cgroup v2 named in /proc/<pid>/cgroup's text (its `0::` line) is mounted,
    from /proc/<pid>/mountinfo's text; None if no cgroup v2 mount shows it."""
    path = next((line[3:] for line in cgroups.splitlines() if line.startswith("0::")), None)
    if path is None or not path.startswith("/") or "/.." in path:
        return None  # no cgroup v2, or outside this cgroup namespace's view
    for line in mountinfo.splitlines():
        fields, _, after = line.partition(" - ")
        parts = fields.split()
        if len(parts) < 5 or after.split()[:1] != ["cgroup2"]:
            continue
        root, mount_point = _unescape(parts[3]), _unescape(parts[4])
        if root == "/":
            relative = path
        elif path == root or path.startswith(root + "/"):
            relative = path[len(root) :]
        else:
            continue
        relative = relative.rstrip("/")
        return mount_point.rstrip("/") + relative if relative else mount_point
    return None


def attempts_cgroup(work_dir: str) -> str | None:
    """Where the cgroups of the attempts of one work directory go: beside the server, under its
    own cgroup, so a service manager that stops the server's unit sees them as its own."""
    parent = own_cgroup()
    if parent is None:
        return None
    digest = hashlib.sha256(os.path.realpath(work_dir).encode()).hexdigest()[:16]
    return os.path.join(parent, _CGROUP_PREFIX + digest)


def create_cgroup(path: str) -> None:
    """Create an attempt's cgroup (and the attempts cgroup above it); one left by an earlier
    launcher is emptied first. Raises OSError where cgroups cannot be made or killed."""
    for _ in range(3):  # another launcher may remove an empty attempts cgroup meanwhile
        with contextlib.suppress(FileExistsError):
            os.mkdir(os.path.dirname(path), 0o755)
        try:
            os.mkdir(path, 0o755)
            break
        except FileExistsError:
            kill_cgroup(path)
            break
        except FileNotFoundError:
            continue
    if not os.path.exists(os.path.join(path, "cgroup.kill")):  # Linux < 5.14
        with contextlib.suppress(OSError):
            os.rmdir(path)
        raise OSError(f"{path}: cgroup.kill is not supported")


def move_to_cgroup(path: str, pid: int) -> None:
    """Move a process (all its threads) into the cgroup at path."""
    fd = os.open(os.path.join(path, "cgroup.procs"), os.O_WRONLY)
    try:
        os.write(fd, str(pid).encode())
    finally:
        os.close(fd)


def kill_cgroup(path: str) -> None:
    """SIGKILL every process in the cgroup; the kernel also kills those forking meanwhile."""
    try:
        fd = os.open(os.path.join(path, "cgroup.kill"), os.O_WRONLY)
    except FileNotFoundError:
        return
    try:
        os.write(fd, b"1")
    finally:
        os.close(fd)


def remove_cgroup(path: str) -> bool:
    """Remove an attempt's cgroup: True once it is gone, False while processes still leave it
    (zombies do not hold it)."""
    try:
        os.rmdir(path)
    except FileNotFoundError:
        return True
    except OSError:
        return False
    return True


def attempt_cgroups(base: str) -> list[str]:
    """The attempt cgroups under an attempts cgroup (their names are task ids)."""
    try:
        with os.scandir(base) as entries:
            return [entry.path for entry in entries if entry.is_dir(follow_symlinks=False)]
    except OSError:
        return []


# -- the subreaper ----------------------------------------------------------------------------


def become_subreaper() -> bool:
    """Make the calling process the reaper of its orphaned descendants (Linux >= 3.4)."""
    try:
        import ctypes

        return int(ctypes.CDLL(None, use_errno=True).prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)) == 0
    except (OSError, AttributeError):
        return False


def reap_attempt(command: int, record: Callable[[int], None]) -> int:
    """In the reaper (a subreaper): wait for the command's exit, reaping its orphans meanwhile;
    record the exit code while the command is still a zombie (so its pid cannot be reused),
    then end every descendant left. Returns the exit code (128 + signal when killed)."""
    while True:
        info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOWAIT)
        if info is None:  # only with WNOHANG
            continue
        if info.si_pid != command:
            os.waitpid(info.si_pid, 0)  # an orphan that ended on its own
            continue
        exited = info.si_code == os.CLD_EXITED
        code = info.si_status if exited else 128 + info.si_status
        with contextlib.suppress(OSError):
            os.killpg(command, signal.SIGKILL)  # its own process group: the cheap part
        record(code)
        os.waitpid(command, 0)
        end_descendants()
        return code


def end_descendants() -> None:
    """SIGKILL every descendant of this process and reap those that re-parent to it, until it
    has none. A process with no children has no descendants (an orphan re-parents to its
    nearest subreaper, this one), so only then is /proc scanned. Each round kills every
    descendant found, so at least one child dies per round; a descendant is signalled through a
    pidfd checked against the start time seen in the scan, so a pid reused meanwhile is never
    hit."""
    me = os.getpid()
    while True:
        try:
            while os.waitpid(-1, os.WNOHANG)[0] != 0:
                pass
        except ChildProcessError:
            return
        found = _descendants(me)
        for pid, start in found:
            _kill_verified(pid, start, me)
        if found:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(-1, 0)


def _stat(pid: int | str) -> tuple[int, int] | None:
    """(parent pid, start time in clock ticks since boot) of a process, None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
        fields = data[data.rindex(b")") + 2 :].split()
        return int(fields[1]), int(fields[19])
    except (OSError, ValueError, IndexError):  # gone, or gone while being read
        return None


def _descendants(ancestor: int) -> list[tuple[int, int]]:
    """(pid, start time) of every process below ancestor, zombies included."""
    children: dict[int, list[tuple[int, int]]] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            info = _stat(name)
            if info is not None:
                children.setdefault(info[0], []).append((int(name), info[1]))
    found: list[tuple[int, int]] = []
    below: Iterable[tuple[int, int]] = children.get(ancestor, [])
    stack = list(below)
    while stack:
        pid, start = stack.pop()
        found.append((pid, start))
        stack.extend(children.get(pid, []))
    return found


def kill_process(pid: int, start: int) -> None:
    """SIGKILL the process with this pid and start time, if it still exists."""
    _kill_verified(pid, start, os.getpid())


def _kill_verified(pid: int, start: int, me: int) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (OSError, AttributeError):  # no pidfds (Linux < 5.3): only our own children are safe
        info = _stat(pid)
        if info == (me, start):
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        return
    try:
        info = _stat(pid)
        if info is not None and info[1] == start:
            with contextlib.suppress(OSError):
                signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    finally:
        os.close(pidfd)
