"""The launcher: the small program that spawns and reaps the process runtime's attempts, in an
interpreter of its own that outlives the server (started by launcher_client.py as
`python -I -S`, importing this module and nothing of Batchyard's but `containment`).

It spawns attempts on request (JSON lines on stdin) in their directories, records each
attempt's pid and start time, then its exit code before reaping it, in <dir>.exit_code
(launch_records.py), and reports on stdout. Attempts start only under the launch lock and while
the server is there to hear of them. Directories come from a pool of spares (`SpareDirectories`),
and go back to it on a release request once the server has stored the exit: on some disks
creating and removing inodes costs milliseconds, renaming them microseconds, and this process,
not the server's, pays for it. What an attempt left in its directory goes as soon as it exits,
and its output file once the server asks (scrub): the disk they fill may be the one its exit
must be stored on. Each attempt runs in a cgroup of its own under the attempts cgroup, or,
without one (none given, or not writable here), under a reaper process of its own
(containment.py); either way whatever the attempt started ends when its command exits. Exits
once stdin is closed and its attempts have ended, so attempts outlive the server.

Its imports stay few and of the standard library (plus `containment`): each one delays the
start of the first attempt of every server. The protocol, both ways one JSON object a line:
  in:  {"id", "dir", "argv", "env"} start; {"release": dir}; {"scrub": dir}
  out: {"id", "pid", "start", "cgroup"} started; {"id", "error"} did not start; {"id", "exit"}
"""

from __future__ import annotations

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

from batchyard.runtimes.process import containment

# Annotations are not evaluated here, and importing typing would cost every launcher's start
# a few milliseconds: mypy reads this constant as typing.TYPE_CHECKING.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

SPARE_HIGH = 64  # spares kept at most; the rest of what comes back is removed

# pid of the command or of its reaper -> (task id, directory, cgroup, command, its start)
Attempt = tuple[str, str, str | None, int, int]


def start_of(pid: int) -> int:
    """A child's start time (clock ticks since boot; field 22 of proc(5))."""
    with open(f"/proc/{pid}/stat", "rb") as proc_stat:
        data = proc_stat.read()
    return int(data[data.rindex(b")") + 2 :].split()[19])


