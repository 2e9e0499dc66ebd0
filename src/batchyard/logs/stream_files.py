"""One log stream's file, and what the file store keeps of a stream in memory (FileStream).

Owns the stream file's format: a header line {"stream", "createdAt"}, then one JSON line per
event, [timestamp, ingestionTime, message]. Bytes past the last complete line are a write a
crash tore, never an event. Loading a stream reads the header and the ends of its file, not
its body; its line offsets are read only when a read needs them.
"""

from __future__ import annotations

import json
import logging
import os
from array import array
from dataclasses import dataclass
from typing import BinaryIO

from batchyard.logs.base import LogEvent, StreamInfo

log = logging.getLogger(__name__)

_READ_CHUNK = 1 << 20


@dataclass(slots=True)
class FileStream:
    """A stream as the file store holds it: its file, how far the file is whole, its first
    and last events, and its line offsets once a read has needed them."""

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


def empty_stream(path: str, stream: str, created_at: int, journaled: bool) -> FileStream:
    """A stream with no file yet (created, no event so far)."""
    return FileStream(
        name=stream,
        path=path,
        created_at=created_at,
        end=0,
        first_event_timestamp=None,
        last_event_timestamp=None,
        last_ingestion_time=None,
        on_disk=False,
        journaled=journaled,
    )


def header_line(stream: str, created_at: int) -> bytes:
    return (json.dumps({"stream": stream, "createdAt": created_at}) + "\n").encode()


def event_line(timestamp: int, message: str, ingestion_time: int) -> bytes:
    return (json.dumps([timestamp, ingestion_time, message]) + "\n").encode()


def parse_event(line: bytes) -> LogEvent:
    timestamp, ingestion_time, message = json.loads(line)
    return LogEvent(int(timestamp), str(message), int(ingestion_time))


def load_stream(path: str, expected_name: str | None) -> FileStream | None:
    """The stream in the file at path, from its header and its ends (not its whole body); None if
    there is no file, or it is unreadable or names another stream than expected_name."""
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
            first = parse_event(first_line) if first_line.endswith(b"\n") else None
            size = os.fstat(f.fileno()).st_size
            end, last_line = _last_line(f, size, header_end)
            last = parse_event(last_line) if last_line else None
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("Ignoring unreadable log stream file %s: %s", path, error)
        return None
    return FileStream(
        name=name,
        path=path,
        created_at=created_at,
        end=end,
        first_event_timestamp=first.timestamp if first else None,
        last_event_timestamp=last.timestamp if last else None,
        last_ingestion_time=last.ingestion_time if last else None,
        torn=size != end,
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


def line_offsets(path: str, end: int) -> array[int]:
    """The start offset of each event line of the stream file at path, up to end."""
    offsets: array[int] = array("q")
    with open(path, "rb") as f:
        header_end = len(f.readline())
        pos = header_end
        line_start = header_end
        while pos < end:
            chunk = f.read(min(_READ_CHUNK, end - pos))
            if not chunk:
                break
            i = chunk.find(b"\n")
            while i >= 0:
                offsets.append(line_start)
                line_start = pos + i + 1
                i = chunk.find(b"\n", i + 1)
            pos += len(chunk)
    return offsets
