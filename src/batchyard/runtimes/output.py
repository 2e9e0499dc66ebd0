"""An attempt's output on its way into the log store, the same for every runtime that runs
something: cutting bytes into log events, and appending them to the attempt's log stream.

`LineCutter` makes one event per line (of each output stream on its own), cuts lines longer
than CloudWatch's event size, drops empty lines, and skips the events a log stream already holds
when a runtime re-attaches after a restart. `StreamWriter` creates the log stream and appends
events to it. While the log store has no room (a full disk) nothing is lost: a runtime that
reads its output from a file rewinds the cutter and reads the same bytes again later (holding
nothing meanwhile), one whose output is pushed to it queues the events until a flush succeeds.
No other failure of the log store reaches the runtime: its attempts' exits matter more than
their output. Reads no files and runs no processes: the runtimes feed it.
"""

from __future__ import annotations

import logging
import threading

from batchyard import disk_full
from batchyard.logs import LogStore
from batchyard.runtimes.base import MAX_EVENT_BYTES

log = logging.getLogger(__name__)

Event = tuple[int, str]  # (timestamp, epoch ms; message), as LogStore.append takes them


class LineCutter:
    """Cuts one attempt's output into log events. Each output stream (1 stdout, 2 stderr, or
    just one) is joined on its own, as their pieces may interleave. An event is stamped with the
    time its first byte was fed. The cut depends only on the bytes, never on how they were read,
    so reading the output again from the start with `skip` set to the events already stored
    resumes exactly."""

    __slots__ = ("_partial", "produced", "skip")

    def __init__(self, skip: int = 0) -> None:
        self.skip = skip
        self.produced = 0  # events cut so far, skipped ones included
        self._partial: dict[int, tuple[int, bytearray]] = {}  # stream -> (first fed at, bytes)

    def feed(self, data: bytes, at: int, out: list[Event], stream: int = 1) -> None:
        """Cut the events `data` completes into `out`; keep its unfinished last line."""
        held = self._partial.get(stream)
        if held is not None and b"\n" not in data:
            # A long line arriving in pieces grows in place: joining it anew at every piece
            # would copy it again each time.
            held[1].extend(data)
            self._cut_long(held, out)
            return
        first_at = at
        if held is not None:
            del self._partial[stream]
            first_at = held[0]
            data = bytes(held[1]) + data
        pieces = data.split(b"\n")
        rest = pieces.pop()
        for piece in pieces:
            self._emit(piece, first_at, out)
            first_at = at
        if rest:
            held = self._partial[stream] = (first_at, bytearray(rest))
            self._cut_long(held, out)

    def _cut_long(self, held: tuple[int, bytearray], out: list[Event]) -> None:
        """Whole events of an unfinished line that has reached the event size."""
        first_at, rest = held
        if len(rest) >= MAX_EVENT_BYTES:
            cut = len(rest) - len(rest) % MAX_EVENT_BYTES
            self._emit(bytes(rest[:cut]), first_at, out)
            del rest[:cut]

    def mark(self) -> tuple[int, int, dict[int, tuple[int, bytes]]]:
        """Where the cut stands, for `rewind` once the events cut since could not be stored."""
        partial = {stream: (at, bytes(rest)) for stream, (at, rest) in self._partial.items()}
        return self.skip, self.produced, partial

    def rewind(self, mark: tuple[int, int, dict[int, tuple[int, bytes]]]) -> None:
        """Back to `mark`: the bytes fed since will be fed again."""
        self.skip, self.produced, partial = mark
        self._partial = {stream: (at, bytearray(rest)) for stream, (at, rest) in partial.items()}

    def finish(self, out: list[Event]) -> None:
        """The output has ended: last lines need no newline."""
        for stream in sorted(self._partial):
            first_at, rest = self._partial[stream]
            self._emit(bytes(rest), first_at, out)
        self._partial.clear()

    def _emit(self, line: bytes, at: int, out: list[Event]) -> None:
        # An empty line makes no event: a CloudWatch event needs at least one character.
        for i in range(0, len(line), MAX_EVENT_BYTES):
            self.produced += 1
            if self.skip > 0:
                self.skip -= 1
            else:
                out.append((at, line[i : i + MAX_EVENT_BYTES].decode("utf-8", "replace")))


class StreamWriter:
    """One attempt's log stream. `append` stores events now (or says there was no room);
    events given to `add` wait until a `flush` has appended them. `add` may be called from any
    thread; `append` and `flush` from one at a time."""

    __slots__ = (
        "_lock",
        "_logs",
        "_pending",
        "_sealed",
        "log_group",
        "log_stream",
        "stalled",
        "task_id",
    )

    def __init__(self, logs: LogStore, task_id: str, log_group: str, log_stream: str) -> None:
        self._logs = logs
        self.task_id = task_id
        self.log_group = log_group
        self.log_stream = log_stream
        self.stalled = False  # the log store had no room at the last flush
        self._pending: list[Event] = []
        self._lock = threading.Lock()
        self._sealed = False

    def create(self, at: int) -> None:
        """Create the log stream (as the attempt starts); a failure is logged, not raised."""
        try:
            self._logs.create_stream(self.log_group, self.log_stream, at)
        except Exception:
            log.exception("Creating log stream %s failed", self.log_stream)

    @property
    def pending(self) -> int:
        """How many events wait to be appended."""
        return len(self._pending)

    def add(self, events: list[Event]) -> None:
        """Queue events for the next flush; ignored once sealed."""
        if events:
            with self._lock:
                if not self._sealed:
                    self._pending.extend(events)

    def seal(self) -> None:
        """Take no more events (the runtime closed: what is queued may still be flushed)."""
        with self._lock:
            self._sealed = True

    def flush(self, now: int) -> bool:
        """Append what waits; False if the log store had no room (it all waits for the next
        flush, in order)."""
        if not self._pending:  # the common case, without the lock: only add() fills it
            self.stalled = False
            return True
        with self._lock:
            events, self._pending = self._pending, []
        if self.append(events, now):
            return True
        with self._lock:
            self._pending[:0] = events
        return False

    def append(self, events: list[Event], now: int) -> bool:
        """Store the events; False if the log store had no room for them (none is stored).
        Any other failure loses them, logged, and returns True."""
        if not events:
            self.stalled = False
            return True
        try:
            self._logs.append(self.log_group, self.log_stream, events, now)
        except Exception as error:
            if disk_full.is_disk_full(error):  # the log store warned of it once
                self.stalled = True
                return False
            log.exception("Appending output of attempt %s failed", self.task_id)
        self.stalled = False
        return True
