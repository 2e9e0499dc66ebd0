"""The process runtime: each attempt runs as a local process group; its output goes to the logs.

Attempts are spawned and reaped by a small launcher process that outlives the server and records
exit codes beside each attempt's directory, so a restarted server re-attaches. Decides nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import os
import re
import shutil
import signal
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from batchyard.domain.clock import Clock
from batchyard.domain.model import Resources
from batchyard.logs import LogStore
from batchyard.runtimes import containment
from batchyard.runtimes.base import (
    ESSENTIAL_CONTAINER_EXITED,
    AttemptExited,
    AttemptRef,
    AttemptSpec,
    AttemptStarted,
    Report,
    RuntimeEvent,
    deliver,
    failed_to_start,
    host_lost,
)
from batchyard.runtimes.launch_records import (
    BLANK_RECORD,
    EXIT_CODE,
    LAUNCH_LOCK,
    read_exit_code,
    read_launch_record,
    wait_for_earlier_launches,
)
from batchyard.runtimes.output import Event, LineCutter, StreamWriter

log = logging.getLogger(__name__)

_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
# Beside (not inside) the attempt directory, which stays the job's own, empty at start.
_OUTPUT = ".output"
_LAUNCHER_ARGS = (_OUTPUT, EXIT_CODE, BLANK_RECORD.decode())
_TASK_ID = re.compile("[0-9a-f]{32}")  # an attempt directory's name (lifecycle.new_task_id)
_SPARE = ".spare"  # under the work directory: the launcher's pool of empty attempt directories

_READ_CHUNK = 256 * 1024
_TICK_BUDGET = 4 * 1024 * 1024  # bytes read per attempt per tick, so one chatty job can't stall
_FINISH_BUDGET = 1024 * 1024  # bytes drained inline at exit before handing off to a task

HOST_LOST_NOT_FOUND = "Host lost: the attempt's process was not found after a restart"
HOST_LOST_NO_EXIT_CODE = "Host lost: the attempt's process ended without recording an exit code"
LAUNCHER_EXITED = "the process launcher exited"


# --------------------------------------------------------------------------------------------
# The launcher program. It runs in an interpreter of its own (python -I -S -c <source>), so it
# must not use anything outside this function but `containment`, whose source the program
# carries (runtimes/containment.py, standard library only). One per ProcessRuntime.open().


def _launcher_main() -> None:
    """Spawn attempts on request (JSON lines on stdin) in their directories, record each
    attempt's pid and start time, then its exit code before reaping it, in <dir>.exit_code
    (launch_records.py), and report on stdout. Attempts start only under the launch lock and
    while the server is there to hear of them. Directories come from a pool of spares, and go
    back to it on a release request once the server has stored the exit: on some disks
    creating and removing inodes costs milliseconds, renaming them microseconds, and this
    process, not the server's, pays for it. What an attempt left in its directory goes as soon
    as it exits, and its output file once the server asks (scrub): the disk they fill may be
    the one its exit must be stored on.
    Each attempt runs in a cgroup of its own under the attempts cgroup named by argv[6], or,
    without one (empty, or not writable here), under a reaper process of its own (see
    containment.py); either way whatever the attempt started ends when its command exits.
    Exits once stdin is closed and its attempts have ended, so attempts outlive the server."""
    import contextlib
    import fcntl
    import functools
    import itertools
    import json
    import os
    import queue
    import select
    import selectors
    import shutil
    import signal
    import stat
    import sys
    import threading
    import time
    import warnings

    output_suffix, exit_code_suffix = sys.argv[1], sys.argv[2]
    blank_record = sys.argv[3].encode()
    spare_dir, launch_lock_path = sys.argv[4], sys.argv[5]
    launch_offset = blank_record.index(b"\n") + 1  # the launch line, after the exit code's
    # Cgroups until one cannot be made or entered here; then reapers, for this launcher's life.
    attempts_cgroup = sys.argv[6] or None
    cgroups = {"base": attempts_cgroup, "home": containment.own_cgroup()}
    removals: dict[str, float] = {}  # killed attempt cgroups to remove -> when to give up
    spare_high = 64  # spares kept at most; the rest of what comes back is removed
    os.chdir("/")
    for ignored in (signal.SIGINT, signal.SIGHUP):  # the terminal's, meant for the server
        signal.signal(ignored, signal.SIG_IGN)
    # Orphans of an attempt are reparented here (not to PID 1) and reaped.
    containment.become_subreaper()
    # Python ignores these; the attempt must get the default dispositions back.
    reset = {signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGHUP}
    devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda signo, frame: None)
    os.set_blocking(1, False)
    # Registered for no event: poll() still reports POLLERR once the server's end is closed.
    server_end = select.poll()
    server_end.register(1, 0)
    launch_lock = os.open(launch_lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    selector = selectors.DefaultSelector()
    selector.register(0, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    # pid of the command or of its reaper -> (task id, directory, cgroup, command, its start)
    attempts: dict[int, tuple[str, str, str | None, int, int]] = {}
    # reapers whose answer is not read yet -> (task id, directory, program, record, pipe)
    unsettled: dict[int, tuple[str, str, str, int, int]] = {}
    out = bytearray()
    state = {"reading": True, "server_gone": False, "writing": False}
    pending = b""
    prefix = f"{os.getpid()}-"
    names = itertools.count()
    spares: list[str] = []
    fresh_mode: list[int] = []  # a new directory's mode under this process's umask

    def server_there() -> bool:
        if not state["server_gone"] and server_end.poll(0):
            state["server_gone"] = True
            out.clear()
        return not state["server_gone"]

    def reply(message: dict[str, Any]) -> None:
        if not state["server_gone"]:
            out.extend(json.dumps(message).encode() + b"\n")

    def flush() -> None:
        while out and not state["server_gone"]:
            try:
                del out[: os.write(1, out)]
            except BlockingIOError:
                break
            except OSError:  # the server is gone: keep recording exit codes only
                state["server_gone"] = True
                out.clear()
        if bool(out) != state["writing"]:
            state["writing"] = bool(out)
            if out:
                selector.register(1, selectors.EVENT_WRITE)
            else:
                selector.unregister(1)

    def remove(path: str) -> None:
        for suffix in (output_suffix, exit_code_suffix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            shutil.rmtree(path, ignore_errors=True)

    # Whole trees (what a job left in its directory, spares of earlier launchers) are removed
    # on a thread of their own, so a big one never holds up starting or reaping attempts.
    # (path, True): remove it all; (path, False): scrub, keeping the directory and exit code.
    doomed: queue.SimpleQueue[tuple[str, bool] | None] = queue.SimpleQueue()

    def remove_doomed() -> None:
        with os.scandir(spare_dir) as entries:
            stale = {e.name.split(".")[0] for e in entries if not e.name.startswith(prefix)}
        for name in stale:
            remove(os.path.join(spare_dir, name))
        while (item := doomed.get()) is not None:
            path, whole = item
            if whole:
                remove(path)
            else:
                empty(path)

    def empty(directory: str) -> None:
        """Remove what is in the directory, keeping it: recovery looks for it until the
        exit is stored, and then takes it back as a spare."""
        with contextlib.suppress(OSError), os.scandir(directory) as entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        shutil.rmtree(entry.path, ignore_errors=True)
                    else:
                        os.unlink(entry.path)
                except OSError:
                    pass

    def scrub(directory: str, output: bool) -> None:
        """The attempt has ended: free the space of what it left in its directory, and of
        its output file once the server has it all in the log store, before the exit is
        stored (which may wait for that very space)."""
        if output:
            with contextlib.suppress(OSError):
                os.truncate(directory + output_suffix, 0)
        try:
            with os.scandir(directory) as entries:
                if next(entries, None) is None:
                    return
        except OSError:
            return
        doomed.put((directory, False))

    def spare_name() -> str:
        return os.path.join(spare_dir, prefix + str(next(names)))

    def create(directory: str) -> None:
        os.mkdir(directory, 0o755)
        if not fresh_mode:
            fresh_mode.append(stat.S_IMODE(os.stat(directory).st_mode))
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        os.close(os.open(directory + output_suffix, flags, 0o644))
        fd = os.open(directory + exit_code_suffix, flags, 0o644)
        try:
            os.write(fd, blank_record)
        finally:
            os.close(fd)

    def move(source: str, target: str) -> None:
        for suffix in (output_suffix, exit_code_suffix, ""):
            os.rename(source + suffix, target + suffix)

    def prepare(directory: str) -> None:
        """The attempt's directory and its two files, empty: a spare's, moved, or new ones."""
        if os.path.lexists(directory):  # left by a server that died before cleaning up
            remove(directory)
        if spares:
            spare = spares.pop()
            try:
                move(spare, directory)
                return
            except OSError:
                remove(directory)
                remove(spare)
        create(directory)

    def release(directory: str) -> None:
        """The attempt's exit is stored: its directory and files become a spare again when
        the job left nothing in it, else they go."""
        try:
            with os.scandir(directory) as entries:
                empty = next(entries, None) is None
            wanted = empty and len(spares) < spare_high and bool(fresh_mode)
            if wanted and stat.S_IMODE(os.stat(directory).st_mode) == fresh_mode[0]:
                os.truncate(directory + output_suffix, 0)
                fd = os.open(directory + exit_code_suffix, os.O_WRONLY)
                try:
                    os.pwrite(fd, blank_record, 0)
                finally:
                    os.close(fd)
                spare = spare_name()
                move(directory, spare)
                spares.append(spare)
                return
        except OSError:
            pass
        if empty_of_files(directory):
            remove(directory)
        else:
            doomed.put((directory, True))

    def empty_of_files(directory: str) -> bool:
        try:
            os.rmdir(directory)  # fails unless empty: the cheap case, done here
        except FileNotFoundError:
            return True
        except OSError:
            return False
        for suffix in (output_suffix, exit_code_suffix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory + suffix)
        return True

    def run(request: dict[str, Any]) -> None:
        task_id, directory, argv = request["id"], request["dir"], request["argv"]
        try:
            prepare(directory)
            record = os.open(directory + exit_code_suffix, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as error:
            reply({"id": task_id, "error": f"preparing {directory}: {error}"})
            return
        try:
            spawn(task_id, directory, argv, request["env"], record)
        finally:
            os.close(record)

    def spawn(task_id: str, directory: str, argv: list[str], env: Any, record: int) -> None:
        cgroup = None
        try:
            fd = os.open(directory + output_suffix, os.O_WRONLY | os.O_CLOEXEC)
            try:
                cgroup = enter_cgroup(task_id)
                if cgroup is None:
                    reaper, ready = spawn_reaped(argv, env, directory, fd)
                    # Its answer is read once the batch is sent off (settle), so reapers of
                    # one batch start their commands side by side.
                    unsettled[reaper] = (task_id, directory, argv[0], os.dup(record), ready)
                    return
                try:
                    command = spawn_command(argv, env, directory, fd)
                finally:
                    if not leave_cgroup(cgroup):
                        cgroup = None
            finally:
                os.close(fd)
        except (OSError, ValueError) as error:
            if cgroup is not None:
                containment.remove_cgroup(cgroup)
            reason = getattr(error, "strerror", None) or str(error)
            reply({"id": task_id, "error": f'exec: "{argv[0]}": {reason.lower()}'})
            release(directory)
            return
        # A child of ours, not yet reaped: its start time is still its own.
        started(task_id, directory, record, command, (command, start_of(command)), cgroup)

    def started(
        task_id: str,
        directory: str,
        record: int,
        pid: int,
        command: tuple[int, int],
        cgroup: str | None,
    ) -> None:
        """Record the start of the command (pid, start time), then report it; pid is what
        this process waits for: the command, or its reaper."""
        launched = b"%d %d %d" % (*command, time.time_ns() // 1_000_000)
        try:  # in place, within the blank line: recovery finds the attempt by this
            os.pwrite(record, launched, launch_offset)
        except OSError as error:  # unrecorded, a restart could not find it: it must not run
            if cgroup is not None:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
                kill_cgroup(cgroup)
            else:  # its reaper then ends the rest
                containment.kill_process(*command)
            reply({"id": task_id, "error": f"recording the start: {error.strerror or error}"})
            release(directory)
            return
        attempts[pid] = (task_id, directory, cgroup, *command)
        reply({"id": task_id, "pid": command[0], "start": command[1], "cgroup": cgroup})

    def settle(reaper: int) -> None:
        """Hear from a reaper whether its command started."""
        task_id, directory, program, record, ready = unsettled.pop(reaper)
        try:
            answer = b""
            try:
                while chunk := os.read(ready, 4096):
                    answer += chunk
            finally:
                os.close(ready)
            if answer[:1].isdigit():
                command, start = answer.split()
                started(task_id, directory, record, reaper, (int(command), int(start)), None)
                return
            reason = answer[1:].decode(errors="replace") or "the reaper process died"
            reply({"id": task_id, "error": f'exec: "{program}": {reason.lower()}'})
            release(directory)
        finally:
            os.close(record)

    def record_exit(directory: str, code: int, create: bool = True) -> None:
        # In place, fixed width: rewriting an existing block is cheap on any disk.
        flags = os.O_WRONLY | (os.O_CREAT if create else 0)
        with contextlib.suppress(OSError):
            fd = os.open(directory + exit_code_suffix, flags, 0o644)
            try:
                os.pwrite(fd, b"%3d\n" % code, 0)
            finally:
                os.close(fd)

    def enter_cgroup(task_id: str) -> str | None:
        """Move this process into a new cgroup for the attempt, so that what it spawns next
        starts there (posix_spawn cannot place a child itself). None: reapers from now on."""
        base, home = cgroups["base"], cgroups["home"]
        if base is None or home is None:
            return None
        path = os.path.join(base, task_id)
        try:
            containment.create_cgroup(path)
            containment.move_to_cgroup(path, os.getpid())
        except OSError:
            containment.remove_cgroup(path)
            cgroups["base"] = None
            return None
        return path

    def leave_cgroup(path: str) -> bool:
        """Back to where the server put us. False: stuck in the attempt's cgroup, which then
        must never be killed (it would end this process), and no more cgroups."""
        for target in (cgroups["home"], cgroups["base"]):
            try:
                containment.move_to_cgroup(str(target), os.getpid())
                return True
            except OSError:
                continue
        cgroups["base"] = None
        return False

    def kill_cgroup(path: str) -> None:
        with contextlib.suppress(OSError):
            containment.kill_cgroup(path)
        removals[path] = time.monotonic() + 60

    def remove_cgroups() -> None:
        """Killed processes take a moment to leave: their cgroups go once they have."""
        now = time.monotonic()
        for path, give_up in list(removals.items()):
            if containment.remove_cgroup(path) or now > give_up:  # recovery removes it later
                del removals[path]

    def spawn_command(argv: list[str], env: Any, directory: str, fd: int) -> int:
        os.chdir(directory)  # posix_spawn cannot chdir; this process is ours alone
        try:
            return os.posix_spawn(
                argv[0],
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, devnull, 0),
                    (os.POSIX_SPAWN_DUP2, fd, 1),
                    (os.POSIX_SPAWN_DUP2, fd, 2),
                ],
                setsid=True,
                setsigdef=reset,
                setsigmask=(),
            )
        finally:
            os.chdir("/")

    def start_of(pid: int) -> int:
        """A child's start time (clock ticks since boot; field 22 of proc(5))."""
        with open(f"/proc/{pid}/stat", "rb") as proc_stat:
            data = proc_stat.read()
        return int(data[data.rindex(b")") + 2 :].split()[19])

    def spawn_reaped(argv: list[str], env: Any, directory: str, fd: int) -> tuple[int, int]:
        """Fork a reaper of its own for the command, which spawns it: (the reaper's pid, a pipe
        on which it answers "<command pid> <start time>", or "E<error>")."""
        ready_r, ready_w = os.pipe()
        with warnings.catch_warnings():  # the remover thread never runs in the child
            warnings.simplefilter("ignore", DeprecationWarning)
            reaper = os.fork()
        if reaper == 0:
            code = 127
            try:
                # Hold nothing of ours but what the command needs: not the server's pipes (it
                # learns of our end by their closing), nor the launch lock (a restarted
                # server's recovery waits for it).
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                os.dup2(devnull, 0)
                os.dup2(devnull, 1)
                keep = {0, 1, 2, devnull, fd, ready_w}
                for name in os.listdir("/proc/self/fd"):
                    if int(name) not in keep:
                        with contextlib.suppress(OSError):
                            os.close(int(name))
                containment.become_subreaper()
                try:
                    command = spawn_command(argv, env, directory, fd)
                except (OSError, ValueError) as error:
                    reason = getattr(error, "strerror", None) or str(error)
                    os.write(ready_w, b"E" + reason.encode())
                    raise
                # Read before the reaper waits: once reaped, the command's pid means nothing.
                os.write(ready_w, b"%d %d" % (command, start_of(command)))
                os.close(ready_w)
                record = functools.partial(record_exit, directory, create=False)
                code = containment.reap_attempt(command, record)
            finally:
                os._exit(code)
        os.close(ready_w)  # before the next fork: its reaper must not hold this one's pipe
        return reaper, ready_r

    def adopt(attempt: tuple[str, str, str | None, int, int]) -> None:
        """A reaper was killed: its command, re-parented here, is watched as a child of ours
        (what it started is then no longer contained)."""
        task_id, directory, cgroup, command, start = attempt
        try:
            with open(f"/proc/{command}/stat", "rb") as proc_stat:
                data = proc_stat.read()
        except OSError:
            data = b")"
        fields = data[data.rindex(b")") + 2 :].split()
        if len(fields) > 19 and (int(fields[1]), int(fields[19])) == (os.getpid(), start):
            attempts[command] = (task_id, directory, cgroup, command, start)
            return
        try:  # gone too: the reaper may have recorded its exit before it was killed
            with open(directory + exit_code_suffix, "rb") as recorded:
                code = int(recorded.readline().strip())
        except (OSError, ValueError):
            code = 128 + signal.SIGKILL
        reply({"id": task_id, "exit": code})
        record_exit(directory, code)
        scrub(directory, False)

    def reap() -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            if pid in unsettled:  # it answered before it exited
                settle(pid)
            attempt = attempts.pop(pid, None)
            exited = info.si_code == os.CLD_EXITED
            if attempt is not None and pid != attempt[3] and not exited:
                adopt(attempt)
            elif attempt is not None:
                task_id, directory, cgroup = attempt[:3]
                # The job ends with its command. A reaper has ended the rest already.
                if pid == attempt[3]:
                    # Still a zombie, so the group id is ours: the cheap part first.
                    with contextlib.suppress(OSError):
                        os.killpg(pid, signal.SIGKILL)
                if cgroup is not None:
                    kill_cgroup(cgroup)
                code = info.si_status if exited else 128 + info.si_status
                reply({"id": task_id, "exit": code})
                flush()  # the server hears of the exit before we do the slower bookkeeping
                record_exit(directory, code)
                scrub(directory, False)
            os.waitpid(pid, 0)

    os.makedirs(spare_dir, exist_ok=True)
    # A daemon: should this loop fail, the launcher exits (the server then follows its attempts
    # itself) instead of waiting forever for a remover nobody will stop.
    remover = threading.Thread(target=remove_doomed, name="remover", daemon=True)
    remover.start()
    while state["reading"] or attempts or removals:
        for key, _ in selector.select(0.05 if removals else None):
            if key.fd == 0:
                data = os.read(0, 1 << 16)
                if not data:
                    state["reading"] = False
                    selector.unregister(0)
                    doomed.put(None)  # the server is gone: no more spares are needed
                    for spare in spares:
                        remove(spare)
                    spares.clear()
                    continue
                *lines, pending = (pending + data).split(b"\n")
                # A restarted server's recovery takes this lock once, when its predecessor
                # (ours) is gone: every attempt we start is recorded before it looks, or not
                # started at all, so it never declares lost what runs and starts it again.
                fcntl.flock(launch_lock, fcntl.LOCK_EX)
                try:
                    starting = server_there()
                    for line in lines:
                        request = json.loads(line)
                        if "release" in request:
                            release(request["release"])
                        elif "scrub" in request:
                            scrub(request["scrub"], True)
                        elif starting:
                            run(request)
                            # Attempts started by earlier requests may have ended meanwhile:
                            # report their exits now (reap flushes), not after the whole batch.
                            reap()
                    for reaper in list(unsettled):  # all recorded before the lock goes
                        settle(reaper)
                finally:
                    fcntl.flock(launch_lock, fcntl.LOCK_UN)
            elif key.fd == wake_r:
                try:
                    while os.read(wake_r, 4096):
                        pass
                except BlockingIOError:
                    pass
                reap()
        remove_cgroups()
        flush()
    remover.join()
    if attempts_cgroup is not None:  # only if empty: another launcher may be using it
        containment.remove_cgroup(attempts_cgroup)


