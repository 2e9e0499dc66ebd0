"""LogStore contract (batchyard.logs): the file store and the memory store behave alike; the file
store also survives a new instance, torn writes and hostile names, and keeps its memory bounded."""

from __future__ import annotations

import gc
import os
import random
import threading
import time
import tracemalloc
from pathlib import Path

import pytest

from batchyard.logs import LogEvent, LogStore, StreamInfo
from batchyard.logs.file_store import FileLogStore, FileLogStoreReader
from batchyard.logs.journal_index import JournalIndex
from batchyard.logs.memory import MemoryLogStore

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


# -- the file store's memory stays bounded ---------------------------------------------------


def _snapshot(store: LogStore, group: str, names: list[str]) -> dict[str, object]:
    """Everything a client can read of these streams."""
    return {
        "events": {n: store.read(group, n, 0, 10_000) for n in names},
        "pages": {n: store.read(group, n, 1, 2) for n in names},
        "counts": {n: store.count(group, n) for n in names},
        "infos": {n: store.stream_info(group, n) for n in names},
        "listed": store.list_streams(group),
        "listed_s": store.list_streams(group, "s"),
        "groups": store.list_groups(),
    }


def test_file_store_memory_stays_bounded_as_streams_accumulate(tmp_path: Path) -> None:
    # Attempt streams: one in ten gets output, the rest stay empty (most attempts of
    # `true`-like jobs). Before the cache was bounded every stream ever seen stayed in memory:
    # ~550 bytes a stream (10,000 streams: ~5.5 MB measured). Now streams with a file cost
    # nothing once evicted, and an empty one a slot of its group's journal index (16 bytes,
    # the table 35-70% full): measured ~26 bytes a stream (~260 KB for these 10,000).
    store = FileLogStore(tmp_path)

    def add(start: int, stop: int) -> None:
        for i in range(start, stop):
            name = f"job-{i // 7}/default/{i:08x}"
            store.create_stream(GROUP, name, created_at=i)
            if i % 10 == 0:
                store.append(GROUP, name, [(i, f"output of {i}")], ingestion_time=i + 1)
        store.flush()  # what is not journaled yet is bounded by time (1 s), not by count

    tracemalloc.start()
    try:
        add(0, 10_000)
        gc.collect()
        at_10k = tracemalloc.get_traced_memory()[0]
        add(10_000, 20_000)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - at_10k
    finally:
        tracemalloc.stop()

    assert grown < 10_000 * 100, f"{grown / 10_000:.0f} bytes a stream"
    # ... and every stream is still there, with what it holds.
    assert store.stream_info(GROUP, "job-0/default/00000001") is not None
    assert [e.message for e in store.read(GROUP, "job-0/default/00000000", 0, 5)] == ["output of 0"]
    assert len(store.list_streams(GROUP)) == 20_000
    assert len(FileLogStore(tmp_path).list_streams(GROUP, "job-2856/")) == 7


def _fill(store: LogStore) -> list[str]:
    """Streams of every kind; their names."""
    names = [f"s{i:02d}" for i in range(12)] + ["t/ünï", "s.dot~", "s" + "x" * 300]
    for i, name in enumerate(names):
        store.create_stream(GROUP, name, created_at=100 + i)
        if i % 3 == 0:
            store.append(GROUP, name, [(1000 + i, f"{name} a"), (1001 + i, "b")], 2000 + i)
    store.append(GROUP, "s00", [(5000 + j, f"late {j}") for j in range(40)], 6000)
    store.append(GROUP, "u/appended-only", [(7, "made by append")], ingestion_time=8)
    store.delete_stream(GROUP, "s01")
    store.delete_stream(GROUP, "s03")
    store.create_stream("/other", "x", created_at=1)
    return [*names, "u/appended-only", "never-made"]


def test_file_store_reads_back_evicted_streams_exactly(tmp_path: Path) -> None:
    reference = FileLogStore(tmp_path / "reference")
    small = FileLogStore(tmp_path / "small", cache_streams=3, cache_offsets=10)
    names = _fill(reference)
    assert _fill(small) == names

    expected = _snapshot(reference, GROUP, names)
    assert _snapshot(small, GROUP, names) == expected  # empty streams not journaled yet
    small.flush()
    assert _snapshot(small, GROUP, names) == expected  # and now from the journal
    assert list(reversed([_snapshot(small, GROUP, [n]) for n in reversed(names)])) == [
        _snapshot(reference, GROUP, [n]) for n in names
    ]
    reopened = FileLogStore(tmp_path / "small", cache_streams=3, cache_offsets=10)
    assert _snapshot(reopened, GROUP, names) == expected
    assert [s.name for s in reopened.list_streams(GROUP, "s0")] == [
        "s00",
        "s02",
        "s04",
        "s05",
        "s06",
        "s07",
        "s08",
        "s09",
    ]
    assert [s.name for s in reopened.list_streams(GROUP, "t/ü")] == ["t/ünï"]
    assert [s.name for s in reopened.list_streams(GROUP, "sxx")] == ["s" + "x" * 300]


