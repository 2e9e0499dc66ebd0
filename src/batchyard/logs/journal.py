"""A log group's journal of the streams that have no file yet: its format, replay, compaction.

Owns `<group directory>/streams.jsonl`, one JSON line per step in the life of an empty
stream: {"stream", "createdAt"} creates it, {"written"} ends it (its first events gave it a
file) and so does {"deleted"}. Replaying the journal builds the JournalIndex of the streams
still empty; compaction rewrites it with only those. When to write, replay and compact is the
file store's decision (`file_store.py`).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any, BinaryIO

from batchyard.logs.journal_index import JournalIndex

JOURNAL_FILE = "streams.jsonl"  # not a stream file: those end in .log
_COMPACTING_FILE = "streams.compacting"


def _journal_line(entry: dict[str, Any]) -> bytes:
    return (json.dumps(entry) + "\n").encode()


def _parse_journal_line(line: bytes) -> dict[str, Any] | None:
    try:
        entry = json.loads(line.decode())  # from str: json need not guess the encoding
    except ValueError:
        return None  # a blank separator, or a line torn by a crash
    return entry if isinstance(entry, dict) else None


def _parse_create(entry: dict[str, Any]) -> tuple[str, int] | None:
    """(stream, createdAt) of a journal line that declares a stream."""
    if "stream" not in entry:
        return None
    try:
        return str(entry["stream"]), int(entry["createdAt"])
    except (KeyError, TypeError, ValueError):
        return None


def _parse_declaration(line: bytes) -> tuple[str, int] | None:
    """(stream, createdAt) of a journal line that declares a stream: how a JournalIndex
    confirms a hash match."""
    entry = _parse_journal_line(line)
    return None if entry is None else _parse_create(entry)


def _journal_entries(f: BinaryIO, needle: bytes = b"") -> Iterator[tuple[int, str, int | None]]:
    """(offset, stream, createdAt) of each line of a journal that declares a stream, and
    (offset, stream, None) of each that ends one ({"written"}: it has a file now, or
    {"deleted"}), in order; only lines holding needle (a quick filter)."""
    offset = 0
    for line in f:
        start = offset
        offset += len(line)
        if needle not in line:
            continue
        entry = _parse_journal_line(line)
        if entry is None:
            continue
        if "stream" in entry:
            created = _parse_create(entry)
            if created is not None:
                yield start, created[0], created[1]
        elif (ended := entry.get("written", entry.get("deleted"))) is not None:
            yield start, str(ended), None


def replay(path: str) -> tuple[JournalIndex, int]:
    """The journal at path, replayed: the index of the streams it declares and has not ended,
    and how many lines it holds that declare or end a stream."""
    index = JournalIndex(path, _parse_declaration)
    entries = 0
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
        fd = f.fileno()  # lookups read through it, beside the sequential read
        for offset, stream, created_at in _journal_entries(f):
            entries += 1
            if created_at is not None:
                index.declare(stream, offset, fd)
            else:
                index.discard(stream, fd)
    return index, entries


def compact(index: JournalIndex) -> JournalIndex:
    """Rewrite the journal with only its live declarations, in their order."""
    compacting = os.path.join(os.path.dirname(index.path), _COMPACTING_FILE)
    compacted = JournalIndex(index.path, _parse_declaration)
    with open(index.path, "rb") as src, open(compacting, "wb") as dst:
        written = 0
        for offset, stream, created_at in _journal_entries(src):
            if created_at is None or not index.holds(stream, offset):
                continue
            data = _journal_line({"stream": stream, "createdAt": created_at})
            dst.write(data)
            compacted.add(stream, written)
            written += len(data)
    os.replace(compacting, index.path)
    return compacted


def declared_created_at(path: str, stream: str) -> int | None:
    """The stream's createdAt if the journal at path declares it and has not ended it, from
    the lines naming it: a read-only view asks once, where replaying it all would cost more."""
    created: int | None = None
    with contextlib.suppress(FileNotFoundError), open(path, "rb") as f:
        for _, name, created_at in _journal_entries(f, json.dumps(stream).encode()):
            if name == stream and (created is None or created_at is None):
                created = created_at  # the first creation wins until an end
    return created


def live_declarations(index: JournalIndex, prefix: str | None) -> Iterator[tuple[str, int]]:
    """(name, createdAt) of the streams the index holds whose name starts with prefix, read
    from its journal in one pass."""
    if not len(index):
        return
    # A name's JSON escape starts with its prefix's: lines without it need no parsing.
    needle = json.dumps(prefix)[1:-1].encode() if prefix else b""
    with contextlib.suppress(FileNotFoundError), open(index.path, "rb") as f:
        for offset, stream, created_at in _journal_entries(f, needle):
            if (
                created_at is not None
                and (prefix is None or stream.startswith(prefix))
                and index.holds(stream, offset)
            ):
                yield stream, created_at


def append(path: str, entries: list[dict[str, Any]]) -> list[int]:
    """Append entries to the journal at path; the offset of each one's line."""
    lines = [_journal_line(entry) for entry in entries]
    with open(path, "ab") as f:
        # A leading newline ends any line a crash tore, so this batch parses whole.
        offset = f.tell() + 1
        f.write(b"\n" + b"".join(lines))
    offsets = []
    for line in lines:
        offsets.append(offset)
        offset += len(line)
    return offsets
