"""The Docker Engine's multiplexed log stream: frames of (stdout or stderr, '<RFC 3339
timestamp> <output>'), read from the HTTP response and fed to the shared line cutter
(runtimes/output.py) stamped with their own time."""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import requests

from batchyard.runtimes.output import Event, LineCutter

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MS = timedelta(milliseconds=1)


def timestamp_ms(stamp: bytes) -> int | None:
    """Epoch ms of a frame's RFC 3339 timestamp; None if it is not one."""
    try:
        moment = datetime.fromisoformat(stamp.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _MS


Frame = tuple[int, bytes]  # (1 stdout | 2 stderr, '<RFC 3339 timestamp> <output>')


def frames(response: requests.Response) -> Iterator[Frame]:
    """The frames of a multiplexed Engine log stream (8-byte header: stream, size)."""
    raw = response.raw
    while True:
        header = raw.read(8)
        if len(header) < 8:
            return
        stream, size = struct.unpack(">BxxxL", header)
        if size:
            data = raw.read(size)
            if len(data) < size:
                return
            yield stream, data


def cut_frame(lines: LineCutter, frame: Frame, now_ms: Callable[[], int], out: list[Event]) -> None:
    """Feed one frame's output to the cutter, stamped with the frame's own time."""
    stream, body = frame
    stamp, _, data = body.partition(b" ")
    at = timestamp_ms(stamp)
    if at is None:  # not a timestamped frame: keep it whole
        at, data = now_ms(), body
    lines.feed(data, at, out, stream)
