"""JournalIndex (logs/journal_index.py), directly: it answers as a dict of the live declarations
would, whatever the hashes collide on, and holds a stream in 23 to 46 bytes (the ledger's
figure, docs/performance.md). Replay and compaction of real journals are in the log store
contract (tests/contract/test_logs.py)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchyard.logs.journal_index import JournalIndex


class CollidingIndex(JournalIndex):
    """Every name on one of three hashes: each lookup probes past others and reads to confirm."""

    @staticmethod
    def _hash(name: str) -> int:
        return len(name) % 3 + 1


def declaration(line: bytes) -> tuple[str, int] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return (entry["stream"], entry["createdAt"]) if isinstance(entry, dict) else None


class Journal:
    """Declaration lines appended to a real file, as the index expects to find them."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.write_bytes(b"")

    def write(self, stream: str, created_at: int) -> int:
        line = json.dumps({"stream": stream, "createdAt": created_at}).encode() + b"\n"
        with open(self.path, "ab") as f:
            offset = f.tell()
            f.write(line)
        return offset


NAMES = [f"job-{i}/default/{'x' * (i % 7)}" for i in range(24)]
operations = st.lists(
    st.tuples(st.sampled_from(["declare", "discard"]), st.sampled_from(NAMES)), max_size=120
)


@settings(max_examples=150, deadline=None)
@given(ops=operations, colliding=st.booleans())
def test_the_index_answers_as_a_dict_of_live_declarations_would(
    ops: list[tuple[str, str]], colliding: bool
) -> None:
    with tempfile.TemporaryDirectory() as directory:
        journal = Journal(Path(directory) / "streams.jsonl")
        index = (CollidingIndex if colliding else JournalIndex)(str(journal.path), declaration)
        live: dict[str, tuple[int, int]] = {}  # name -> (createdAt, offset of its line)
        for step, (op, name) in enumerate(ops):
            if op == "declare":
                offset = journal.write(name, step)
                assert index.declare(name, offset) is (name not in live)
                live.setdefault(name, (step, offset))
            else:
                assert index.discard(name) is (name in live)
                live.pop(name, None)
            assert len(index) == len(live)
        for name in NAMES:
            assert index.created_at(name) == (live[name][0] if name in live else None)
        for name, (_, offset) in live.items():
            assert index.holds(name, offset)
            assert not index.holds(name, offset + 1)


@pytest.mark.parametrize("colliding", [False, True])
def test_add_takes_a_removed_slot_and_lookups_probe_past_it(
    tmp_path: Path, colliding: bool
) -> None:
    journal = Journal(tmp_path / "streams.jsonl")
    index = (CollidingIndex if colliding else JournalIndex)(str(journal.path), declaration)
    first, second = "job-1/default/a", "job-2/default/bb"
    index.add(first, journal.write(first, 10))
    index.add(second, journal.write(second, 20))
    found = index.locate(first)
    assert found is not None
    index.remove(found[0])

    again = journal.write(first, 30)
    index.add(first, again)

    assert (index.created_at(first), index.created_at(second), len(index)) == (30, 20, 2)
    assert index.holds(first, again)


def test_a_name_with_a_declared_names_hash_is_not_taken_for_it(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "streams.jsonl")
    index = CollidingIndex(str(journal.path), declaration)
    index.declare("abc", journal.write("abc", 7))

    # "xyz" has the same (forced) hash: only the line read back tells them apart.
    assert index.created_at("xyz") is None
    assert not index.discard("xyz")
    assert index.created_at("abc") == 7


def test_lookups_read_through_a_given_descriptor(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "streams.jsonl")
    index = CollidingIndex(str(journal.path), declaration)
    index.declare("abc", journal.write("abc", 7))
    with open(journal.path, "rb") as f:
        os.unlink(journal.path)  # only the open descriptor still reaches the lines
        assert index.created_at("abc", f.fileno()) == 7
    assert index.created_at("abc") is None  # nothing to confirm the hash against


@pytest.mark.parametrize("streams", [1_000, 5_000, 20_000, 50_000])
def test_a_stream_costs_23_to_46_bytes(tmp_path: Path, streams: int) -> None:
    index = JournalIndex(str(tmp_path / "streams.jsonl"), declaration)
    for i in range(streams):
        index.add(f"job-{i}/default/{i:032x}", 40 * i)

    # Two int64 columns, at most 70% full, and at least 35% just after growing.
    table_bytes = 8 * (len(index._hashes) + len(index._offsets))
    assert 16 / 0.7 <= table_bytes / streams <= 16 / 0.35
