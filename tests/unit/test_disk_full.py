"""Which errors mean a full disk, as the store and the log store raise them: only those are
answered as one (no traceback, a retry); every other failure keeps its traceback."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest
import sqlalchemy as sa

from batchyard import disk_full


def _sqlalchemy_error(statement: str, engine: sa.Engine) -> BaseException:
    with pytest.raises(sa.exc.DBAPIError) as raised, engine.connect() as connection:
        connection.exec_driver_sql(statement)
    return raised.value


def test_enospc_and_edquot_are_a_full_disk() -> None:
    assert disk_full.is_disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_full.is_disk_full(OSError(errno.EDQUOT, "Disk quota exceeded"))
    wrapped = RuntimeError("appending failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert disk_full.is_disk_full(wrapped)


def test_sqlite_full_is_a_full_disk(tmp_path: Path) -> None:
    connection = sqlite3.connect(tmp_path / "small.db")
    connection.execute("PRAGMA max_page_count = 2")  # SQLITE_FULL, as a full disk raises it
    connection.execute("CREATE TABLE t (x TEXT)")
    with pytest.raises(sqlite3.OperationalError) as raised:
        connection.execute("INSERT INTO t VALUES (?)", ("x" * 100_000,))
    connection.close()
    assert disk_full.is_disk_full(raised.value)
    wrapped = sa.exc.OperationalError("INSERT ...", {}, raised.value)  # as SQLAlchemy raises it
    assert disk_full.is_disk_full(wrapped)


def test_other_failures_are_not(tmp_path: Path) -> None:
    assert not disk_full.is_disk_full(OSError(errno.EIO, "Input/output error"))
    assert not disk_full.is_disk_full(PermissionError(errno.EACCES, "Permission denied"))
    assert not disk_full.is_disk_full(ValueError("no space here"))
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'store.db'}")
    assert not disk_full.is_disk_full(_sqlalchemy_error("SELECT * FROM missing", engine))
    assert not disk_full.is_disk_full(_sqlalchemy_error("NOT SQL", engine))
    engine.dispose()
    # An error raised while handling a full disk (its __context__) is not one itself.
    bug = KeyError("a bug in a handler")
    bug.__context__ = OSError(errno.ENOSPC, "No space left on device")
    assert not disk_full.is_disk_full(bug)


def test_an_episode_needs_a_full_disk_error(tmp_path: Path) -> None:
    episodes = disk_full.Episodes()
    assert not episodes.noticed(OSError(errno.EIO, "Input/output error"), str(tmp_path), "store")
    assert episodes.full() == []