def test_file_store_reloads_an_evicted_stream_from_its_file(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path, cache_streams=2)
    store.append(GROUP, STREAM, [(1, "one")], ingestion_time=2)
    assert store.count(GROUP, STREAM) == 1
    [path] = list(tmp_path.rglob("*.log"))
    with path.open("ab") as f:  # the disk changes behind the store's back ...
        f.write(b'[3, 4, "written by someone else"]\n')
    for i in range(3):  # ... and the stream leaves the cache: the disk is the truth again
        store.create_stream(GROUP, f"other-{i}", created_at=i)

    assert [e.message for e in store.read(GROUP, STREAM, 0, 5)] == [
        "one",
        "written by someone else",
    ]
    info = store.stream_info(GROUP, STREAM)
    assert info is not None
    assert (info.last_event_timestamp, info.last_ingestion_time) == (3, 4)


def test_file_store_empty_streams_survive_eviction_and_a_reopen(tmp_path: Path) -> None:
    store = FileLogStore(tmp_path, cache_streams=4)
    quiet = [f"quiet/{i}" for i in range(50)]
    for i, name in enumerate(quiet):
        store.create_stream(GROUP, name, created_at=1000 + i)
    for i in range(20):  # push every quiet stream out of the cache before any is journaled
        store.append(GROUP, f"loud/{i}", [(i, "x")], ingestion_time=i)

    def check(s: FileLogStore) -> None:
        for i, name in enumerate(quiet):
            info = s.stream_info(GROUP, name)
            assert info is not None, name
            assert (info.created_at, info.stored_bytes, info.first_event_timestamp) == (
                1000 + i,
                0,
                None,
            )
            assert (s.count(GROUP, name), s.read(GROUP, name, 0, 5)) == (0, [])
        assert [i.name for i in s.list_streams(GROUP, "quiet/")] == sorted(quiet)

    check(store)  # in memory only, yet evicted
    store.create_stream(GROUP, "quiet/7", created_at=1)  # exists: keeps its createdAt
    check(store)
    store.flush()
    check(store)  # from the journal
    check(FileLogStore(tmp_path, cache_streams=4))

    store.append(GROUP, "quiet/3", [(5, "finally")], ingestion_time=6)
    assert store.delete_stream(GROUP, "quiet/4") is True
    assert store.delete_stream(GROUP, "quiet/4") is False
    for i in range(10):
        store.create_stream(GROUP, f"evict/{i}", created_at=i)
    reopened = FileLogStore(tmp_path, cache_streams=4)
    assert reopened.stream_info(GROUP, "quiet/4") is None
    assert [e.message for e in reopened.read(GROUP, "quiet/3", 0, 5)] == ["finally"]
    info = reopened.stream_info(GROUP, "quiet/3")
    assert info is not None
    assert info.created_at == 1003
    assert len(reopened.list_streams(GROUP, "quiet/")) == 49


def test_file_store_with_a_tiny_cache_behaves_like_the_memory_store(tmp_path: Path) -> None:
    rng = random.Random(20261121)
    memory = MemoryLogStore()
    reference = FileLogStore(tmp_path / "reference")

    def tiny() -> FileLogStore:
        return FileLogStore(tmp_path / "tiny", cache_streams=3, cache_offsets=8)

    store = tiny()
    names = [f"{p}/{i}" for p in ("a", "b", "ab") for i in range(6)] + ["ü/x", "a" * 250]
    groups = [GROUP, "/g2"]

    def without_size(infos: list[StreamInfo]) -> list[tuple[object, ...]]:
        return [(i.name, i.created_at, i.first_event_timestamp, i.last_event_timestamp,
                 i.last_ingestion_time) for i in infos]  # fmt: skip

    for now in range(1, 1500):
        group, name = rng.choice(groups), rng.choice(names)
        op = rng.random()
        if op < 0.25:
            for s in (memory, reference, store):
                s.create_stream(group, name, created_at=now)
        elif op < 0.45:
            events = [(now, f"{now}:{j}") for j in range(rng.randrange(0, 5))]
            for s in (memory, reference, store):
                s.append(group, name, events, ingestion_time=now)
        elif op < 0.5:
            assert store.delete_stream(group, name) == memory.delete_stream(group, name)
            reference.delete_stream(group, name)
        elif op < 0.52:
            store.flush()
            store = tiny()
        elif op < 0.55:
            store.flush()
        else:
            start, limit = rng.randrange(0, 6), rng.randrange(0, 6)
            assert store.read(group, name, start, limit) == memory.read(group, name, start, limit)
            assert store.count(group, name) == memory.count(group, name)
            assert store.stream_info(group, name) == reference.stream_info(group, name)
            prefix = rng.choice([None, "a", "ab/", "b/1", "ü", "a" * 100, "zz"])
            listed = store.list_streams(group, prefix)
            assert listed == reference.list_streams(group, prefix)
            assert without_size(listed) == without_size(memory.list_streams(group, prefix))
    assert store.list_groups() == memory.list_groups()


