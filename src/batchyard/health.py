"""Whether this server can do its work: the checks `GET /health` reports.

Owns the facts the checks read and the checks themselves. The dispatcher reports each round's
outcome, the store each write transaction's, and whatever writes to the data directory (the
store, the log store) reports a write that failed for lack of space. /health is polled: a
report is a few attribute writes, and a check reads them; only the disk's free space and
whether the database files can be opened for writing are asked of the system, at most once a
second.

One `Health` serves a process (`current()`), so that code deep in a write path reports without
being handed an object: `health.record_disk_full("logs", "...")`.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

FAILED_ROUNDS = 3
"""Dispatch rounds failing in a row before the dispatcher is reported unhealthy (a failed round
is retried after half a second, so about a second and a half of failing)."""
MIN_FREE_BYTES = 64 * 1024 * 1024
"""Below this much space free for the data directory, the disk counts as full: SQLite and the
log store need room for a transaction and a log batch."""
DISPATCHER_STATUS_FILE = "dispatcher-health.json"
"""In the data directory: the dispatcher's check as the main process last found it, for the
API-only processes of `--api-processes` (written only when it changes)."""
_PROBE_SECONDS = 1.0  # how long a statvfs, writability or status-file probe is reused
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


@dataclass(frozen=True, slots=True)
class Check:
    """One named check: ok, and a sentence saying what was found."""

    name: str
    ok: bool
    detail: str


class Health:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()  # reports come from the loop and from worker threads
        self.data_dir: Path | None = None
        self.store_files: tuple[Path, ...] = ()
        self.dispatching = False  # only the process that runs the dispatcher reports rounds
        # Where the dispatching process publishes its check and the others read it.
        self.dispatcher_status: Path | None = None
        # A write that changes nothing, to learn whether the store takes writes again after
        # one failed (an idle server would otherwise report the failure forever).
        self.store_probe: Callable[[], object] | None = None
        self.failed_rounds_limit = FAILED_ROUNDS
        self.min_free_bytes = MIN_FREE_BYTES
        self._failed_rounds = 0
        self._last_round_error = ""
        self._last_success: float | None = None
        self._store_error: str | None = None
        self._disk_full: dict[str, str] = {}  # where -> why
        self._probed: dict[str, tuple[float, str | None]] = {}  # probe -> (when, problem)

    def watch(
        self,
        *,
        data_dir: Path | None = None,
        store_files: Sequence[Path] = (),
        dispatching: bool = False,
        min_free_bytes: int = MIN_FREE_BYTES,
        store_probe: Callable[[], object] | None = None,
        dispatcher_status: Path | None = None,
    ) -> None:
        """Say what this process's checks look at (the server calls it once at start)."""
        self.data_dir = data_dir
        self.store_files = tuple(store_files)
        self.store_probe = store_probe
        self.dispatching = dispatching
        self.min_free_bytes = min_free_bytes
        self.dispatcher_status = dispatcher_status
        self._probed.clear()
        if dispatching:
            self._publish(Check("dispatcher", True, "dispatch rounds succeed"))

    # -- reports ------------------------------------------------------------------------------

    def round_succeeded(self) -> None:
        if self._failed_rounds >= self.failed_rounds_limit:
            self._failed_rounds = 0
            self._publish(self._dispatcher_check())
        self._failed_rounds = 0
        self._last_success = self._clock()

    def round_failed(self, error: BaseException) -> None:
        self._failed_rounds += 1
        self._last_round_error = _describe(error)
        if self._failed_rounds == self.failed_rounds_limit:
            check = self._dispatcher_check()
            failing_since = time.strftime("%H:%M:%S UTC", time.gmtime())
            self._publish(replace(check, detail=f"{check.detail} (failing since {failing_since})"))

    def _publish(self, check: Check) -> None:
        """Write the dispatcher's check for the other processes (on a change only: rarely).
        A write that fails leaves the last one; the disk check tells why."""
        path = self.dispatcher_status
        if path is None:
            return
        staging = path.with_name(f".{path.name}.{os.getpid()}")
        try:
            staging.write_text(json.dumps({"ok": check.ok, "detail": check.detail}))
            os.replace(staging, path)
        except OSError:
            with contextlib.suppress(OSError):
                staging.unlink()

    def store_write_succeeded(self) -> None:
        if self._store_error is not None or "store" in self._disk_full:
            with self._lock:
                self._store_error = None
                self._disk_full.pop("store", None)

    def store_write_failed(self, error: BaseException) -> None:
        """A write transaction of the store failed in the database (not a lost race)."""
        described = _describe(error)
        with self._lock:
            self._store_error = described
        if "database or disk is full" in described or _is_no_space(error):
            self.record_disk_full("store", described)

    def record_disk_full(self, where: str, reason: str) -> None:
        """A write to `where` (store, logs, attempts...) failed for lack of space; the disk
        check fails until `record_disk_ok(where)`."""
        with self._lock:
            self._disk_full[where] = reason

    def record_disk_ok(self, where: str) -> None:
        """A write to `where` succeeded again."""
        if where in self._disk_full:
            with self._lock:
                self._disk_full.pop(where, None)

    def record_write_error(self, where: str, error: OSError) -> None:
        """An OSError of a write to `where`: recorded as a full disk if it is one."""
        if _is_no_space(error):
            self.record_disk_full(where, _describe(error))

    # -- checks -------------------------------------------------------------------------------

    def checks(self) -> list[Check]:
        found = [self._store_check(), self._disk_check()]
        if self.dispatching:
            found.insert(0, self._dispatcher_check())
        elif self.dispatcher_status is not None:
            problem = self._probe("dispatcher", self._dispatcher_reported)
            found.insert(
                0,
                Check("dispatcher", problem is None, problem or "dispatch rounds succeed"),
            )
        return found

    def _dispatcher_reported(self) -> str | None:
        """The main process's dispatcher check, as it last published it (None: passing)."""
        assert self.dispatcher_status is not None
        try:
            reported = json.loads(self.dispatcher_status.read_text())
        except (OSError, ValueError):
            return None  # not published yet (starting), or being replaced: no news
        if not isinstance(reported, dict) or reported.get("ok", True):
            return None
        return f"{reported.get('detail', 'dispatch rounds fail')} (reported by the main process)"

    def _dispatcher_check(self) -> Check:
        failed = self._failed_rounds
        if failed < self.failed_rounds_limit:
            return Check("dispatcher", True, "dispatch rounds succeed")
        since = (
            "no round has succeeded since the server started"
            if self._last_success is None
            else f"the last successful round was {self._clock() - self._last_success:.1f} s ago"
        )
        return Check(
            "dispatcher",
            False,
            f"{failed} dispatch rounds in a row failed ({self._last_round_error}); {since}",
        )

    def _store_check(self) -> Check:
        if self._store_error is not None and self.store_probe is not None:
            self._probe("store write", self._write_again)
        error = self._store_error
        if error is not None:
            return Check("store", False, f"the last write to the store failed: {error}")
        problem = self._probe("store", self._store_unwritable)
        if problem is not None:
            return Check("store", False, problem)
        return Check("store", True, "the store takes writes")

    def _disk_check(self) -> Check:
        full = dict(self._disk_full)
        if full:
            return Check(
                "disk",
                False,
                "; ".join(f"a write to the {where} failed: {why}" for where, why in full.items()),
            )
        problem = self._probe("disk", self._too_little_space)
        if problem is not None:
            return Check("disk", False, problem)
        return Check("disk", True, "the data directory has space")

    def _probe(self, name: str, probe: Callable[[], str | None]) -> str | None:
        now = self._clock()
        cached = self._probed.get(name)
        if cached is not None and now - cached[0] < _PROBE_SECONDS:
            return cached[1]
        problem = probe()
        self._probed[name] = (now, problem)
        return problem

    def _write_again(self) -> str | None:
        """Try the store probe; a success clears the failure (the store reports it)."""
        assert self.store_probe is not None
        try:
            self.store_probe()
        except Exception as error:
            return _describe(error)
        return None

    def _store_unwritable(self) -> str | None:
        """Whether the database files open for writing (a read-only file, directory or mount
        fails here before a write does: the server's open handles keep writing until then)."""
        for path in self.store_files:
            if not path.exists():
                continue
            try:
                fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CLOEXEC)
            except OSError as error:
                return f"{path.name} cannot be opened for writing: {error.strerror}"
            os.close(fd)
        return None

    def _too_little_space(self) -> str | None:
        if self.data_dir is None:
            return None
        try:
            stat = os.statvfs(self.data_dir)
        except OSError as error:
            return f"cannot read the free space of the data directory: {error.strerror}"
        free = stat.f_bavail * stat.f_frsize
        if free < self.min_free_bytes:
            return (
                f"{free // (1024 * 1024)} MiB free for the data directory, "
                f"less than {self.min_free_bytes // (1024 * 1024)} MiB"
            )
        return None


def _is_no_space(error: BaseException) -> bool:
    """Whether `error`, or an error it was raised from, is ENOSPC or EDQUOT."""
    found: BaseException | None = error
    for _ in range(8):  # a chain is short; a bound keeps a strange one from looping
        if found is None:
            return False
        if isinstance(found, OSError) and found.errno in _NO_SPACE:
            return True
        found = found.__cause__ or found.__context__
    return False


def _describe(error: BaseException) -> str:
    text = str(error).splitlines()[0] if str(error) else ""
    return f"{type(error).__name__}: {text}"[:300] if text else type(error).__name__


_current = Health()


def current() -> Health:
    """This process's Health."""
    return _current


def record_disk_full(where: str, reason: str) -> None:
    """A write to `where` failed for lack of space (see Health.record_disk_full)."""
    _current.record_disk_full(where, reason)


def record_disk_ok(where: str) -> None:
    """A write to `where` succeeded again (see Health.record_disk_ok)."""
    _current.record_disk_ok(where)


def record_write_error(where: str, error: OSError) -> None:
    """Record `error` of a write to `where` as a full disk if it is ENOSPC or EDQUOT."""
    _current.record_write_error(where, error)
