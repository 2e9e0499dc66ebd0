"""LogStore contract (logs.py): the file store and the memory store behave alike; the file store
also survives a new instance, torn writes and hostile names."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from batchyard.logs import FileLogStore, LogEvent, LogStore, MemoryLogStore

GROUP = "/aws/batch/job"
STREAM = "render/default/a6768fc4fce04b809905ff65e71a9b38"


@pytest.fixture(params=["file", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> LogStore:
    if request.param == "file":
        return FileLogStore(tmp_path / "logs")
    return MemoryLogStore()


def test_append_then_read_in_order_with_timestamps(store: LogStore) -> None:
    store.append(GROUP, STREAM, [(1000, "first"), (1001, "second")], ingestion_time=1002)
    store.append(GROUP, STREAM, [(1005, "third")], ingestion_time=1006)

    assert store.read(GROUP, STREAM, 0, 10) == [
        LogEvent(1000, "first", 1002),
        LogEvent(1001, "second", 1002),
        LogEvent(1005, "third", 1006),
    ]
    assert store.count(GROUP, STREAM) == 3


def test_read_pages_by_event_index(store: LogStore) -> None:
    store.append(GROUP, STREAM, [(i, f"line {i}") for i in range(25)], ingestion_time=99)

    pages = [store.read(GROUP, STREAM, start, 10) for start in (0, 10, 20, 30)]

    assert [[e.message for e in page] for page in pages] == [
        [f"line {i}" for i in range(10)],
        [f"line {i}" for i in range(10, 20)],
        [f"line {i}" for i in range(20, 25)],
        [],
    ]
    assert store.read(GROUP, STREAM, 24, 0) == []
    with pytest.raises(ValueError, match="start and limit"):
        store.read(GROUP, STREAM, -1, 5)


def test_messages_keep_newlines_quotes_and_unicode(store: LogStore) -> None:
    odd = ["two\nlines", 'a "quoted" \\ backslash', "ünïcødé ✓ 🚀", "\t tabbed"]
    store.append(GROUP, STREAM, [(1, m) for m in odd], ingestion_time=2)

    assert [e.message for e in store.read(GROUP, STREAM, 0, 10)] == odd
    assert store.count(GROUP, STREAM) == 4


def test_create_stream_is_idempotent_and_keeps_first_created_at(store: LogStore) -> None:
    store.create_stream(GROUP, STREAM, created_at=500)
    store.create_stream(GROUP, STREAM, created_at=900)

    info = store.stream_info(GROUP, STREAM)
    assert info is not None
    assert (info.name, info.created_at) == (STREAM, 500)
    assert (info.first_event_timestamp, info.last_event_timestamp) == (None, None)
    assert info.last_ingestion_time is None
    assert store.count(GROUP, STREAM) == 0
    assert store.read(GROUP, STREAM, 0, 10) == []


def test_append_creates_a_missing_stream(store: LogStore) -> None:
    store.append(GROUP, STREAM, [(10, "x")], ingestion_time=11)

    info = store.stream_info(GROUP, STREAM)
    assert info is not None
    assert info.created_at == 11


def test_stream_info_tracks_first_and_last_events_and_size(store: LogStore) -> None:
    store.create_stream(GROUP, STREAM, created_at=1)
    empty = store.stream_info(GROUP, STREAM)
    store.append(GROUP, STREAM, [(100, "a"), (150, "b")], ingestion_time=160)
    store.append(GROUP, STREAM, [(200, "c" * 100)], ingestion_time=210)

    info = store.stream_info(GROUP, STREAM)
    assert empty is not None
    assert info is not None
    assert info.first_event_timestamp == 100
    assert info.last_event_timestamp == 200
    assert info.last_ingestion_time == 210
    assert info.stored_bytes > empty.stored_bytes + 100


def test_unknown_streams_and_groups_are_empty(store: LogStore) -> None:
    assert store.stream_info(GROUP, "nope") is None
    assert store.read(GROUP, "nope", 0, 10) == []
    assert store.count(GROUP, "nope") == 0
    assert store.list_streams("/no/such/group") == []
    assert store.list_groups() == []
    assert store.delete_stream(GROUP, "nope") is False


def test_list_streams_sorted_and_filtered_by_prefix(store: LogStore) -> None:
    names = ["render/default/b", "render/default/a", "encode/default/c", "render/other/d"]
    for i, name in enumerate(names):
        store.create_stream(GROUP, name, created_at=i)
    store.create_stream("/other/group", "render/default/z", created_at=9)

    assert [s.name for s in store.list_streams(GROUP)] == sorted(names)
    assert [s.name for s in store.list_streams(GROUP, "render/default/")] == [
        "render/default/a",
        "render/default/b",
    ]
    assert store.list_streams(GROUP, "zzz") == []
    assert store.list_groups() == ["/aws/batch/job", "/other/group"]


def test_delete_stream_removes_it_and_a_new_one_starts_empty(store: LogStore) -> None:
    store.append(GROUP, STREAM, [(1, "old")], ingestion_time=2)
    store.create_stream(GROUP, "keep", created_at=1)

    assert store.delete_stream(GROUP, STREAM) is True

    assert store.stream_info(GROUP, STREAM) is None
    assert store.count(GROUP, STREAM) == 0
    assert [s.name for s in store.list_streams(GROUP)] == ["keep"]
    store.append(GROUP, STREAM, [(3, "new")], ingestion_time=4)
    assert [e.message for e in store.read(GROUP, STREAM, 0, 10)] == ["new"]


def test_concurrent_appends_from_threads_lose_nothing(store: LogStore) -> None:
    def writer(n: int) -> None:
        for i in range(200):
            store.append(GROUP, f"s{n % 2}", [(i, f"{n}:{i}")], ingestion_time=i)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    for stream in ("s0", "s1"):
        messages = [e.message for e in store.read(GROUP, stream, 0, 10_000)]
        assert len(messages) == 600
        assert store.count(GROUP, stream) == 600
        for n in range(stream == "s1", 6, 2):  # each writer's own lines stay in order
            assert [m for m in messages if m.startswith(f"{n}:")] == [
                f"{n}:{i}" for i in range(200)
            ]


# -- the file store ------------------------------------------------------------------------


def test_file_store_survives_a_new_instance(tmp_path: Path) -> None:
    first = FileLogStore(tmp_path)
    first.create_stream(GROUP, "empty/stream", created_at=7)
    first.append(GROUP, STREAM, [(i, f"line {i}") for i in range(50)], ingestion_time=60)
    first.create_stream("/other", "x", created_at=8)
    first.flush()  # empty streams reach the disk within a second, or at once on flush()

    second = FileLogStore(tmp_path)

    assert second.count(GROUP, STREAM) == 50
    assert [e.message for e in second.read(GROUP, STREAM, 45, 10)] == [
        f"line {i}" for i in range(45, 50)
    ]
    assert second.read(GROUP, STREAM, 3, 1) == [LogEvent(3, "line 3", 60)]
    info = second.stream_info(GROUP, STREAM)
    assert info is not None
    assert (info.first_event_timestamp, info.last_event_timestamp) == (0, 49)
    assert info.last_ingestion_time == 60
    assert [s.name for s in second.list_streams(GROUP)] == ["empty/stream", STREAM]
    assert second.list_groups() == ["/aws/batch/job", "/other"]
    second.append(GROUP, STREAM, [(99, "more")], ingestion_time=100)
    assert FileLogStore(tmp_path).read(GROUP, STREAM, 50, 5) == [LogEvent(99, "more", 100)]


def test_file_store_lists_streams_it_did_not_create(tmp_path: Path) -> None:
    first = FileLogStore(tmp_path)
    first.create_stream(GROUP, "b", created_at=1)
    first.append(GROUP, "c", [(5, "with a file")], ingestion_time=6)
    first.flush()
    second = FileLogStore(tmp_path)
    second.create_stream(GROUP, "a", created_at=2)  # known to this instance before listing

    listed = [(s.name, s.created_at, s.stored_bytes > 0) for s in second.list_streams(GROUP)]
    assert listed == [("a", 2, False), ("b", 1, False), ("c", 6, True)]


def test_file_store_ignores_a_torn_last_line_and_appends_after_it(tmp_path: Path) -> None:
    FileLogStore(tmp_path).append(GROUP, STREAM, [(1, "whole"), (2, "also whole")], 3)
    [path] = [p for p in tmp_path.rglob("*.log")]
    with path.open("ab") as f:
        f.write(b'[4, 5, "torn mid-wri')  # a crash during append

    store = FileLogStore(tmp_path)
    assert store.count(GROUP, STREAM) == 2
    info = store.stream_info(GROUP, STREAM)
    assert info is not None
    assert info.last_event_timestamp == 2
    store.append(GROUP, STREAM, [(6, "after the crash")], ingestion_time=7)

    assert [e.message for e in FileLogStore(tmp_path).read(GROUP, STREAM, 0, 10)] == [
        "whole",
        "also whole",
        "after the crash",
    ]


def test_file_store_names_never_escape_the_root(tmp_path: Path) -> None:
    root = tmp_path / "logs"
    hostile = ["../../etc/passwd", "..", ".", "a/../../b", "x" * 600, "~tilde", "sp ace/ü"]
    store = FileLogStore(root)
    for name in hostile:
        store.append(name, name, [(1, name)], ingestion_time=2)

    reopened_store = FileLogStore(root)
    for name in hostile:
        assert [e.message for e in reopened_store.read(name, name, 0, 5)] == [name]
        assert [s.name for s in reopened_store.list_streams(name)] == [name]
    assert reopened_store.list_groups() == sorted(hostile)
    for path in tmp_path.rglob("*"):
        assert path.resolve().is_relative_to(root.resolve())
        assert len(path.name.encode()) <= 255


def test_file_store_reads_a_page_without_reading_the_stream(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    store.append(GROUP, STREAM, [(i, "x" * 1000) for i in range(2000)], ingestion_time=1)
    [path] = [p for p in tmp_path.rglob("*.log")]
    size = path.stat().st_size
    # Shrink the file's middle to garbage of the same length: a page far from it still reads,
    # so reads seek by the index instead of parsing what lies before them.
    with path.open("r+b") as f:
        f.seek(size // 4)
        f.write(b"\0" * (size // 4))

    assert [e.timestamp for e in store.read(GROUP, STREAM, 1990, 5)] == list(range(1990, 1995))


def test_file_store_appends_are_on_disk_when_append_returns(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path)
    store.append(GROUP, STREAM, [(1, "durable")], ingestion_time=2)
    [path] = [p for p in tmp_path.rglob("*.log")]

    # Read through a separate descriptor, as a process restarted after a crash would.
    fd = os.open(path, os.O_RDONLY)
    try:
        data = os.read(fd, 1 << 16)
    finally:
        os.close(fd)
    assert b'"durable"' in data


def test_file_store_journals_empty_streams_by_itself_within_a_second(tmp_path: Path) -> None:
    FileLogStore(tmp_path).create_stream(GROUP, "quiet", created_at=3)

    deadline = time.monotonic() + 10
    while FileLogStore(tmp_path).stream_info(GROUP, "quiet") is None:
        assert time.monotonic() < deadline, "the empty stream never reached the disk"
        time.sleep(0.05)

    info = FileLogStore(tmp_path).stream_info(GROUP, "quiet")
    assert info is not None
    assert (info.created_at, info.stored_bytes, info.last_event_timestamp) == (3, 0, None)


def test_file_store_empty_stream_history_replays_in_order(tmp_path: Path) -> None:
    first = FileLogStore(tmp_path)
    for name in ("stays-empty", "gets-events", "deleted", "deleted-then-recreated"):
        first.create_stream(GROUP, name, created_at=1)
    first.flush()
    first.append(GROUP, "gets-events", [(2, "late output")], ingestion_time=3)
    first.delete_stream(GROUP, "deleted")
    first.delete_stream(GROUP, "deleted-then-recreated")
    first.create_stream(GROUP, "deleted-then-recreated", created_at=9)
    first.flush()

    second = FileLogStore(tmp_path)

    assert [(s.name, s.created_at) for s in second.list_streams(GROUP)] == [
        ("deleted-then-recreated", 9),
        ("gets-events", 1),
        ("stays-empty", 1),
    ]
    assert [e.message for e in second.read(GROUP, "gets-events", 0, 5)] == ["late output"]
    assert second.stream_info(GROUP, "deleted") is None
    assert second.count(GROUP, "stays-empty") == 0


def test_file_store_compacts_a_journal_of_streams_that_got_files(tmp_path: Path) -> None:
    first = FileLogStore(tmp_path)
    for i in range(200):
        first.create_stream(GROUP, f"s{i}", created_at=i)
    first.create_stream(GROUP, "empty", created_at=7)
    first.flush()
    for i in range(200):
        first.append(GROUP, f"s{i}", [(i, "x")], ingestion_time=i)
    [journal] = list(tmp_path.rglob("streams.jsonl"))
    before = journal.stat().st_size

    second = FileLogStore(tmp_path)
    assert second.stream_info(GROUP, "empty") is not None  # replays, then compacts

    assert journal.stat().st_size < before / 10
    assert [s.name for s in FileLogStore(tmp_path).list_streams(GROUP, "e")] == ["empty"]
    assert len(FileLogStore(tmp_path).list_streams(GROUP)) == 201