def _launcher_source() -> str:
    # Annotations stay unevaluated, as in this module. `containment` becomes a module of the
    # program's own, from its source: the launcher cannot import batchyard.
    body = inspect.getsource(_launcher_main)
    return (
        "from __future__ import annotations\n"
        "import types\n"
        "containment = types.ModuleType('containment')\n"
        f"exec(compile({inspect.getsource(containment)!r}, {containment.__file__!r}, 'exec'),"
        " containment.__dict__)\n"
        f"{body}\n_launcher_main()\n"
    )


class _Launcher:
    """The server's end of one launcher process: JSON lines both ways over two pipes."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        on_message: Callable[[dict[str, Any]], None],
        on_gone: Callable[[_Launcher], None],
        work_dir: str,
        attempts_cgroup: str | None,
    ) -> None:
        self._loop = loop
        self._on_message = on_message
        self._on_gone = on_gone
        request_r, self._request_w = os.pipe()
        self._reply_r, reply_w = os.pipe()
        source = _launcher_source()
        dirs = (os.path.join(work_dir, _SPARE), os.path.join(work_dir, LAUNCH_LOCK))
        try:
            self.pid = os.posix_spawn(
                sys.executable,
                [
                    *(sys.executable, "-I", "-S", "-c", source, *_LAUNCHER_ARGS),
                    *(*dirs, attempts_cgroup or ""),
                ],
                {"PATH": os.environ.get("PATH", _DEFAULT_PATH)},
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, request_r, 0),
                    (os.POSIX_SPAWN_DUP2, reply_w, 1),
                ],
                setsid=True,  # out of the server's terminal session: Ctrl-C is the server's
            )
        finally:
            os.close(request_r)
            os.close(reply_w)
        # The launcher is our child: reap it whenever it ends, even after we closed.
        threading.Thread(target=self._reap, daemon=True, name="launcher-reaper").start()
        os.set_blocking(self._request_w, False)
        os.set_blocking(self._reply_r, False)
        self._unsent = bytearray()
        self._flush_due = False
        self._received = b""
        self.alive = True
        loop.add_reader(self._reply_r, self._read)

    def _reap(self) -> None:
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)

    def send(self, message: dict[str, Any]) -> None:
        if not self.alive:
            raise RuntimeError(LAUNCHER_EXITED)
        self._unsent.extend(json.dumps(message).encode() + b"\n")
        # Written once the loop has run what is ready: the starts of one dispatch round go
        # to the launcher in one write, which wakes it once.
        if not self._flush_due:
            self._flush_due = True
            self._loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        self._flush_due = False
        if self.alive:
            self._flush()

    def _flush(self) -> None:
        try:
            while self._unsent:
                del self._unsent[: os.write(self._request_w, self._unsent)]
        except BlockingIOError:
            self._loop.add_writer(self._request_w, self._flush)
            return
        except OSError:
            self._unsent.clear()  # gone: _read sees the end of its output and reports it
        self._loop.remove_writer(self._request_w)

    def _read(self) -> None:
        try:
            data = os.read(self._reply_r, 1 << 16)
        except BlockingIOError:
            return
        if not data:
            self._shutdown()
            self._on_gone(self)
            return
        *lines, self._received = (self._received + data).split(b"\n")
        for line in lines:
            try:
                self._on_message(json.loads(line))
            except Exception:
                log.exception("Handling launcher message %r failed", line)

    def close(self) -> None:
        """Let the launcher finish: it exits once its attempts have ended. Requests not yet
        written are dropped: those attempts never start, and recovery reports them lost."""
        self._shutdown()

    def _shutdown(self) -> None:
        if not self.alive:
            return
        self.alive = False
        self._loop.remove_reader(self._reply_r)
        self._loop.remove_writer(self._request_w)
        os.close(self._reply_r)
        os.close(self._request_w)


# --------------------------------------------------------------------------------------------
# Process bookkeeping


class _CannotStart(Exception):
    pass


@dataclass(eq=False, slots=True)
class _Attempt:
    job_id: str
    task_id: str
    output: StreamWriter
    directory: str  # the job's working directory; control files sit beside it
    pid: int  # the command's process, leader of its own process group
    start_ticks: int
    own: bool  # our launcher's child: its exit is pushed to us, else we poll for it
    out_fd: int | None
    offset: int = 0  # bytes of the output file consumed
    lines: LineCutter = field(default_factory=LineCutter)
    stop_signal: int | None = None
    escalation: asyncio.TimerHandle | None = None
    found_running: bool = True
    ended: bool = False
    cgroup: str | None = None  # its own cgroup; None: a reaper process contains it


def _proc_stat(pid: int) -> tuple[str, int, int] | None:
    """(state, parent pid, start time in clock ticks since boot), None if there is none."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rindex(b")") + 2 :].split()
    return fields[0].decode(), int(fields[1]), int(fields[19])  # fields 3, 4 and 22 of proc(5)


