"""Log streams: the LogStore protocol, an append-only file store and an in-memory store.

Owns where attempt output is kept and how it is paged by event index. Imports no runtime
and no state store; CloudWatch wire concerns (tokens, shapes) belong to the API layer.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import os
import threading
from array import array
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from urllib.parse import quote, unquote

log = logging.getLogger(__name__)

EVENT_OVERHEAD_BYTES = 26
"""CloudWatch Logs counts each event as its UTF-8 message plus 26 bytes."""


@dataclass(frozen=True, slots=True)
class LogEvent:
    timestamp: int  # epoch ms, when the line was produced (read)
    message: str
    ingestion_time: int  # epoch ms, when the store received it


@dataclass(frozen=True, slots=True)
class StreamInfo:
    name: str
    created_at: int
    first_event_timestamp: int | None
    last_event_timestamp: int | None
    last_ingestion_time: int | None
    stored_bytes: int


class LogStore(Protocol):
    """Log groups of log streams of events. Sync and thread-safe."""

    def create_stream(self, group: str, stream: str, created_at: int) -> None:
        """Create the stream (and its group) unless it exists."""
        ...

    def append(
        self, group: str, stream: str, events: Sequence[tuple[int, str]], ingestion_time: int
    ) -> None:
        """Append (timestamp, message) events, creating the stream if absent. Durable against
        a crash of the calling process once it returns."""
        ...

    def read(self, group: str, stream: str, start: int, limit: int) -> list[LogEvent]:
        """Events [start, start + limit) by 0-based position in the stream; [] if absent."""
        ...

    def count(self, group: str, stream: str) -> int:
        """Number of events in the stream (0 if absent)."""
        ...

    def stream_info(self, group: str, stream: str) -> StreamInfo | None: ...

    def list_streams(self, group: str, prefix: str | None = None) -> list[StreamInfo]:
        """Streams of the group whose name starts with prefix, sorted by name."""
        ...

    def list_groups(self) -> list[str]:
        """Every group that has (or had) a stream, sorted."""
        ...

    def delete_stream(self, group: str, stream: str) -> bool:
        """Delete the stream; False if it did not exist."""
        ...


def _check_window(start: int, limit: int) -> None:
    if start < 0 or limit < 0:
        raise ValueError(f"start and limit must be >= 0, got start={start} limit={limit}")


# --------------------------------------------------------------------------------------------
# In memory


@dataclass(slots=True)
class _MemoryStream:
    created_at: int
    events: list[LogEvent]
    stored_bytes: int = 0

    def info(self, name: str) -> StreamInfo:
        first = self.events[0] if self.events else None
        last = self.events[-1] if self.events else None
        return StreamInfo(
            name=name,
            created_at=self.created_at,
            first_event_timestamp=first.timestamp if first else None,
            last_event_timestamp=last.timestamp if last else None,
            last_ingestion_time=last.ingestion_time if last else None,
            stored_bytes=self.stored_bytes,
        )


class MemoryLogStore:
    """A LogStore in a dict, for tests and simulation."""

    def __init__(self) -> None:
        self._groups: dict[str, dict[str, _MemoryStream]] = {}
        self._lock = threading.Lock()

    def _ensure(self, group: str, stream: str, created_at: int) -> _MemoryStream:
        streams = self._groups.setdefault(group, {})
        found = streams.get(stream)
        if found is None:
            found = streams[stream] = _MemoryStream(created_at=created_at, events=[])
        return found

    def create_stream(self, group: str, stream: str, created_at: int) -> None:
        with self._lock:
            self._ensure(group, stream, created_at)

    def append(
        self, group: str, stream: str, events: Sequence[tuple[int, str]], ingestion_time: int
    ) -> None:
        with self._lock:
            target = self._ensure(group, stream, ingestion_time)
            for timestamp, message in events:
                target.events.append(LogEvent(timestamp, message, ingestion_time))
                target.stored_bytes += len(message.encode()) + EVENT_OVERHEAD_BYTES

    def read(self, group: str, stream: str, start: int, limit: int) -> list[LogEvent]:
        _check_window(start, limit)
        with self._lock:
            found = self._groups.get(group, {}).get(stream)
            return [] if found is None else found.events[start : start + limit]

    def count(self, group: str, stream: str) -> int:
        with self._lock:
            found = self._groups.get(group, {}).get(stream)
            return 0 if found is None else len(found.events)

    def stream_info(self, group: str, stream: str) -> StreamInfo | None:
        with self._lock:
            found = self._groups.get(group, {}).get(stream)
            return None if found is None else found.info(stream)

    def list_streams(self, group: str, prefix: str | None = None) -> list[StreamInfo]:
        with self._lock:
            streams = self._groups.get(group, {})
            return [
                streams[name].info(name)
                for name in sorted(streams)
                if prefix is None or name.startswith(prefix)
            ]

    def list_groups(self) -> list[str]:
        with self._lock:
            return sorted(self._groups)

    def delete_stream(self, group: str, stream: str) -> bool:
        with self._lock:
            return self._groups.get(group, {}).pop(stream, None) is not None


# --------------------------------------------------------------------------------------------
# On disk: root/<group>/<stream>.log, one JSON line per event after a header line.

_MAX_FILE_STEM = 200  # leaves room for the suffix under the usual 255-byte name limit
_GROUP_FILE = "group.json"
_JOURNAL_FILE = "streams.jsonl"  # not a stream file: those end in .log
_SPARE_DIR = ".spare"  # group directories never start with '.': it is always escaped
_STREAM_SUFFIX = ".log"
_READ_CHUNK = 1 << 20


def _encode_name(name: str) -> str:
    """A file name for a group or stream name: reversible percent-encoding (everything outside
    [A-Za-z0-9_-] escaped, so no '/', '.' or '..'), or a hash when that would be too long (the
    real name is then read back from the file's header)."""
    raw = name.encode()
    encoded = quote(raw, safe="").replace(".", "%2E").replace("~", "%7E")
    if len(encoded) > _MAX_FILE_STEM:
        return "~" + hashlib.sha256(raw).hexdigest()
    return encoded


def _decode_name(encoded: str) -> str | None:
    """The name behind _encode_name, or None for a hashed name."""
    return None if encoded.startswith("~") else unquote(encoded, errors="strict")


def _event_line(timestamp: int, message: str, ingestion_time: int) -> bytes:
    return (json.dumps([timestamp, ingestion_time, message]) + "\n").encode()


def _journal_line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry) + "\n").encode()


