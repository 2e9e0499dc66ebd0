"""FileLogStore: the LogStore on disk, and FileLogStoreReader, its read-only view.

Owns the bounded cache of the streams in use and every decision of the store: when a stream
gets its file, when its group's journal is written, replayed and compacted. What is on disk is
its parts' own: `stream_files` (a stream's file), `journal` and `journal_index` (the streams
with no file yet), `file_names` (names under the root), `spare_files` (files made ahead). One
process owns a root at a time; other processes read it through FileLogStoreReader. Imports no
runtime and no state store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import threading
from array import array
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from batchyard import disk_full
from batchyard.logs import journal
from batchyard.logs.base import LogEvent, StreamInfo, check_window
from batchyard.logs.file_names import (
    GROUP_FILE,
    SPARE_DIR,
    STREAM_SUFFIX,
    decode_name,
    encode_name,
    quote_name,
)
from batchyard.logs.journal_index import JournalIndex
from batchyard.logs.spare_files import SpareFiles
from batchyard.logs.stream_files import (
    FileStream,
    empty_stream,
    event_line,
    header_line,
    line_offsets,
    load_stream,
    parse_event,
)

log = logging.getLogger(__name__)


class FileLogStore:
    """A LogStore of append-only JSON-lines files under root, one file per stream.

    One process owns a root at a time. Each stream is looked up lazily; its line-offset index
    grows with the appends from its first event on, or is built on first read of a stream
    loaded from its file, so read(start, limit) costs O(limit) and append never reads back. A
    stream gets its file with its first event: until then it lives in memory and, within a
    second, in its group's journal (so an empty stream created just before a crash may be
    lost; its events never are). Most streams of short attempts thus cost no file until they
    have output.

    Memory does not grow with the streams ever made: the disk is the truth, and only the most
    recently used streams (`cache_streams`, holding at most `cache_offsets` line offsets in
    all) and those created in the last second (not yet journaled) are kept; any other stream
    is read again from its file or its journal entry when next used. What is kept per empty
    stream is a slot of its group's JournalIndex (tens of bytes).
    """

    FLUSH_SECONDS = 1.0
    # The streams in use at once are those of running attempts (as many as the compute
    # environments have vCPUs for: hundreds) and those clients are reading. A cached stream
    # costs about 0.5 KB besides its offsets, so 4096 of them about 2 MB; the offsets (8
    # bytes a line) are capped on their own, since one stream may have millions of lines.
    CACHE_STREAMS = 4096
    CACHE_OFFSETS = 1 << 22  # 32 MiB

    def __init__(
        self,
        root: Path,
        *,
        cache_streams: int = CACHE_STREAMS,
        cache_offsets: int = CACHE_OFFSETS,
        read_only: bool = False,
    ) -> None:
        """read_only: a view of another process's root, which must never write to it (no
        journal compaction, no spare files); its write methods must not be called."""
        if cache_streams < 1 or cache_offsets < 0:
            raise ValueError("cache_streams must be >= 1 and cache_offsets >= 0")
        self._root = root
        self._root_str = str(root)
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._cache_streams = cache_streams
        self._cache_offsets = cache_offsets
        self._read_only = read_only
        # Most recently used last: (group, stream) -> stream, or None for a known miss.
        self._streams: OrderedDict[tuple[str, str], FileStream | None] = OrderedDict()
        self._cached_offsets = 0  # line offsets held by the streams in _streams
        self._groups: set[str] | None = None  # None until the root has been scanned
        self._ensured_groups: set[str] = set()  # directories known to exist
        self._group_dirs: dict[str, str] = {}  # group -> its directory
        self._journals: dict[str, JournalIndex] = {}  # group -> its empty streams
        # Per group, the empty streams created since the last flush: only in memory so far,
        # so never dropped with the cache.
        self._unjournaled: dict[str, dict[str, FileStream]] = {}
        self._flush_timer: threading.Timer | None = None
        self._spares: SpareFiles | None = None  # made with the first file

    # -- the cache ----------------------------------------------------------------------------

    def _remember(self, group: str, stream: str, found: FileStream | None) -> None:
        key = (group, stream)
        old = self._streams.pop(key, None)
        if old is not None and old.offsets is not None:
            self._cached_offsets -= len(old.offsets)
        self._streams[key] = found
        self._weigh(0 if found is None or found.offsets is None else len(found.offsets))

    def _weigh(self, added: int) -> None:
        """Count `added` more line offsets held by the most recently used stream, then evict
        the least recently used streams past either bound (never the one in use)."""
        self._cached_offsets += added
        streams = self._streams
        while len(streams) > 1 and (
            len(streams) > self._cache_streams or self._cached_offsets > self._cache_offsets
        ):
            _, evicted = streams.popitem(last=False)
            if evicted is not None and evicted.offsets is not None:
                self._cached_offsets -= len(evicted.offsets)

    # -- lookup -------------------------------------------------------------------------------

    def _group_dir(self, group: str) -> str:
        found = self._group_dirs.get(group)
        if found is None:
            if len(self._group_dirs) >= 1024:  # names asked for by clients need not exist
                self._group_dirs.clear()
            found = self._group_dirs[group] = os.path.join(self._root_str, encode_name(group))
        return found

    def _stream_path(self, group: str, stream: str) -> str:
        return f"{self._group_dir(group)}{os.sep}{encode_name(stream)}{STREAM_SUFFIX}"

    def _find(self, group: str, stream: str, remember_miss: bool = True) -> FileStream | None:
        """The stream from the cache, else from what is not journaled yet, else from its file,
        else from the group's journal; None if it has none of these."""
        key = (group, stream)
        if key in self._streams:
            self._streams.move_to_end(key)
            return self._streams[key]
        found = self._unjournaled.get(group, {}).get(stream)
        if found is None:
            path = self._stream_path(group, stream)
            if os.access(path, os.F_OK):  # a missing file costs no exception this way
                found = load_stream(path, stream)
            if found is None:
                if self._read_only and group not in self._journals:
                    created_at = journal.declared_created_at(self._journal_path(group), stream)
                else:
                    created_at = self._journal(group).created_at(stream)
                if created_at is not None:
                    found = empty_stream(path, stream, created_at, journaled=True)
        if found is not None or remember_miss:
            self._remember(group, stream, found)
        return found

    def _index(self, s: FileStream) -> array[int]:
        """The stream's line offsets; s must be the most recently used cached stream."""
        if s.offsets is not None:
            return s.offsets
        offsets = line_offsets(s.path, s.end) if s.on_disk else array("q")
        s.offsets = offsets
        self._weigh(len(offsets))
        return offsets

    def _ensure_group(self, group: str) -> str:
        directory = self._group_dir(group)
        if group in self._ensured_groups:
            return directory
        Path(directory).mkdir(exist_ok=True)
        marker = Path(directory) / GROUP_FILE
        if not marker.exists():
            marker.write_text(json.dumps({"group": group}) + "\n")
        self._ensured_groups.add(group)
        if self._groups is not None:
            self._groups.add(group)
        return directory

    # -- the group journal of empty streams ---------------------------------------------------

    def _journal(self, group: str) -> JournalIndex:
        """The streams created in the group and still without a file, replayed from its
        journal: {"stream", "createdAt"} creates, {"written"} (it has a file now) and
        {"deleted"} end. Compacted when mostly ended."""
        found = self._journals.get(group)
        if found is not None:
            return found
        path = self._journal_path(group)
        index, entries = journal.replay(path)
        if entries > 2 * len(index) + 64 and not self._read_only:
            try:
                index = journal.compact(index)
            except OSError as error:
                log.warning("Could not compact the log stream journal %s: %s", path, error)
        if entries or group in self._ensured_groups:
            # Not kept for a group without a journal this process never wrote to: clients
            # may ask about any name.
            self._journals[group] = index
        return index

    def _journal_path(self, group: str) -> str:
        return os.path.join(self._group_dir(group), journal.JOURNAL_FILE)

    def _write_journal(self, group: str, entries: list[dict[str, Any]]) -> list[int]:
        """Append entries to the group's journal; the offset of each one's line."""
        return journal.append(
            os.path.join(self._ensure_group(group), journal.JOURNAL_FILE), entries
        )

    def flush(self) -> None:
        """Journal the empty streams created since the last flush (runs by itself within
        FLUSH_SECONDS; call it before a clean shutdown)."""
        with self._lock:
            if self._flush_timer is not None:
                self._flush_timer.cancel()
                self._flush_timer = None
            unjournaled, self._unjournaled = self._unjournaled, {}
            try:
                for group in list(unjournaled):
                    created = list(unjournaled[group].values())
                    offsets = self._write_journal(
                        group, [{"stream": s.name, "createdAt": s.created_at} for s in created]
                    )
                    del unjournaled[group]
                    index = self._journals.get(group)
                    for s, offset in zip(created, offsets, strict=True):
                        s.journaled = True
                        if index is not None:
                            index.declare(s.name, offset)
            finally:
                # What could not be journaled stays in memory, for the next flush.
                for group, created_in_group in unjournaled.items():
                    self._unjournaled.setdefault(group, {}).update(created_in_group)

    def _flush_in_background(self) -> None:
        try:
            self.flush()
        except Exception as error:  # e.g. the root went away; the next flush tries again
            if not disk_full.episodes.noticed(error, self._root_str, disk_full.LOG_STORE):
                log.exception("Journaling new log streams under %s failed", self._root)

    # -- creating -----------------------------------------------------------------------------

    def _create_empty(self, group: str, stream: str, created_at: int) -> FileStream:
        self._ensure_group(group)
        created = empty_stream(self._stream_path(group, stream), stream, created_at, False)
        self._remember(group, stream, created)
        self._unjournaled.setdefault(group, {})[stream] = created
        if self._flush_timer is None:
            self._flush_timer = threading.Timer(self.FLUSH_SECONDS, self._flush_in_background)
            self._flush_timer.daemon = True
            self._flush_timer.start()
        return created

    def _give_file(self, group: str, s: FileStream) -> None:
        """The stream's first events are coming: write its file (header only, so far)."""
        self._ensure_group(group)
        header = header_line(s.name, s.created_at)
        if self._spares is None:
            self._spares = SpareFiles(self._root / SPARE_DIR)
        self._spares.place(s.path)
        try:
            with open(s.path, "r+b") as f:
                f.write(header)
        except OSError:
            with contextlib.suppress(OSError):  # placed again by the next append
                os.unlink(s.path)
            raise
        s.end = len(header)
        s.on_disk = True
        if s.offsets is None:
            s.offsets = array("q")  # known without reading: the file has no event yet
        self._unjournaled.get(group, {}).pop(s.name, None)
        if s.journaled:
            self._write_journal(group, [{"written": s.name}])
            index = self._journals.get(group)
            if index is not None:
                index.discard(s.name)

    # -- protocol -----------------------------------------------------------------------------

    def create_stream(self, group: str, stream: str, created_at: int) -> None:
        with self._lock:
            if self._find(group, stream, remember_miss=False) is None:
                self._create_empty(group, stream, created_at)

    def append(
        self, group: str, stream: str, events: Sequence[tuple[int, str]], ingestion_time: int
    ) -> None:
        with self._lock:
            s = self._find(group, stream, remember_miss=False) or self._create_empty(
                group, stream, ingestion_time
            )
            if not events:
                return
            lines = [event_line(ts, message, ingestion_time) for ts, message in events]
            try:
                if not s.on_disk:
                    self._give_file(group, s)
                with open(s.path, "r+b") as f:
                    if s.torn:
                        f.truncate(s.end)
                        s.torn = False
                    f.seek(s.end)
                    f.write(b"".join(lines))
            except OSError as error:
                # Part of the lines may be in the file: none is stored until all are, and
                # the next append cuts them off first. A caller retries the same events.
                s.torn = s.on_disk
                disk_full.episodes.noticed(error, self._root_str, disk_full.LOG_STORE)
                raise
            # Offsets already built grow with the file; others wait for a read to need them,
            # so appending to a stream the cache dropped never reads the file back.
            offsets = s.offsets
            for line in lines:
                if offsets is not None:
                    offsets.append(s.end)
                s.end += len(line)
            if s.first_event_timestamp is None:
                s.first_event_timestamp = events[0][0]
            s.last_event_timestamp = events[-1][0]
            s.last_ingestion_time = ingestion_time
            if offsets is not None:
                self._weigh(len(lines))

    def read(self, group: str, stream: str, start: int, limit: int) -> list[LogEvent]:
        check_window(start, limit)
        with self._lock:
            s = self._find(group, stream)
            if s is None:
                return []
            offsets = self._index(s)
            if start >= len(offsets) or limit == 0:
                return []
            stop = start + limit
            begin = offsets[start]
            finish = offsets[stop] if stop < len(offsets) else s.end
            with open(s.path, "rb") as f:
                f.seek(begin)
                data = f.read(finish - begin)
        return [parse_event(line) for line in data.splitlines()]

    def count(self, group: str, stream: str) -> int:
        with self._lock:
            s = self._find(group, stream)
            return 0 if s is None else len(self._index(s))

    def stream_info(self, group: str, stream: str) -> StreamInfo | None:
        with self._lock:
            s = self._find(group, stream)
            return None if s is None else s.info()

    def _list_group(self, group: str, prefix: str | None) -> dict[str, StreamInfo]:
        """Every stream of the group whose name starts with prefix: the cached ones as they
        are, the others from the directory, the journal and what is not journaled yet. Read
        from disk each time, and not cached: a listing must not push the streams in use out."""
        found: dict[str, StreamInfo] = {}
        cached_files: set[str] = set()
        for (in_group, name), s in self._streams.items():
            if in_group != group or s is None:
                continue
            if s.on_disk:
                cached_files.add(os.path.basename(s.path))
            if prefix is None or name.startswith(prefix):
                found[name] = s.info()
        # Encoding keeps prefixes (one character at a time), but a hashed name hides its own.
        encoded_prefix = quote_name(prefix) if prefix else ""
        directory = self._group_dir(group)
        with (
            contextlib.suppress(FileNotFoundError, NotADirectoryError),
            os.scandir(directory) as it,
        ):
            for entry in it:
                if not entry.name.endswith(STREAM_SUFFIX) or entry.name in cached_files:
                    continue
                stem = entry.name[: -len(STREAM_SUFFIX)]
                if not stem.startswith(("~", encoded_prefix)):
                    continue
                try:
                    expected = decode_name(stem)
                except ValueError:
                    continue  # not a name this store encoded
                loaded = load_stream(entry.path, expected)
                if (
                    loaded is not None
                    and loaded.name not in found
                    and (prefix is None or loaded.name.startswith(prefix))
                ):
                    found[loaded.name] = loaded.info()
        for name, created_at in journal.live_declarations(self._journal(group), prefix):
            if name not in found:
                found[name] = StreamInfo(name, created_at, None, None, None, 0)
        for name, s in self._unjournaled.get(group, {}).items():
            if name not in found and (prefix is None or name.startswith(prefix)):
                found[name] = s.info()
        return found

    def list_streams(self, group: str, prefix: str | None = None) -> list[StreamInfo]:
        with self._lock:
            found = self._list_group(group, prefix)
        return [found[name] for name in sorted(found)]

    def list_groups(self) -> list[str]:
        with self._lock:
            if self._groups is None:
                groups: set[str] = set()
                for entry in os.scandir(self._root):
                    if entry.name == SPARE_DIR:
                        continue
                    marker = Path(entry.path) / GROUP_FILE
                    with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                        groups.add(str(json.loads(marker.read_text())["group"]))
                self._groups = groups
            return sorted(self._groups)

    def delete_stream(self, group: str, stream: str) -> bool:
        with self._lock:
            s = self._find(group, stream)
            if s is None:
                return False
            if s.on_disk:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(s.path)
            index = self._journal(group)
            declared = index.locate(stream)
            if s.journaled or declared is not None:
                self._write_journal(group, [{"deleted": stream}])
                if declared is not None:
                    index.remove(declared[0])
            self._unjournaled.get(group, {}).pop(stream, None)
            self._remember(group, stream, None)
            return True