class SpareDirectories:
    """Attempt directories and the two files beside each (output, launch record): made ready
    from a pool of spares, recycled into it, scrubbed and removed. Whole trees (what a job left,
    spares of earlier launchers) are removed on a thread of their own, so a big one never holds
    up starting or reaping attempts."""

    def __init__(
        self, spare_dir: str, output_suffix: str, exit_code_suffix: str, blank: bytes
    ) -> None:
        self.spare_dir = spare_dir
        self.output_suffix = output_suffix
        self.exit_code_suffix = exit_code_suffix
        self.blank_record = blank
        self.prefix = f"{os.getpid()}-"
        self.names = itertools.count()
        self.spares: list[str] = []
        self.fresh_mode: int | None = None  # a new directory's mode under this process's umask
        # (path, True): remove it all; (path, False): scrub, keeping directory and exit code.
        self.doomed: queue.SimpleQueue[tuple[str, bool] | None] = queue.SimpleQueue()

    def remove(self, path: str) -> None:
        for suffix in (self.output_suffix, self.exit_code_suffix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + suffix)
        try:
            os.rmdir(path)
        except FileNotFoundError:
            pass
        except OSError:
            shutil.rmtree(path, ignore_errors=True)

    def remove_doomed(self) -> None:
        """The remover thread: spares of earlier launchers, then what is queued, until None."""
        with os.scandir(self.spare_dir) as entries:
            stale = {e.name.split(".")[0] for e in entries if not e.name.startswith(self.prefix)}
        for name in stale:
            self.remove(os.path.join(self.spare_dir, name))
        while (item := self.doomed.get()) is not None:
            path, whole = item
            if whole:
                self.remove(path)
            else:
                self.empty(path)

    def empty(self, directory: str) -> None:
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

    def scrub(self, directory: str, output: bool) -> None:
        """The attempt has ended: free the space of what it left in its directory, and of
        its output file once the server has it all in the log store, before the exit is
        stored (which may wait for that very space)."""
        if output:
            with contextlib.suppress(OSError):
                os.truncate(directory + self.output_suffix, 0)
        try:
            with os.scandir(directory) as entries:
                if next(entries, None) is None:
                    return
        except OSError:
            return
        self.doomed.put((directory, False))

    def create(self, directory: str) -> None:
        os.mkdir(directory, 0o755)
        if self.fresh_mode is None:
            self.fresh_mode = stat.S_IMODE(os.stat(directory).st_mode)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
        os.close(os.open(directory + self.output_suffix, flags, 0o644))
        fd = os.open(directory + self.exit_code_suffix, flags, 0o644)
        try:
            os.write(fd, self.blank_record)
        finally:
            os.close(fd)

    def move(self, source: str, target: str) -> None:
        for suffix in (self.output_suffix, self.exit_code_suffix, ""):
            os.rename(source + suffix, target + suffix)

    def prepare(self, directory: str) -> None:
        """The attempt's directory and its two files, empty: a spare's, moved, or new ones."""
        if os.path.lexists(directory):  # left by a server that died before cleaning up
            self.remove(directory)
        if self.spares:
            spare = self.spares.pop()
            try:
                self.move(spare, directory)
                return
            except OSError:
                self.remove(directory)
                self.remove(spare)
        self.create(directory)

    def release(self, directory: str) -> None:
        """The attempt's exit is stored: its directory and files become a spare again when
        the job left nothing in it, else they go."""
        try:
            with os.scandir(directory) as entries:
                empty = next(entries, None) is None
            wanted = empty and len(self.spares) < SPARE_HIGH and self.fresh_mode is not None
            if wanted and stat.S_IMODE(os.stat(directory).st_mode) == self.fresh_mode:
                os.truncate(directory + self.output_suffix, 0)
                fd = os.open(directory + self.exit_code_suffix, os.O_WRONLY)
                try:
                    os.pwrite(fd, self.blank_record, 0)
                finally:
                    os.close(fd)
                spare = os.path.join(self.spare_dir, self.prefix + str(next(self.names)))
                self.move(directory, spare)
                self.spares.append(spare)
                return
        except OSError:
            pass
        if self.empty_of_files(directory):
            self.remove(directory)
        else:
            self.doomed.put((directory, True))

    def empty_of_files(self, directory: str) -> bool:
        try:
            os.rmdir(directory)  # fails unless empty: the cheap case, done here
        except FileNotFoundError:
            return True
        except OSError:
            return False
        for suffix in (self.output_suffix, self.exit_code_suffix):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(directory + suffix)
        return True

    def drop_spares(self) -> None:
        """The server is gone: no more spares are needed."""
        self.doomed.put(None)
        for spare in self.spares:
            self.remove(spare)
        self.spares.clear()


