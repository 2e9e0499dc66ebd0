"""Spare files: empty files made ahead of need on a background thread, renamed into place.

Owns the directory of spares of one FileLogStore root (`.spare`). An optimisation only (see the
ledger in docs/performance.md): every failure to make or take a spare falls back to creating
the file where it is needed.
"""

from __future__ import annotations

import itertools
import os
import threading
from pathlib import Path


class SpareFiles:
    """Empty files made ahead of need on a background thread, renamed into place on demand:
    on some disks creating an inode costs a millisecond of CPU, a rename microseconds."""

    _LOW = 8
    _BATCH = 32

    def __init__(self, directory: Path) -> None:
        directory.mkdir(exist_ok=True)
        self._directory = directory
        self._prefix = f"{os.getpid()}-{id(self):x}-"
        self._names = itertools.count()
        self._lock = threading.Lock()
        self._ready = [entry.path for entry in os.scandir(directory)]  # earlier runs' spares
        self._refilling = False

    def place(self, path: str) -> None:
        """Create `path` as an empty file."""
        with self._lock:
            spare = self._ready.pop() if self._ready else None
            refill = len(self._ready) < self._LOW and not self._refilling
            self._refilling = self._refilling or refill
        if refill:
            threading.Thread(target=self._refill, daemon=True, name="log-spares").start()
        if spare is not None:
            try:
                os.rename(spare, path)  # another store on this root may have taken it
                return
            except OSError:
                pass
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))

    def _refill(self) -> None:
        made: list[str] = []
        try:
            for _ in range(self._BATCH):
                spare = os.path.join(self._directory, self._prefix + str(next(self._names)))
                os.close(os.open(spare, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
                made.append(spare)
        except OSError:  # e.g. the root went away: spares are an optimisation only
            pass
        with self._lock:
            self._ready.extend(made)
            self._refilling = False