def _is_running(pid: int, start_ticks: int) -> bool:
    """Alive, or a zombie whose launcher is about to record its exit code."""
    info = _proc_stat(pid)
    if info is None or info[2] != start_ticks:
        return False
    state, parent, _ = info
    return state not in ("Z", "X") or (state == "Z" and parent != 1)


def _group_is_ours(pid: int, start_ticks: int) -> bool:
    """Whether signalling process group `pid` reaches our attempt and nothing else. A live pid
    with another start time was reused, which Linux allows only once our group is empty."""
    info = _proc_stat(pid)
    return info is None or info[2] == start_ticks


def _signal_group(pid: int, signo: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signo)


def _remove_attempt_files(directory: str) -> None:
    for suffix in (_OUTPUT, EXIT_CODE):
        with contextlib.suppress(FileNotFoundError):
            os.unlink(directory + suffix)
    try:
        os.rmdir(directory)
    except FileNotFoundError:
        pass
    except OSError:
        shutil.rmtree(directory, ignore_errors=True)


def _meminfo_total_mib() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal missing from /proc/meminfo")


def _resolve(command: Sequence[str], search_path: str, cache: dict[tuple[str, str], str]) -> str:
    """The executable the command names, as an absolute path, in Docker's error wording.
    PATH lookups are cached while the file found stays executable."""
    if not command:
        raise _CannotStart("no command specified")
    name = command[0]
    if "/" in name:
        if not os.path.isabs(name) or not os.path.exists(name):
            raise _CannotStart(f'exec: "{name}": stat {name}: no such file or directory')
        if os.path.isdir(name) or not os.access(name, os.X_OK):
            raise _CannotStart(f'exec: "{name}": permission denied')
        return name
    found = cache.get((name, search_path))
    if found is not None and os.access(found, os.X_OK):
        return found
    found = shutil.which(name, path=search_path)
    if found is None:
        raise _CannotStart(f'exec: "{name}": executable file not found in $PATH')
    if len(cache) >= 1024:
        cache.clear()
    cache[(name, search_path)] = found = os.path.abspath(found)
    return found


