"""A full disk: which errors mean one, and each episode from the first write refused for want
of space until the disk has room again.

The writers (the SQLite store, the log store) tell `episodes` of a refused write with the
directory it was for. The API answers such failures with a ServerException saying so, the
dispatcher decides nothing and retries recording what runtimes reported, and health.py's disk
check fails for the episode's length. An episode ends when the directory's disk shows room
again (statvfs), checked at most every quarter second whenever someone asks. One warning is
logged when an episode begins and one when it ends, however many writes fail in between.
"""

from __future__ import annotations

import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from batchyard import health

log = logging.getLogger("batchyard.disk")

ROOM_BYTES = 1 << 20
"""Free space on a disk found full that ends its episode (or 1/64 of a smaller disk)."""

_CHECK_SECONDS = 0.25
_SQLITE_FULL = 13  # sqlite3.Error.sqlite_errorcode of "database or disk is full"
_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)

STORE = "store"
LOG_STORE = "log store"


def is_disk_full(error: BaseException | None) -> bool:
    """Whether `error` (or what it wraps: SQLAlchemy's `.orig`, an explicit `raise ... from`)
    is a write refused for want of space: OSError ENOSPC / EDQUOT, or SQLite's SQLITE_FULL."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _NO_SPACE:
            return True
        if isinstance(error, sqlite3.Error) and (
            getattr(error, "sqlite_errorcode", None) == _SQLITE_FULL
            or "database or disk is full" in str(error)
        ):
            return True
        wrapped = getattr(error, "orig", None)
        error = wrapped if isinstance(wrapped, BaseException) else error.__cause__
    return False


def has_room(directory: str, room: int = ROOM_BYTES) -> bool:
    """Whether the disk of `directory` has `room` bytes free (or 1/64 of itself, if smaller)
    for this process (root may use the blocks a filesystem reserves for it)."""
    try:
        stat = os.statvfs(directory)
    except OSError:
        return True  # gone: nothing there to wait for
    free = stat.f_bfree if os.geteuid() == 0 else stat.f_bavail
    return free * stat.f_frsize >= min(room, stat.f_blocks * stat.f_frsize // 64)


@dataclass(slots=True)
class _Episode:
    directory: str  # where a write was first refused; its disk is checked for room
    began: float  # monotonic seconds
    writers: set[str]  # what was refused there: "store", "log store"


class Episodes:
    """The disks that refused a write, each until it has room again. One episode per disk,
    whichever directories of it and writers were refused. Thread-safe: the API's thread pool
    and the log store's flush thread report here too."""

    def __init__(
        self,
        room: int = ROOM_BYTES,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._room = room
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._full: dict[int | str, _Episode] = {}  # device id (or directory) -> episode
        self._checked = 0.0

    def noticed(self, error: BaseException, directory: str, what: str) -> bool:
        """Take note of a failed write to `directory` (by `what`, e.g. "store"); True if it
        failed for want of space. Logs a warning when this begins an episode."""
        if not is_disk_full(error):
            return False
        disk = _disk_of(directory)
        with self._lock:
            episode = self._full.get(disk)
            begins = episode is None
            if episode is None:
                episode = self._full[disk] = _Episode(directory, self._monotonic(), set())
            new_writer = what not in episode.writers
            episode.writers.add(what)
        reason = _first_line(error)
        if new_writer:
            # Its own name in health's disk check: a store write that succeeds (in the
            # slack of a page) clears the store's, not this, which ends with the episode.
            health.record_disk_full(f"{what}'s disk", f"{reason} ({directory})")
        if begins:
            log.warning(
                "The disk of %s is full: the %s cannot write there (%s). Batchyard stores "
                "what it can and retries the rest once space is freed there",
                directory,
                what,
                reason,
            )
        return True

    def full(self) -> list[str]:
        """The directories of the disks still full (each checked for room again at most every
        quarter second); empty when none is."""
        if not self._full:
            return []
        now = self._monotonic()
        with self._lock:
            due = now - self._checked >= _CHECK_SECONDS
            if due:
                self._checked = now
            found = list(self._full.items())
        if due:
            for disk, episode in found:
                if has_room(episode.directory, self._room):
                    self._ended(disk, now)
        with self._lock:
            return sorted(episode.directory for episode in self._full.values())

    def _ended(self, disk: int | str, now: float) -> None:
        with self._lock:
            episode = self._full.pop(disk, None)
            if episode is None:
                return
            still = {what for other in self._full.values() for what in other.writers}
        for what in episode.writers - still:
            health.record_disk_ok(f"{what}'s disk")
        log.warning(
            "The disk of %s has room again after %.1f s: writes resume",
            episode.directory,
            now - episode.began,
        )


def _disk_of(directory: str) -> int | str:
    try:
        return os.stat(directory).st_dev
    except OSError:
        return directory


def _first_line(error: BaseException) -> str:
    wrapped = getattr(error, "orig", None)
    shown = wrapped if isinstance(wrapped, BaseException) else error
    return (str(shown).splitlines() or [type(shown).__name__])[0]


episodes = Episodes()
"""This process's episodes: a full disk is a fact about the machine, not about one object."""