def _parse_event(line: bytes) -> LogEvent:
    timestamp, ingestion_time, message = json.loads(line)
    return LogEvent(int(timestamp), str(message), int(ingestion_time))


class _SpareFiles:
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


@dataclass(slots=True)
class _FileStream:
    name: str
    path: str
    created_at: int
    end: int  # offset just past the last complete line; bytes beyond are a torn write
    first_event_timestamp: int | None
    last_event_timestamp: int | None
    last_ingestion_time: int | None
    offsets: array[int] | None = None  # start offset of each event line, built on first need
    torn: bool = False  # the file holds a partial line after `end` (crash mid-append)
    on_disk: bool = True  # False: created but still empty, known from the group's journal
    journaled: bool = False  # its creation is in the group's journal

    def info(self) -> StreamInfo:
        return StreamInfo(
            name=self.name,
            created_at=self.created_at,
            first_event_timestamp=self.first_event_timestamp,
            last_event_timestamp=self.last_event_timestamp,
            last_ingestion_time=self.last_ingestion_time,
            stored_bytes=self.end,
        )


def _last_line(f: BinaryIO, size: int, header_end: int) -> tuple[int, bytes | None]:
    """(end of the last complete line, that line if it is an event line), reading backwards."""
    end: int | None = None
    pos = size
    buf = b""
    while pos > header_end:
        step = min(64 * 1024, pos - header_end)
        pos -= step
        f.seek(pos)
        buf = f.read(step) + buf
        if end is None:
            nl = buf.rfind(b"\n")
            if nl < 0:
                continue
            end = pos + nl + 1
            buf = buf[: nl + 1]
        start = buf.rfind(b"\n", 0, len(buf) - 1)
        if start >= 0:
            return end, buf[start + 1 :]
    if end is None:
        return header_end, None
    return end, buf if buf else None