class Launcher:
    """One launcher process's state and its loop (`run`). See the module's docstring."""

    def __init__(self, argv: list[str]) -> None:
        output_suffix, exit_code_suffix, blank_record = argv[1], argv[2], argv[3].encode()
        spare_dir, launch_lock_path = argv[4], argv[5]
        self.directories = SpareDirectories(
            spare_dir, output_suffix, exit_code_suffix, blank_record
        )
        self.launch_offset = blank_record.index(b"\n") + 1  # the launch line, after the code's
        # Cgroups until one cannot be made or entered here; then reapers, for this process's life.
        self.attempts_cgroup = argv[6] or None
        self.cgroup_base = self.attempts_cgroup
        self.cgroup_home = containment.own_cgroup()
        self.removals: dict[str, float] = {}  # killed attempt cgroups to remove -> give up when
        self.attempts: dict[int, Attempt] = {}
        # reapers whose answer is not read yet -> (task id, directory, program, record, pipe)
        self.unsettled: dict[int, tuple[str, str, str, int, int]] = {}
        self.out = bytearray()
        self.reading = True
        self.server_gone = False
        self.writing = False
        self.pending = b""
        os.chdir("/")
        for ignored in (signal.SIGINT, signal.SIGHUP):  # the terminal's, meant for the server
            signal.signal(ignored, signal.SIG_IGN)
        # Orphans of an attempt are reparented here (not to PID 1) and reaped.
        containment.become_subreaper()
        # Python ignores these; the attempt must get the default dispositions back.
        self.reset = {signal.SIGPIPE, signal.SIGXFSZ, signal.SIGINT, signal.SIGHUP}
        self.devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        self.wake_r, wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        signal.signal(signal.SIGCHLD, lambda signo, frame: None)
        os.set_blocking(1, False)
        # Registered for no event: poll() still reports POLLERR once the server's end is closed.
        self.server_end = select.poll()
        self.server_end.register(1, 0)
        flags = os.O_RDWR | os.O_CREAT | os.O_CLOEXEC
        self.launch_lock = os.open(launch_lock_path, flags, 0o644)
        self.selector = selectors.DefaultSelector()
        self.selector.register(0, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)

    # -- the server's end ------------------------------------------------------------------------

    def server_there(self) -> bool:
        if not self.server_gone and self.server_end.poll(0):
            self.server_gone = True
            self.out.clear()
        return not self.server_gone

    def reply(self, message: dict[str, Any]) -> None:
        if not self.server_gone:
            self.out.extend(json.dumps(message).encode() + b"\n")

    def flush(self) -> None:
        while self.out and not self.server_gone:
            try:
                del self.out[: os.write(1, self.out)]
            except BlockingIOError:
                break
            except OSError:  # the server is gone: keep recording exit codes only
                self.server_gone = True
                self.out.clear()
        if bool(self.out) != self.writing:
            self.writing = bool(self.out)
            if self.out:
                self.selector.register(1, selectors.EVENT_WRITE)
            else:
                self.selector.unregister(1)

    # -- starting --------------------------------------------------------------------------------

    def start(self, request: dict[str, Any]) -> None:
        task_id, directory, argv = request["id"], request["dir"], request["argv"]
        try:
            self.directories.prepare(directory)
            suffix = self.directories.exit_code_suffix
            record = os.open(directory + suffix, os.O_WRONLY | os.O_CLOEXEC)
        except OSError as error:
            self.reply({"id": task_id, "error": f"preparing {directory}: {error}"})
            return
        try:
            self.spawn(task_id, directory, argv, request["env"], record)
        finally:
            os.close(record)

    def spawn(self, task_id: str, directory: str, argv: list[str], env: Any, record: int) -> None:
        cgroup = None
        try:
            output = directory + self.directories.output_suffix
            fd = os.open(output, os.O_WRONLY | os.O_CLOEXEC)
            try:
                cgroup = self.enter_cgroup(task_id)
                if cgroup is None:
                    reaper, ready = self.spawn_reaped(argv, env, directory, fd)
                    # Its answer is read once the batch is sent off (settle), so reapers of
                    # one batch start their commands side by side.
                    self.unsettled[reaper] = (task_id, directory, argv[0], os.dup(record), ready)
                    return
                try:
                    command = self.spawn_command(argv, env, directory, fd)
                finally:
                    if not self.leave_cgroup(cgroup):
                        cgroup = None
            finally:
                os.close(fd)
        except (OSError, ValueError) as error:
            if cgroup is not None:
                containment.remove_cgroup(cgroup)
            reason = getattr(error, "strerror", None) or str(error)
            self.reply({"id": task_id, "error": f'exec: "{argv[0]}": {reason.lower()}'})
            self.directories.release(directory)
            return
        # A child of ours, not yet reaped: its start time is still its own.
        self.started(task_id, directory, record, command, (command, start_of(command)), cgroup)

    def started(
        self,
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
            os.pwrite(record, launched, self.launch_offset)
        except OSError as error:  # unrecorded, a restart could not find it: it must not run
            if cgroup is not None:
                with contextlib.suppress(OSError):
                    os.killpg(pid, signal.SIGKILL)
                self.kill_cgroup(cgroup)
            else:  # its reaper then ends the rest
                containment.kill_process(*command)
            why = error.strerror or error
            self.reply({"id": task_id, "error": f"recording the start: {why}"})
            self.directories.release(directory)
            return
        self.attempts[pid] = (task_id, directory, cgroup, *command)
        self.reply({"id": task_id, "pid": command[0], "start": command[1], "cgroup": cgroup})

    def settle(self, reaper: int) -> None:
        """Hear from a reaper whether its command started."""
        task_id, directory, program, record, ready = self.unsettled.pop(reaper)
        try:
            answer = b""
            try:
                while chunk := os.read(ready, 4096):
                    answer += chunk
            finally:
                os.close(ready)
            if answer[:1].isdigit():
                command, start = answer.split()
                self.started(task_id, directory, record, reaper, (int(command), int(start)), None)
                return
            reason = answer[1:].decode(errors="replace") or "the reaper process died"
            self.reply({"id": task_id, "error": f'exec: "{program}": {reason.lower()}'})
            self.directories.release(directory)
        finally:
            os.close(record)

    def record_exit(self, directory: str, code: int, create: bool = True) -> None:
        # In place, fixed width: rewriting an existing block is cheap on any disk.
        flags = os.O_WRONLY | (os.O_CREAT if create else 0)
        with contextlib.suppress(OSError):
            fd = os.open(directory + self.directories.exit_code_suffix, flags, 0o644)
            try:
                os.pwrite(fd, b"%3d\n" % code, 0)
            finally:
                os.close(fd)

    def spawn_command(self, argv: list[str], env: Any, directory: str, fd: int) -> int:
        os.chdir(directory)  # posix_spawn cannot chdir; this process is ours alone
        try:
            return os.posix_spawn(
                argv[0],
                argv,
                env,
                file_actions=[
                    (os.POSIX_SPAWN_DUP2, self.devnull, 0),
                    (os.POSIX_SPAWN_DUP2, fd, 1),
                    (os.POSIX_SPAWN_DUP2, fd, 2),
                ],
                setsid=True,
                setsigdef=self.reset,
                setsigmask=(),
            )
        finally:
            os.chdir("/")

    def spawn_reaped(self, argv: list[str], env: Any, directory: str, fd: int) -> tuple[int, int]:
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
                os.dup2(self.devnull, 0)
                os.dup2(self.devnull, 1)
                keep = {0, 1, 2, self.devnull, fd, ready_w}
                for name in os.listdir("/proc/self/fd"):
                    if int(name) not in keep:
                        with contextlib.suppress(OSError):
                            os.close(int(name))
                containment.become_subreaper()
                try:
                    command = self.spawn_command(argv, env, directory, fd)
                except (OSError, ValueError) as error:
                    reason = getattr(error, "strerror", None) or str(error)
                    os.write(ready_w, b"E" + reason.encode())
                    raise
                # Read before the reaper waits: once reaped, the command's pid means nothing.
                os.write(ready_w, b"%d %d" % (command, start_of(command)))
                os.close(ready_w)
                record = functools.partial(self.record_exit, directory, create=False)
                code = containment.reap_attempt(command, record)
            finally:
                os._exit(code)
        os.close(ready_w)  # before the next fork: its reaper must not hold this one's pipe
        return reaper, ready_r

    # -- cgroups ---------------------------------------------------------------------------------

    def enter_cgroup(self, task_id: str) -> str | None:
        """Move this process into a new cgroup for the attempt, so that what it spawns next
        starts there (posix_spawn cannot place a child itself). None: reapers from now on."""
        if self.cgroup_base is None or self.cgroup_home is None:
            return None
        path = os.path.join(self.cgroup_base, task_id)
        try:
            containment.create_cgroup(path)
            containment.move_to_cgroup(path, os.getpid())
        except OSError:
            containment.remove_cgroup(path)
            self.cgroup_base = None
            return None
        return path

    def leave_cgroup(self, path: str) -> bool:
        """Back to where the server put us. False: stuck in the attempt's cgroup, which then
        must never be killed (it would end this process), and no more cgroups."""
        for target in (self.cgroup_home, self.cgroup_base):
            try:
                containment.move_to_cgroup(str(target), os.getpid())
                return True
            except OSError:
                continue
        self.cgroup_base = None
        return False

    def kill_cgroup(self, path: str) -> None:
        with contextlib.suppress(OSError):
            containment.kill_cgroup(path)
        self.removals[path] = time.monotonic() + 60

    def remove_cgroups(self) -> None:
        """Killed processes take a moment to leave: their cgroups go once they have."""
        now = time.monotonic()
        for path, give_up in list(self.removals.items()):
            if containment.remove_cgroup(path) or now > give_up:  # recovery removes it later
                del self.removals[path]

    # -- exits -----------------------------------------------------------------------------------

    def adopt(self, attempt: Attempt) -> None:
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
            self.attempts[command] = (task_id, directory, cgroup, command, start)
            return
        try:  # gone too: the reaper may have recorded its exit before it was killed
            with open(directory + self.directories.exit_code_suffix, "rb") as recorded:
                code = int(recorded.readline().strip())
        except (OSError, ValueError):
            code = 128 + signal.SIGKILL
        self.reply({"id": task_id, "exit": code})
        self.record_exit(directory, code)
        self.directories.scrub(directory, False)

    def reap(self) -> None:
        while True:
            try:
                info = os.waitid(os.P_ALL, 0, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            except ChildProcessError:
                return
            if info is None:
                return
            pid = info.si_pid
            if pid in self.unsettled:  # it answered before it exited
                self.settle(pid)
            attempt = self.attempts.pop(pid, None)
            exited = info.si_code == os.CLD_EXITED
            if attempt is not None and pid != attempt[3] and not exited:
                self.adopt(attempt)
            elif attempt is not None:
                task_id, directory, cgroup = attempt[:3]
                # The job ends with its command. A reaper has ended the rest already.
                if pid == attempt[3]:
                    # Still a zombie, so the group id is ours: the cheap part first.
                    with contextlib.suppress(OSError):
                        os.killpg(pid, signal.SIGKILL)
                if cgroup is not None:
                    self.kill_cgroup(cgroup)
                code = info.si_status if exited else 128 + info.si_status
                self.reply({"id": task_id, "exit": code})
                self.flush()  # the server hears of the exit before the slower bookkeeping
                self.record_exit(directory, code)
                self.directories.scrub(directory, False)
            os.waitpid(pid, 0)

    # -- the loop --------------------------------------------------------------------------------

    def run(self) -> None:
        os.makedirs(self.directories.spare_dir, exist_ok=True)
        # A daemon: should this loop fail, the launcher exits (the server then follows its
        # attempts itself) instead of waiting forever for a remover nobody will stop.
        remover = threading.Thread(
            target=self.directories.remove_doomed, name="remover", daemon=True
        )
        remover.start()
        while self.reading or self.attempts or self.removals:
            for key, _ in self.selector.select(0.05 if self.removals else None):
                if key.fd == 0:
                    self.read_requests()
                elif key.fd == self.wake_r:
                    try:
                        while os.read(self.wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    self.reap()
            self.remove_cgroups()
            self.flush()
        # What a killed cgroup held re-parented here: reap it (its exit may still be under
        # way), rather than leave zombies to PID 1, which may reap them late.
        give_up = time.monotonic() + 5
        with contextlib.suppress(ChildProcessError):
            while os.waitpid(-1, os.WNOHANG)[0] != 0 or time.monotonic() < give_up:
                time.sleep(0.01)
        remover.join()
        if self.attempts_cgroup is not None:  # only if empty: another launcher may use it
            containment.remove_cgroup(self.attempts_cgroup)

    def read_requests(self) -> None:
        data = os.read(0, 1 << 16)
        if not data:
            self.reading = False
            self.selector.unregister(0)
            self.directories.drop_spares()
            return
        *lines, self.pending = (self.pending + data).split(b"\n")
        # A restarted server's recovery takes this lock once, when its predecessor (ours) is
        # gone: every attempt we start is recorded before it looks, or not started at all, so
        # it never declares lost what runs and starts it again.
        fcntl.flock(self.launch_lock, fcntl.LOCK_EX)
        try:
            starting = self.server_there()
            for line in lines:
                request = json.loads(line)
                if "release" in request:
                    self.directories.release(request["release"])
                elif "scrub" in request:
                    self.directories.scrub(request["scrub"], True)
                elif starting:
                    self.start(request)
                    # Attempts started by earlier requests may have ended meanwhile: report
                    # their exits now (reap flushes), not after the whole batch.
                    self.reap()
            for reaper in list(self.unsettled):  # all recorded before the lock goes
                self.settle(reaper)
        finally:
            fcntl.flock(self.launch_lock, fcntl.LOCK_UN)


def main() -> None:
    """argv: output suffix, exit code suffix, blank launch record, spare directory, launch lock,
    attempts cgroup ("" for none); the constants come from the server (launch_records.py), so
    this process need not import what the server does."""
    Launcher(sys.argv).run()


if __name__ == "__main__":
    main()
