"""MemoryLogStore: the LogStore in a dict, the in-memory twin of the file store.

For unit tests and the simulator; held to the same contract (tests/contract/test_logs.py).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from batchyard.logs.base import EVENT_OVERHEAD_BYTES, LogEvent, StreamInfo, check_window


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
        check_window(start, limit)
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