class FileLogStoreReader:
    """Another process's FileLogStore, read only: the root is looked up afresh on every call
    (a FileLogStore caches what its own process wrote, which another process must not trust).
    Streams made in the last second that have no events yet may be missing. Used by API-only
    processes (`--api-processes`); the main process writes and expires the logs."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def _fresh(self) -> FileLogStore:
        return FileLogStore(self._root, read_only=True)

    def create_stream(self, group: str, stream: str, created_at: int) -> None:
        raise RuntimeError("API processes do not write log streams")

    def append(
        self, group: str, stream: str, events: Sequence[tuple[int, str]], ingestion_time: int
    ) -> None:
        raise RuntimeError("API processes do not write log streams")

    def delete_stream(self, group: str, stream: str) -> bool:
        raise RuntimeError("API processes do not write log streams")

    def read(self, group: str, stream: str, start: int, limit: int) -> list[LogEvent]:
        return self._fresh().read(group, stream, start, limit)

    def count(self, group: str, stream: str) -> int:
        return self._fresh().count(group, stream)

    def stream_info(self, group: str, stream: str) -> StreamInfo | None:
        return self._fresh().stream_info(group, stream)

    def list_streams(self, group: str, prefix: str | None = None) -> list[StreamInfo]:
        return self._fresh().list_streams(group, prefix)

    def list_groups(self) -> list[str]:
        return self._fresh().list_groups()