def _handle(pid: int, start_ticks: int, directory: str, cgroup: str | None) -> str:
    handle: dict[str, Any] = {"pid": pid, "startTime": start_ticks, "dir": directory}
    if cgroup is not None:
        handle["cgroup"] = cgroup
    return json.dumps(handle, separators=(",", ":"))


def _handle_cgroup(handle: str | None) -> str | None:
    try:
        cgroup = json.loads(handle or "{}").get("cgroup")
    except (ValueError, AttributeError):
        return None
    return cgroup if isinstance(cgroup, str) else None


def _parse_handle(handle: str | None) -> tuple[int, int, str] | None:
    if handle is None:
        return None
    try:
        data = json.loads(handle)
        return int(data["pid"]), int(data["startTime"]), str(data["dir"])
    except (ValueError, KeyError, TypeError):
        return None


# --------------------------------------------------------------------------------------------


class ProcessRuntime:
    """Runs attempts as local processes: the embedded default runtime.

    Under work_dir, per attempt: <task_id>/ (its working directory, HOME and TMPDIR, empty at
    start), <task_id>.output (stdout and stderr, tailed into the log store every
    poll_interval) and <task_id>.exit_code (its launch record: pid, start time, exit code;
    launch_records.py); all three go once the exit is stored, and what they hold (but the
    launch record) as soon as the attempt ends and its output is stored. The runtime handle
    holds the command's pid, its start time and the directory; without one, recover() finds
    the attempt by its task id from its launch record. Resources are not enforced: vCPU and
    memory only count toward placement. Whatever an attempt starts ends with it: in a cgroup
    of its own where the host allows (use_cgroups=False: never), else under a reaper process
    (containment.py); the handle names the cgroup.
    """

    name = "process"

    def __init__(
        self,
        work_dir: Path,
        logs: LogStore,
        clock: Clock,
        *,
        max_vcpus: float | None = None,
        poll_interval: float = 0.1,
        recovered_check_interval: float = 0.5,
        use_cgroups: bool = True,
    ) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self._work_dir = str(work_dir.resolve())
        self._attempts_cgroup = containment.attempts_cgroup(self._work_dir) if use_cgroups else None
        self._cgroups_unremoved: set[str] = set()  # killed; removed once their processes left
        self._logs = logs
        self._clock = clock
        self._max_vcpus = max_vcpus
        self._limits: Resources | None = None
        self._poll_interval = poll_interval
        self._check_every = max(1, round(recovered_check_interval / poll_interval))
        self._base_env = {"PATH": os.environ.get("PATH", _DEFAULT_PATH)}
        if "LANG" in os.environ:
            self._base_env["LANG"] = os.environ["LANG"]
        self._report: Report | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._found: dict[tuple[str, str], str] = {}  # (name, PATH) -> executable
        self._launcher: _Launcher | None = None
        self._starting: dict[str, AttemptSpec] = {}  # sent to the launcher, no answer yet
        self._stop_when_started: dict[str, float] = {}
        self._attempts: dict[str, _Attempt] = {}
        self._exits_unstored: set[str] = set()  # directories of exits reported, not yet stored
        self._tailer: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- protocol -----------------------------------------------------------------------------

    def host_limits(self) -> Resources:
        if self._limits is None:
            cpus = float(os.cpu_count() or 1)
            vcpus = self._max_vcpus if self._max_vcpus is not None else cpus
            self._limits = Resources(vcpus=vcpus, memory_mib=_meminfo_total_mib(), gpus=0)
        return self._limits

    async def open(self, report: Report) -> None:
        self._report = report
        self._loop = asyncio.get_running_loop()
        self._launcher = self._new_launcher(self._loop)
        self._tailer = self._loop.create_task(self._tail_forever())

    async def start(self, spec: AttemptSpec) -> None:
        loop = self._require_open()
        if spec.task_id in self._attempts or spec.task_id in self._starting:
            raise ValueError(f"attempt {spec.task_id} is already running")
        directory = os.path.join(self._work_dir, spec.task_id)
        env = {**self._base_env, "HOME": directory, "TMPDIR": directory}
        env.update(spec.environment)
        try:
            executable = _resolve(spec.command, env.get("PATH", _DEFAULT_PATH), self._found)
        except _CannotStart as error:
            self._failed_to_start(spec, str(error))
            return
        try:
            if self._launcher is None:
                self._launcher = self._new_launcher(loop)
        except OSError as error:
            self._failed_to_start(spec, f"starting the launcher: {error}")
            return
        self._starting[spec.task_id] = spec
        request = {
            "id": spec.task_id,
            "argv": [executable, *spec.command[1:]],
            "env": env,
            "dir": directory,
        }
        # Returns without waiting for the launcher: its answer is reported as an event.
        self._launcher.send(request)

    async def stop(self, job_id: str, task_id: str, grace_seconds: float) -> None:
        self._require_open()
        if task_id in self._starting:
            self._stop_when_started[task_id] = grace_seconds
            return
        attempt = self._attempts.get(task_id)
        if attempt is not None:
            self._stop(attempt, grace_seconds)

    async def recover(self, attempts: Sequence[AttemptRef]) -> None:
        self._require_open()
        # Attempts whose start the store never heard of are found by task id, from their
        # launch records: final once no earlier launcher is starting anything.
        await asyncio.to_thread(wait_for_earlier_launches, self._work_dir)
        found_by_id = 0
        for ref in attempts:
            if ref.task_id not in self._attempts and ref.task_id not in self._starting:
                found_by_id += self._reattach(ref)
        if found_by_id:
            log.info("Recovery found %d attempts whose start was not stored yet", found_by_id)
        self._release_orphans()
        self._remove_stale_cgroups()

    def _cgroup_of(self, task_id: str) -> str | None:
        """The cgroup of an attempt found by its launch record (its start was never heard)."""
        if self._attempts_cgroup is None:
            return None
        path = os.path.join(self._attempts_cgroup, task_id)
        return path if os.path.isdir(path) else None

    def _remove_stale_cgroups(self) -> None:
        """Attempt cgroups no attempt owns (a launcher killed before it removed one, an
        attempt gone from the store): their processes go, then the cgroups."""
        if self._attempts_cgroup is None:
            return
        owned = {attempt.cgroup for attempt in self._attempts.values()}
        owned.update(os.path.join(self._attempts_cgroup, task_id) for task_id in self._starting)
        for path in containment.attempt_cgroups(self._attempts_cgroup):
            if path not in owned:
                self._kill_cgroup(path)

    def _kill_cgroup(self, path: str) -> None:
        try:
            containment.kill_cgroup(path)
        except OSError as error:
            log.warning("Killing the processes of cgroup %s failed: %s", path, error)
        if not containment.remove_cgroup(path):
            self._cgroups_unremoved.add(path)

    def _release_orphans(self) -> None:
        """Attempt directories no attempt owns: a server that died after storing an exit but
        before releasing its directory left them. Recovery has re-attached every attempt the
        store still holds, so the rest go."""
        owned = {attempt.directory for attempt in self._attempts.values()}
        owned.update(self._exits_unstored)
        owned.update(os.path.join(self._work_dir, task_id) for task_id in self._starting)
        with os.scandir(self._work_dir) as entries:
            names = {entry.name.split(".", 1)[0] for entry in entries}
        for name in sorted(names):
            directory = os.path.join(self._work_dir, name)
            if _TASK_ID.fullmatch(name) and directory not in owned:
                self._release(directory)

    async def close(self) -> None:
        if self._tailer is not None:
            self._tailer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._tailer
            self._tailer = None
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._launcher is not None:
            self._launcher.close()
            self._launcher = None
        self._starting.clear()
        self._stop_when_started.clear()
        for attempt in self._attempts.values():
            if attempt.escalation is not None:
                attempt.escalation.cancel()
            if attempt.out_fd is not None:
                os.close(attempt.out_fd)
                attempt.out_fd = None
        self._attempts.clear()
        self._exits_unstored.clear()
        self._report = None
        self._loop = None

    # -- launcher events ----------------------------------------------------------------------

    def _on_launcher_message(self, message: dict[str, Any]) -> None:
        task_id = str(message["id"])
        if "exit" in message:
            attempt = self._attempts.get(task_id)
            if attempt is not None and not attempt.ended:
                self._finish(attempt, int(message["exit"]), None)
            return
        spec = self._starting.pop(task_id)
        if "error" in message:
            self._stop_when_started.pop(task_id, None)
            self._failed_to_start(spec, str(message["error"]))  # its directory went back
        else:
            cgroup = message.get("cgroup")
            self._started(spec, int(message["pid"]), int(message["start"]), cgroup)

    def _started(self, spec: AttemptSpec, pid: int, start_ticks: int, cgroup: str | None) -> None:
        directory = os.path.join(self._work_dir, spec.task_id)
        try:
            out_fd: int | None = os.open(directory + _OUTPUT, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            out_fd = None
        attempt = _Attempt(
            job_id=spec.job_id,
            task_id=spec.task_id,
            output=StreamWriter(self._logs, spec.task_id, spec.log_group, spec.log_stream_name),
            directory=directory,
            pid=pid,
            start_ticks=start_ticks,
            own=True,
            out_fd=out_fd,
            cgroup=cgroup,
        )
        self._attempts[spec.task_id] = attempt
        now = self._clock.now_ms()
        attempt.output.create(now)
        handle = _handle(pid, start_ticks, directory, cgroup)
        self._emit(AttemptStarted(spec.job_id, spec.task_id, now, handle))
        grace = self._stop_when_started.pop(spec.task_id, None)
        if grace is not None:
            self._stop(attempt, grace)

    def _on_launcher_gone(self, launcher: _Launcher) -> None:
        """The launcher died: its attempts run on, unwatched; poll them like recovered ones."""
        log.error("The process launcher (pid %d) exited unexpectedly", launcher.pid)
        if self._launcher is launcher:
            self._launcher = None
        starting, self._starting = self._starting, {}
        stops, self._stop_when_started = self._stop_when_started, {}
        for spec in starting.values():
            if read_launch_record(os.path.join(self._work_dir, spec.task_id)) is None:
                self._failed_to_start(spec, LAUNCHER_EXITED)  # its directory is left alone
                continue
            # It started before the launcher died: follow it like a recovered attempt.
            ref = AttemptRef(spec.job_id, spec.task_id, spec.log_group, spec.log_stream_name, None)
            self._reattach(ref)
            attempt = self._attempts.get(spec.task_id)
            if attempt is not None and spec.task_id in stops:
                self._stop(attempt, stops[spec.task_id])
        for attempt in self._attempts.values():
            attempt.own = False

    # -- stopping -----------------------------------------------------------------------------

    def _stop(self, attempt: _Attempt, grace_seconds: float) -> None:
        if attempt.ended or not _group_is_ours(attempt.pid, attempt.start_ticks):
            return  # already ended: its exit is (being) reported
        if grace_seconds <= 0:
            self._kill(attempt)
            return
        if attempt.stop_signal is None:
            attempt.stop_signal = signal.SIGTERM
        _signal_group(attempt.pid, signal.SIGTERM)
        if attempt.escalation is None and self._loop is not None:
            attempt.escalation = self._loop.call_later(grace_seconds, self._kill, attempt)

    def _kill(self, attempt: _Attempt) -> None:
        attempt.escalation = None
        if attempt.ended or not _group_is_ours(attempt.pid, attempt.start_ticks):
            return
        attempt.stop_signal = signal.SIGKILL
        _signal_group(attempt.pid, signal.SIGKILL)
        if attempt.cgroup is not None:  # at once, not only once the command has gone
            self._kill_cgroup(attempt.cgroup)

    # -- recovery -----------------------------------------------------------------------------

    def _reattach(self, ref: AttemptRef) -> bool:
        """Follow the attempt again; True if it was found by its launch record alone."""
        handle = _parse_handle(ref.runtime_handle)
        cgroup = _handle_cgroup(ref.runtime_handle)
        started_at: int | None = None  # set when the start was never reported or stored
        if ref.runtime_handle is None and _TASK_ID.fullmatch(ref.task_id):
            directory = os.path.join(self._work_dir, ref.task_id)
            record = read_launch_record(directory)
            if record is not None:
                handle = (record.pid, record.start_ticks, directory)
                started_at = record.started_at
                cgroup = self._cgroup_of(ref.task_id)
        if handle is None or not os.path.isdir(handle[2]):
            self._emit(self._host_lost(ref.job_id, ref.task_id, HOST_LOST_NOT_FOUND))
            return False
        pid, start_ticks, directory = handle
        try:
            out_fd: int | None = os.open(directory + _OUTPUT, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            out_fd = None
        attempt = _Attempt(
            job_id=ref.job_id,
            task_id=ref.task_id,
            output=StreamWriter(self._logs, ref.task_id, ref.log_group, ref.log_stream_name),
            directory=directory,
            pid=pid,
            start_ticks=start_ticks,
            own=False,
            out_fd=out_fd,
            lines=LineCutter(skip=self._logs.count(ref.log_group, ref.log_stream_name)),
            found_running=_is_running(pid, start_ticks),
            cgroup=cgroup,
        )
        self._attempts[ref.task_id] = attempt
        if started_at is not None:
            attempt.output.create(started_at)
            runtime_handle = _handle(pid, start_ticks, directory, cgroup)
            self._emit(AttemptStarted(ref.job_id, ref.task_id, started_at, runtime_handle))
        self._pump(attempt, _TICK_BUDGET)
        self._check_unwatched(attempt)
        return started_at is not None

    def _check_unwatched(self, attempt: _Attempt) -> None:
        """End an attempt no launcher of ours watches, once it has exited."""
        code = read_exit_code(attempt.directory)
        if code is None and _is_running(attempt.pid, attempt.start_ticks):
            return
        if _group_is_ours(attempt.pid, attempt.start_ticks):
            _signal_group(attempt.pid, signal.SIGKILL)  # what the command left behind
        if attempt.cgroup is not None:
            self._kill_cgroup(attempt.cgroup)
        if code is None and attempt.stop_signal is not None:
            code = 128 + attempt.stop_signal
        if code is not None:
            self._finish(attempt, code, None)
        elif attempt.found_running:
            self._finish(attempt, None, HOST_LOST_NO_EXIT_CODE)
        else:
            self._finish(attempt, None, HOST_LOST_NOT_FOUND)

    # -- output -------------------------------------------------------------------------------

    def _pump(self, attempt: _Attempt, budget: int) -> bool:
        """Move new output lines to the log store; True once the file is read to its end.
        Lines the log store has no room for are read again from the same offset next time,
        so a full disk holds no output in memory."""
        fd = attempt.out_fd
        if fd is None:
            return True
        unread = attempt.offset, attempt.lines.mark()
        now = self._clock.now_ms()
        events: list[Event] = []
        read = 0
        at_end = False
        while read < budget:
            data = os.pread(fd, _READ_CHUNK, attempt.offset)
            attempt.offset += len(data)
            read += len(data)
            if data:
                attempt.lines.feed(data, now, events)
            if len(data) < _READ_CHUNK:
                at_end = True
                break
        if not attempt.output.append(events, now):
            attempt.offset, mark = unread
            attempt.lines.rewind(mark)
            return False
        return at_end

    async def _tail_forever(self) -> None:
        tick = 0
        while True:
            await asyncio.sleep(self._poll_interval)
            tick += 1
            for path in list(self._cgroups_unremoved):
                if containment.remove_cgroup(path):
                    self._cgroups_unremoved.discard(path)
            for attempt in list(self._attempts.values()):
                if attempt.ended:
                    continue
                try:
                    self._pump(attempt, _TICK_BUDGET)
                    if not attempt.own and tick % self._check_every == 0:
                        self._check_unwatched(attempt)
                except Exception:
                    log.exception("Following attempt %s failed", attempt.task_id)

    # -- ending -------------------------------------------------------------------------------

    def _finish(self, attempt: _Attempt, exit_code: int | None, lost_reason: str | None) -> None:
        attempt.ended = True
        if attempt.escalation is not None:
            attempt.escalation.cancel()
            attempt.escalation = None
        if self._drained(attempt):
            self._complete(attempt, exit_code, lost_reason)
            return
        task = asyncio.get_running_loop().create_task(
            self._drain_then_complete(attempt, exit_code, lost_reason)
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _drain_then_complete(
        self, attempt: _Attempt, exit_code: int | None, lost_reason: str | None
    ) -> None:
        done = False
        while not done:
            # Let other attempts and the API run between chunks; while the log store has no
            # room, wait as the tailer does, then try the same lines again.
            await asyncio.sleep(self._poll_interval if attempt.output.stalled else 0)
            done = self._drained(attempt)
        self._complete(attempt, exit_code, lost_reason)

    def _drained(self, attempt: _Attempt) -> bool:
        """Pump a chunk of an ended attempt's output; True once all of it is stored, its
        last line (with no newline) included."""
        if not self._pump(attempt, _FINISH_BUDGET):
            return False
        mark = attempt.lines.mark()
        events: list[Event] = []
        attempt.lines.finish(events)
        if not attempt.output.append(events, self._clock.now_ms()):
            attempt.lines.rewind(mark)
            return False
        return True

    def _complete(self, attempt: _Attempt, exit_code: int | None, lost_reason: str | None) -> None:
        if attempt.out_fd is not None:
            os.close(attempt.out_fd)
            attempt.out_fd = None
        self._attempts.pop(attempt.task_id, None)
        now = self._clock.now_ms()
        if lost_reason is not None:
            self._emit(self._host_lost(attempt.job_id, attempt.task_id, lost_reason))
            self._release(attempt.directory)
        else:
            if attempt.offset or not attempt.own:
                # Its output is in the log store: the launcher frees the file now, not once
                # the exit is stored, which may wait for that very space (our launcher
                # emptied the directory at the exit already; another's did not).
                self._send({"scrub": attempt.directory})
            # The directory holds the exit code recovery reads: it goes once the dispatcher
            # has stored the exit.
            self._exits_unstored.add(attempt.directory)
            self._emit(
                AttemptExited(
                    attempt.job_id,
                    attempt.task_id,
                    now,
                    exit_code,
                    status_reason=ESSENTIAL_CONTAINER_EXITED,
                    recorded=partial(self._release, attempt.directory),
                )
            )

    def _release(self, directory: str) -> None:
        """The attempt's exit is stored: the launcher recycles or removes its directory."""
        self._exits_unstored.discard(directory)
        if not self._send({"release": directory}):
            _remove_attempt_files(directory)

    def _send(self, request: dict[str, Any]) -> bool:
        """A request to the launcher (started again if it died); False if none can take it.
        Closed meanwhile: nothing is sent, rather than race a new runtime."""
        if self._loop is None:
            return True
        try:
            if self._launcher is None:
                self._launcher = self._new_launcher(self._loop)
            self._launcher.send(request)
        except (OSError, RuntimeError):
            return False
        return True

    # -- reporting ----------------------------------------------------------------------------

    def _failed_to_start(self, spec: AttemptSpec, error: str) -> None:
        reason = f"CannotStartContainerError: {error}"
        self._emit(failed_to_start(spec.job_id, spec.task_id, self._clock.now_ms(), reason))

    def _host_lost(self, job_id: str, task_id: str, reason: str) -> AttemptExited:
        return host_lost(job_id, task_id, self._clock.now_ms(), reason)

    def _emit(self, event: RuntimeEvent) -> None:
        deliver(self._report, event)

    def _new_launcher(self, loop: asyncio.AbstractEventLoop) -> _Launcher:
        return _Launcher(
            loop,
            self._on_launcher_message,
            self._on_launcher_gone,
            self._work_dir,
            self._attempts_cgroup,
        )

    def _require_open(self) -> asyncio.AbstractEventLoop:
        if self._loop is None or self._report is None:
            raise RuntimeError("ProcessRuntime.open() has not been called (or it was closed)")
        return self._loop
