"""The LogStore protocol and the values it deals in: log groups of log streams of events.

Owns what every log store promises (paging by event index, CloudWatch's byte accounting) and
nothing about where events are kept: `file_store` keeps them on disk, `memory` in a dict.
CloudWatch wire concerns (tokens, shapes) belong to the API layer.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

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


def check_window(start: int, limit: int) -> None:
    """Refuse a negative window of read(), the same way in every store."""
    if start < 0 or limit < 0:
        raise ValueError(f"start and limit must be >= 0, got start={start} limit={limit}")
