"""The Docker Engine's multiplexed log frames, read and cut into log events
(runtimes/docker/frames.py): pure, no Engine needed."""

from __future__ import annotations

import io
import struct

import requests

from batchyard.runtimes.docker.frames import Frame, cut_frame, frames, timestamp_ms
from batchyard.runtimes.output import Event, LineCutter

STAMP = b"2026-12-08T01:02:03.456789012Z"
AT = 1796691723456  # STAMP in epoch ms


def a_response(*parts: tuple[int, bytes]) -> requests.Response:
    response = requests.Response()
    response.raw = io.BytesIO(
        b"".join(struct.pack(">BxxxL", stream, len(data)) + data for stream, data in parts)
    )
    return response


def test_frames_keep_which_stream_they_came_from() -> None:
    response = a_response((1, b"out"), (2, b"err"), (1, b""), (1, b"more"))
    assert list(frames(response)) == [(1, b"out"), (2, b"err"), (1, b"more")]


def test_a_frame_cut_short_ends_the_stream() -> None:
    response = a_response((1, b"whole"))
    response.raw = io.BytesIO(response.raw.read() + struct.pack(">BxxxL", 1, 10) + b"half")
    assert list(frames(response)) == [(1, b"whole")]


def test_timestamps_are_read_to_the_millisecond() -> None:
    assert timestamp_ms(STAMP) == AT
    assert timestamp_ms(b"2026-12-08T01:02:03") == AT - 456
    assert timestamp_ms(b"not-a-time") is None


def test_a_frame_is_stamped_with_its_own_time_and_partial_lines_join_per_stream() -> None:
    lines = LineCutter()
    out: list[Event] = []
    sequence: list[Frame] = [
        (1, STAMP + b" hello "),
        (2, STAMP + b" oops\n"),
        (1, b"2026-12-08T01:02:04Z world\n"),
    ]
    for frame in sequence:
        cut_frame(lines, frame, lambda: 0, out)
    assert out == [(AT, "oops"), (AT, "hello world")]


def test_an_untimestamped_frame_is_kept_whole_at_the_time_it_was_read() -> None:
    lines = LineCutter()
    out: list[Event] = []
    cut_frame(lines, (1, b"plain output\n"), lambda: 42, out)
    assert out == [(42, "plain output")]
