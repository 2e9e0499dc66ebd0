"""The output path every runtime shares: bytes cut into log events, and events into the log
store (runtimes/output.py)."""

from __future__ import annotations

import itertools

import pytest

from batchyard.logs.memory import MemoryLogStore
from batchyard.runtimes.base import MAX_EVENT_BYTES
from batchyard.runtimes.output import Event, LineCutter, StreamWriter

GROUP = "/aws/batch/job"
STREAM = "job/default/0123"


def cut(chunks: list[bytes], skip: int = 0, at: int = 7) -> list[Event]:
    lines = LineCutter(skip)
    out: list[Event] = []
    for chunk in chunks:
        lines.feed(chunk, at, out)
    lines.finish(out)
    return out


def test_one_event_per_line_and_empty_lines_make_none() -> None:
    assert cut([b"one\n\ntwo\nthree"]) == [(7, "one"), (7, "two"), (7, "three")]


def test_a_line_fed_in_pieces_is_one_event_stamped_when_it_began() -> None:
    lines = LineCutter()
    out: list[Event] = []
    lines.feed(b"hel", 1, out)
    lines.feed(b"lo\nnext", 2, out)
    assert out == [(1, "hello")]
    lines.feed(b"\n", 3, out)
    assert out == [(1, "hello"), (2, "next")]


def test_long_lines_are_cut_at_the_event_size() -> None:
    line = b"x" * (2 * MAX_EVENT_BYTES + 5)
    events = cut([line[:1000], line[1000:] + b"\n"])
    assert [len(message) for _, message in events] == [MAX_EVENT_BYTES, MAX_EVENT_BYTES, 5]


def test_a_long_line_is_cut_before_its_newline_arrives() -> None:
    lines = LineCutter()
    out: list[Event] = []
    lines.feed(b"y" * (MAX_EVENT_BYTES + 3), 1, out)
    assert [len(message) for _, message in out] == [MAX_EVENT_BYTES]


def test_streams_are_joined_each_on_its_own() -> None:
    lines = LineCutter()
    out: list[Event] = []
    lines.feed(b"out-", 1, out, stream=1)
    lines.feed(b"err-", 2, out, stream=2)
    lines.feed(b"line\n", 3, out, stream=1)
    lines.feed(b"line", 4, out, stream=2)
    lines.finish(out)
    assert out == [(1, "out-line"), (2, "err-line")]


def test_invalid_utf8_is_replaced_not_raised() -> None:
    assert cut([b"caf\xe9\n"]) == [(7, "caf\ufffd")]


@pytest.mark.parametrize("size", [1, 5, 4096, 1 << 20])
def test_skipping_what_is_stored_resumes_exactly_however_the_bytes_are_read(size: int) -> None:
    long_line = b"c" * (MAX_EVENT_BYTES + 2) if size > 1 else b"c" * 40
    output = b"a\n\nbb\n" + long_line + b"\ndd\ne"
    whole = cut([output])
    assert len(whole) == (6 if size > 1 else 5)
    chunks = [output[i : i + size] for i in range(0, len(output), size)]
    for stored in range(len(whole) + 1):
        assert cut(chunks, skip=stored) == whole[stored:]


def test_rewind_feeds_the_same_bytes_to_the_same_events() -> None:
    lines = LineCutter(skip=1)
    out: list[Event] = []
    lines.feed(b"first\nsec", 1, out)
    mark = lines.mark()
    lines.feed(b"ond\nthird\n", 2, out)
    assert out == [(1, "second"), (2, "third")]
    lines.rewind(mark)
    again: list[Event] = []
    lines.feed(b"ond\nthird\n", 2, again)
    assert again == out
    assert lines.produced == 3


def test_the_writer_creates_the_stream_and_appends_in_order() -> None:
    logs = MemoryLogStore()
    writer = StreamWriter(logs, "0123", GROUP, STREAM)
    writer.create(5)
    assert logs.count(GROUP, STREAM) == 0
    assert logs.stream_info(GROUP, STREAM) is not None
    writer.add([(6, "queued")])
    assert writer.pending == 1
    assert writer.append([(7, "direct")], 8) is True
    assert writer.flush(9) is True
    assert writer.pending == 0
    assert [e.message for e in logs.read(GROUP, STREAM, 0, 10)] == ["direct", "queued"]


def test_a_sealed_writer_takes_no_more_but_flushes_what_it_holds() -> None:
    logs = MemoryLogStore()
    writer = StreamWriter(logs, "0123", GROUP, STREAM)
    writer.add([(1, "before")])
    writer.seal()
    writer.add([(2, "after")])
    assert writer.flush(3) is True
    assert [e.message for e in logs.read(GROUP, STREAM, 0, 10)] == ["before"]


def test_events_are_stamped_by_the_order_fed() -> None:
    stamps = itertools.count(100)
    lines = LineCutter()
    out: list[Event] = []
    for chunk in (b"a\n", b"b", b"\nc\n"):
        lines.feed(chunk, next(stamps), out)
    assert out == [(100, "a"), (101, "b"), (102, "c")]
