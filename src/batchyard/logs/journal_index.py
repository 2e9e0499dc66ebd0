"""JournalIndex: which streams a group's journal declares, in tens of bytes a stream.

A hash table written by hand, and why: most attempts print nothing, so most log streams never
get a file and live only as a line in their group's journal (`journal.py`); the file store must
answer "does this stream exist, and since when" for every one of them, a million or more, from
memory. A dict keeps each key as a Python object: name -> createdAt cost about 170 bytes a
stream (the name's string included), and even hash -> offset about 120 (two int objects and the
entry), besides needing a list wherever two names share a hash. Neither the standard library
nor Batchyard's dependencies offer a hash table of machine integers, and an SQLite index would
cost a query per lookup. This table holds two int64 columns, 23 to 46 bytes a stream; with the
bounded cache of the file store, 1,000,000 streams (2% with output) grew the process 54 MB
where it grew 554 MB before (docs/performance.md, the ledger). Guarded by
tests/unit/test_journal_index.py (answers as a dict would, whatever the hashes collide on; 23 to
46 bytes a stream) and tests/contract/test_logs.py (real journals, one hash for every name).
"""

from __future__ import annotations

import os
from array import array
from collections.abc import Callable

ParseDeclaration = Callable[[bytes], tuple[str, int] | None]
"""(stream, createdAt) that a journal line declares, or None for any other line."""


class JournalIndex:
    """The streams a group's journal declares and that have neither a file nor a deletion, as
    an open-addressing table of (hash of the name, offset of its create line in the journal):
    two int64 arrays, 16 bytes a slot, at most 70% full (23 to 46 bytes a stream). The names
    and createdAt stay on disk: a hash match is confirmed by reading the line at its offset
    (`parse_declaration` says what the line declares), so every answer is exact, and a name
    the journal never declared (every new stream) is answered without any I/O."""

    _MAX_LOAD = 0.7
    _MIN_SLOTS = 8
    _REMOVED = -1  # in _offsets: a tombstone, which lookups probe past

    def __init__(self, path: str, parse_declaration: ParseDeclaration) -> None:
        self.path = path
        self._parse_declaration = parse_declaration
        self._hashes = array("q", bytes(8 * self._MIN_SLOTS))  # 0: a slot never used
        self._offsets = array("q", bytes(8 * self._MIN_SLOTS))
        self._mask = self._MIN_SLOTS - 1
        self._live = 0
        self._used = 0  # live entries and tombstones: what makes probes long

    def __len__(self) -> int:
        return self._live

    @staticmethod
    def _hash(name: str) -> int:
        # The built-in hash is salted per process: fine, the table never leaves this process.
        return hash(name) or 1

    def _entry_at(self, offset: int, fd: int | None) -> tuple[str, int] | None:
        own = fd is None
        if fd is None:
            try:
                fd = os.open(self.path, os.O_RDONLY)
            except FileNotFoundError:
                return None
        try:
            data = b""
            while b"\n" not in data:
                chunk = os.pread(fd, max(256, len(data)), offset + len(data))
                if not chunk:
                    break
                data += chunk
        finally:
            if own:
                os.close(fd)
        return self._parse_declaration(data.split(b"\n", 1)[0])

    def locate(self, name: str, fd: int | None = None) -> tuple[int, int] | None:
        """(slot, createdAt) of the stream's entry; reads the journal (through fd if given)
        only for an entry whose hash is the name's."""
        h = self._hash(name)
        hashes, offsets, mask = self._hashes, self._offsets, self._mask
        i = h & mask
        while True:
            found = hashes[i]
            if found == 0:
                return None
            if found == h and offsets[i] != self._REMOVED:
                entry = self._entry_at(offsets[i], fd)
                if entry is not None and entry[0] == name:
                    return i, entry[1]
            i = (i + 1) & mask

    def created_at(self, name: str, fd: int | None = None) -> int | None:
        found = self.locate(name, fd)
        return None if found is None else found[1]

    def remove(self, slot: int) -> None:
        self._offsets[slot] = self._REMOVED
        self._live -= 1

    def discard(self, name: str, fd: int | None = None) -> bool:
        found = self.locate(name, fd)
        if found is not None:
            self.remove(found[0])
        return found is not None

    def holds(self, name: str, offset: int) -> bool:
        """Whether the line at offset is the live declaration of name (no I/O)."""
        h = self._hash(name)
        hashes, offsets, mask = self._hashes, self._offsets, self._mask
        i = h & mask
        while hashes[i] != 0:
            if hashes[i] == h and offsets[i] == offset:
                return True
            i = (i + 1) & mask
        return False

    def declare(self, name: str, offset: int, fd: int | None = None) -> bool:
        """Declare a stream unless the table holds it (the first declaration wins), in one
        probe; whether it was added."""
        if self._used + 1 > self._MAX_LOAD * (self._mask + 1):
            self._resize()
        h = self._hash(name)
        hashes, offsets, mask = self._hashes, self._offsets, self._mask
        i = h & mask
        free = -1
        while (found := hashes[i]) != 0:
            if offsets[i] == self._REMOVED:
                if free < 0:
                    free = i
            elif found == h:
                entry = self._entry_at(offsets[i], fd)
                if entry is not None and entry[0] == name:
                    return False
            i = (i + 1) & mask
        if free < 0:
            free = i
            self._used += 1
        hashes[free] = h
        offsets[free] = offset
        self._live += 1
        return True

    def add(self, name: str, offset: int) -> None:
        """Declare a stream the table does not hold."""
        if self._used + 1 > self._MAX_LOAD * (self._mask + 1):
            self._resize()
        h = self._hash(name)
        hashes, offsets, mask = self._hashes, self._offsets, self._mask
        i = h & mask
        while hashes[i] != 0 and offsets[i] != self._REMOVED:
            i = (i + 1) & mask
        if hashes[i] == 0:
            self._used += 1
        hashes[i] = h
        offsets[i] = offset
        self._live += 1

    def _resize(self) -> None:
        """Rehash the live entries (dropping tombstones) into a table at most half full: as
        it only grows, it doubles, so it stays 35% to 70% full."""
        slots = self._MIN_SLOTS
        while self._live + 1 > slots // 2:
            slots *= 2
        old = zip(self._hashes, self._offsets, strict=True)
        hashes, offsets, mask = (
            array("q", bytes(8 * slots)),
            array("q", bytes(8 * slots)),
            slots - 1,
        )
        for h, offset in old:
            if h != 0 and offset != self._REMOVED:
                i = h & mask
                while hashes[i] != 0:
                    i = (i + 1) & mask
                hashes[i] = h
                offsets[i] = offset
        self._hashes, self._offsets, self._mask, self._used = hashes, offsets, mask, self._live