class FileLogStore:
    """A LogStore of append-only JSON-lines files under root, one file per stream.

    One process owns a root at a time. Each stream is looked up lazily; its line-offset index
    is built on first read or append, so read(start, limit) costs O(limit). A stream gets its
    file with its first event: until then it lives in memory and, within a second, in its
    group's journal (so an empty stream created just before a crash may be lost; its events
    never are). Most streams of short attempts thus cost no file until they have output.
    """

    FLUSH_SECONDS = 1.0

    def __init__(self, root: Path) -> None:
        self._root = root
        self._root_str = str(root)
        root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        # Per group: stream name -> stream, or None for a known miss (deleted, or absent from
        # a listed group).
        self._streams: dict[str, dict[str, _FileStream | None]] = {}
        self._listed_groups: set[str] = set()
        self._groups: set[str] | None = None  # None until the root has been scanned
        self._ensured_groups: set[str] = set()  # directories known to exist
        self._journals: dict[str, dict[str, int]] = {}  # group -> empty streams -> created_at
        self._unjournaled: dict[str, list[_FileStream]] = {}  # created since the last flush
        self._flush_timer: threading.Timer | None = None
        self._spares = _SpareFiles(root / _SPARE_DIR)

    # -- lookup -------------------------------------------------------------------------------

    def _group_dir(self, group: str) -> Path:
        return self._root / _encode_name(group)

    def _stream_path(self, group: str, stream: str) -> str:
        return os.path.join(
            self._root_str, _encode_name(group), _encode_name(stream) + _STREAM_SUFFIX
        )

    def _load(self, path: str, expected_name: str | None) -> _FileStream | None:
        """Read a stream's header and last line (not its whole body)."""
        try:
            with open(path, "rb") as f:
                header_line = f.readline()
                if not header_line.endswith(b"\n"):
                    raise ValueError("incomplete header")
                header = json.loads(header_line)
                name, created_at = str(header["stream"]), int(header["createdAt"])
                if expected_name is not None and name != expected_name:
                    raise ValueError(f"header names stream {name!r}")
                header_end = len(header_line)
                first_line = f.readline()
                first = _parse_event(first_line) if first_line.endswith(b"\n") else None
                size = os.fstat(f.fileno()).st_size
                end, last_line = _last_line(f, size, header_end)
                last = _parse_event(last_line) if last_line else None
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as error:
            log.warning("Ignoring unreadable log stream file %s: %s", path, error)
            return None
        return _FileStream(
            name=name,
            path=path,
            created_at=created_at,
            end=end,
            first_event_timestamp=first.timestamp if first else None,
            last_event_timestamp=last.timestamp if last else None,
            last_ingestion_time=last.ingestion_time if last else None,
            torn=size != end,
        )

    def _empty(self, group: str, stream: str, created_at: int, journaled: bool) -> _FileStream:
        return _FileStream(
            name=stream,
            path=self._stream_path(group, stream),
            created_at=created_at,
            end=0,
            first_event_timestamp=None,
            last_event_timestamp=None,
            last_ingestion_time=None,
            offsets=array("q"),
            on_disk=False,
            journaled=journaled,
        )

    def _find(self, group: str, stream: str) -> _FileStream | None:
        streams = self._streams.setdefault(group, {})
        if stream in streams:
            return streams[stream]
        if group in self._listed_groups:
            return None
        found = self._load(self._stream_path(group, stream), stream)
        if found is None:
            created_at = self._journal(group).get(stream)
            if created_at is not None:
                found = self._empty(group, stream, created_at, journaled=True)
        if found is not None:
            streams[stream] = found
        return found

    def _index(self, s: _FileStream) -> array[int]:
        if s.offsets is not None:
            return s.offsets
        offsets: array[int] = array("q")
        with open(s.path, "rb") as f:
            header_end = len(f.readline())
            pos = header_end
            line_start = header_end
            while pos < s.end:
                chunk = f.read(min(_READ_CHUNK, s.end - pos))
                if not chunk:
                    break
                i = chunk.find(b"\n")
                while i >= 0:
                    offsets.append(line_start)
                    line_start = pos + i + 1
                    i = chunk.find(b"\n", i + 1)
                pos += len(chunk)
        s.offsets = offsets
        return offsets

    def _ensure_group(self, group: str) -> Path:
        directory = self._group_dir(group)
        if group in self._ensured_groups:
            return directory
        directory.mkdir(exist_ok=True)
        marker = directory / _GROUP_FILE
        if not marker.exists():
            marker.write_text(json.dumps({"group": group}) + "\n")
        self._ensured_groups.add(group)
        if self._groups is not None:
            self._groups.add(group)
        return directory

    # -- the group journal of empty streams ---------------------------------------------------

    def _journal(self, group: str) -> dict[str, int]:
        """Streams created in the group and still without a file, replayed from its journal:
        {"stream", "createdAt"} creates, {"written"} (it has a file now) and {"deleted"} end."""
        found = self._journals.get(group)
        if found is not None:
            return found
        declared: dict[str, int] = {}
        entries = 0
        path = self._group_dir(group) / _JOURNAL_FILE
        with contextlib.suppress(FileNotFoundError), path.open("rb") as f:
            for line in f:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a blank separator, or a line torn by a crash
                entries += 1
                if "stream" in entry:
                    declared.setdefault(str(entry["stream"]), int(entry["createdAt"]))
                else:
                    declared.pop(str(entry.get("written", entry.get("deleted"))), None)
        if entries > 2 * len(declared) + 64:
            compacted = path.with_suffix(".compacting")
            compacted.write_bytes(
                b"".join(_journal_line({"stream": n, "createdAt": t}) for n, t in declared.items())
            )
            os.replace(compacted, path)
        self._journals[group] = declared
        return declared

    def _write_journal(self, group: str, entries: list[dict[str, Any]]) -> None:
        self._ensure_group(group)
        # A leading newline ends any line a crash tore, so this batch parses whole.
        data = b"\n" + b"".join(_journal_line(entry) for entry in entries)
        with (self._group_dir(group) / _JOURNAL_FILE).open("ab") as f:
            f.write(data)

    def flush(self) -> None:
        """Journal the empty streams created since the last flush (runs by itself within
        FLUSH_SECONDS; call it before a clean shutdown)."""
        with self._lock:
            if self._flush_timer is not None:
                self._flush_timer.cancel()
                self._flush_timer = None
            unjournaled, self._unjournaled = self._unjournaled, {}
            for group, created in unjournaled.items():
                still_empty = [
                    s for s in created if not s.on_disk and self._streams[group].get(s.name) is s
                ]
                if not still_empty:
                    continue
                self._write_journal(
                    group, [{"stream": s.name, "createdAt": s.created_at} for s in still_empty]
                )
                journal = self._journals.get(group)
                for s in still_empty:
                    s.journaled = True
                    if journal is not None:
                        journal.setdefault(s.name, s.created_at)

    def _flush_in_background(self) -> None:
        try:
            self.flush()
        except Exception:  # e.g. the root went away; the next flush tries again
            log.exception("Journaling new log streams under %s failed", self._root)

    # -- creating -----------------------------------------------------------------------------

    def _create_empty(self, group: str, stream: str, created_at: int) -> _FileStream:
        self._ensure_group(group)
        created = self._empty(group, stream, created_at, journaled=False)
        self._streams.setdefault(group, {})[stream] = created
        self._unjournaled.setdefault(group, []).append(created)
        if self._flush_timer is None:
            self._flush_timer = threading.Timer(self.FLUSH_SECONDS, self._flush_in_background)
            self._flush_timer.daemon = True
            self._flush_timer.start()
        return created

    def _give_file(self, group: str, s: _FileStream) -> None:
        """The stream's first events are coming: write its file (header only, so far)."""
        self._ensure_group(group)
        header = (json.dumps({"stream": s.name, "createdAt": s.created_at}) + "\n").encode()
        self._spares.place(s.path)
        with open(s.path, "r+b") as f:
            f.write(header)
        s.end = len(header)
        s.on_disk = True
        if s.journaled:
            self._write_journal(group, [{"written": s.name}])
            self._journals.get(group, {}).pop(s.name, None)

    # -- protocol -----------------------------------------------------------------------------

    def create_stream(self, group: str, stream: str, created_at: int) -> None:
        with self._lock:
            if self._find(group, stream) is None:
                self._create_empty(group, stream, created_at)

    def append(
        self, group: str, stream: str, events: Sequence[tuple[int, str]], ingestion_time: int
    ) -> None:
        with self._lock:
            s = self._find(group, stream) or self._create_empty(group, stream, ingestion_time)
            if not events:
                return
            if not s.on_disk:
                self._give_file(group, s)
            offsets = self._index(s)
            lines = [_event_line(ts, message, ingestion_time) for ts, message in events]
            with open(s.path, "r+b") as f:
                if s.torn:
                    f.truncate(s.end)
                    s.torn = False
                f.seek(s.end)
                f.write(b"".join(lines))
            for line in lines:
                offsets.append(s.end)
                s.end += len(line)
            if s.first_event_timestamp is None:
                s.first_event_timestamp = events[0][0]
            s.last_event_timestamp = events[-1][0]
            s.last_ingestion_time = ingestion_time

    def read(self, group: str, stream: str, start: int, limit: int) -> list[LogEvent]:
        _check_window(start, limit)
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
        return [_parse_event(line) for line in data.splitlines()]

    def count(self, group: str, stream: str) -> int:
        with self._lock:
            s = self._find(group, stream)
            return 0 if s is None else len(self._index(s))

    def stream_info(self, group: str, stream: str) -> StreamInfo | None:
        with self._lock:
            s = self._find(group, stream)
            return None if s is None else s.info()

    def _list_group(self, group: str) -> Iterable[_FileStream]:
        streams = self._streams.setdefault(group, {})
        if group not in self._listed_groups:
            directory = self._group_dir(group)
            if directory.is_dir():
                known = {os.path.basename(s.path) for s in streams.values() if s is not None}
                for entry in os.scandir(directory):
                    if not entry.name.endswith(_STREAM_SUFFIX) or entry.name in known:
                        continue
                    name = _decode_name(entry.name[: -len(_STREAM_SUFFIX)])
                    loaded = self._load(entry.path, name)
                    if loaded is not None:
                        streams[loaded.name] = loaded
            for name, created_at in self._journal(group).items():
                if name not in streams:
                    streams[name] = self._empty(group, name, created_at, journaled=True)
            self._listed_groups.add(group)
        return (s for s in streams.values() if s is not None)

    def list_streams(self, group: str, prefix: str | None = None) -> list[StreamInfo]:
        with self._lock:
            found = [
                s.info()
                for s in self._list_group(group)
                if prefix is None or s.name.startswith(prefix)
            ]
        return sorted(found, key=lambda info: info.name)

    def list_groups(self) -> list[str]:
        with self._lock:
            if self._groups is None:
                groups: set[str] = set()
                for entry in os.scandir(self._root):
                    if entry.name == _SPARE_DIR:
                        continue
                    marker = Path(entry.path) / _GROUP_FILE
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
            if s.journaled or stream in self._journal(group):
                self._write_journal(group, [{"deleted": stream}])
                self._journals[group].pop(stream, None)
            self._streams[group][stream] = None
            return True


class FileLogStoreReader:
    """Another process's FileLogStore, read only: the root is looked up afresh on every call
    (a FileLogStore caches what its own process wrote, which another process must not trust).
    Streams made in the last second that have no events yet may be missing. Used by API-only
    processes (`--api-processes`); the main process writes and expires the logs."""

    def __init__(self, root: Path) -> None:
        self._root = root

    def _fresh(self) -> FileLogStore:
        return FileLogStore(self._root)

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