def test_file_store_answers_exactly_when_every_name_hashes_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The journal index keeps hashes, not names: a hash match is confirmed on disk.
    monkeypatch.setattr(JournalIndex, "_hash", staticmethod(lambda name: 12345))
    store = FileLogStore(tmp_path, cache_streams=1)
    for i in range(30):
        store.create_stream(GROUP, f"c{i}", created_at=i)
    store.flush()
    store.append(GROUP, "c5", [(1, "x")], ingestion_time=2)
    store.delete_stream(GROUP, "c6")
    store.create_stream(GROUP, "c6", created_at=600)

    for s in (store, FileLogStore(tmp_path, cache_streams=1)):
        for i in range(30):
            info = s.stream_info(GROUP, f"c{i}")
            assert info is not None
            assert info.created_at == (600 if i == 6 else i)
        assert s.stream_info(GROUP, "c30") is None
        assert len(s.list_streams(GROUP)) == 30
        s.flush()


def test_file_store_reader_sees_evicted_and_empty_streams_and_writes_nothing(
    tmp_path: Path,
) -> None:
    writer = FileLogStore(tmp_path, cache_streams=2)
    for i in range(200):
        writer.create_stream(GROUP, f"s{i}", created_at=i)
    writer.flush()
    for i in range(150):  # the journal is now mostly ended: a writer would compact it
        writer.append(GROUP, f"s{i}", [(i, f"line {i}")], ingestion_time=i)
    writer.delete_stream(GROUP, "s198")
    writer.delete_stream(GROUP, "s197")
    writer.create_stream(GROUP, "s197", created_at=1970)
    writer.flush()

    def files() -> dict[str, bytes]:
        # Not the writer's spare files: its own thread keeps making them.
        return {
            str(p): p.read_bytes()
            for p in sorted(tmp_path.rglob("*"))
            if p.is_file() and p.parent.name != ".spare"
        }

    before = files()
    reader = FileLogStoreReader(tmp_path)
    info = reader.stream_info(GROUP, "s199")
    assert info is not None
    assert (info.created_at, info.stored_bytes) == (199, 0)
    assert reader.stream_info(GROUP, "s198") is None
    assert [(i.name, i.created_at) for i in reader.list_streams(GROUP, "s197")] == [("s197", 1970)]
    for s in ("s197", "s196", "s3"):  # single lookups scan the journal for the name
        assert reader.stream_info(GROUP, s) == writer.stream_info(GROUP, s)
    assert [e.message for e in reader.read(GROUP, "s3", 0, 5)] == ["line 3"]
    assert reader.count(GROUP, "s3") == 1
    assert reader.count(GROUP, "s196") == 0
    assert len(reader.list_streams(GROUP)) == 199
    assert [s.name for s in reader.list_streams(GROUP, "s19")] == ["s19"] + [
        f"s19{i}" for i in range(10) if i != 8
    ]
    assert reader.list_groups() == [GROUP]
    assert files() == before
    with pytest.raises(RuntimeError):
        reader.create_stream(GROUP, "new", created_at=1)


def test_file_store_a_stream_journaled_twice_is_one_stream(tmp_path: Path) -> None:
    # A flush that failed after writing is retried: its streams are declared again.
    first = FileLogStore(tmp_path)
    first.create_stream(GROUP, "twice", created_at=5)
    first.flush()
    [journal] = list(tmp_path.rglob("streams.jsonl"))
    with journal.open("ab") as f:
        f.write(b'\n{"stream": "twice", "createdAt": 9}\n')

    second = FileLogStore(tmp_path)
    info = second.stream_info(GROUP, "twice")
    assert info is not None
    assert info.created_at == 5
    assert [s.name for s in second.list_streams(GROUP)] == ["twice"]
    assert second.delete_stream(GROUP, "twice") is True
    assert second.stream_info(GROUP, "twice") is None
    assert FileLogStore(tmp_path).stream_info(GROUP, "twice") is None
