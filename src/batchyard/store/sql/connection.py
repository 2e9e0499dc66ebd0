"""The database a SqlStore opens, and its transactions: the SQLite file check (a file that is
not a Batchyard database is refused and never written to), the engine and its pragmas, the
migrations run on open, the connections the owner thread holds, and the write locks (one
writer in this process, flock across processes).

`Database.reading()` and `Database.writing()` are the only ways the rest of the package gets
a connection; a failed write is reported to /health and, when the disk is full, to disk_full.
"""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.util import CommandError
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

from batchyard import disk_full, health
from batchyard.store.base import StoreError
from batchyard.store.sql.schema import SCHEMA_MARKER, meta

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_SQLITE_HEADER = b"SQLite format 3\x00"
_WRITE_OPTION = "batchyard_write"


def check_sqlite_file(path: Path) -> None:
    """Refuse, without writing a byte, a file that is not an empty or Batchyard SQLite database."""
    if path.is_dir():
        raise StoreError(f"{path} is a directory, not a Batchyard database")
    if not path.exists():
        if not path.parent.is_dir():
            raise StoreError(f"{path}: directory {path.parent} does not exist")
        return
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except OSError as exc:
        raise StoreError(f"{path}: cannot read the database file: {exc}") from exc
    if not header:
        return
    if header != _SQLITE_HEADER:
        raise StoreError(f"{path} is not a SQLite database; refusing to open it as Batchyard's")
    try:
        connection = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        try:
            tables = {
                name
                for (name,) in connection.execute(
                    "SELECT name FROM sqlite_master WHERE type = 'table'"
                )
                if not name.startswith("sqlite_")
            }
            if not tables:
                return
            marker = None
            if "batchyard_meta" in tables:
                marker = connection.execute(
                    "SELECT value FROM batchyard_meta WHERE key = 'schema'"
                ).fetchone()
        finally:
            connection.close()
    except sqlite3.Error as exc:
        raise StoreError(f"{path}: cannot read it as a SQLite database: {exc}") from exc
    if marker is None or marker[0] != SCHEMA_MARKER:
        raise StoreError(
            f"{path} is a SQLite database of another application (tables: "
            f"{', '.join(sorted(tables))}); refusing to open it as Batchyard's"
        )


def sqlite_engine(url: sa.URL) -> Engine:
    engine = sa.create_engine(url, connect_args={"check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Transactions are begun explicitly (see _on_begin) so reads see one state and
        # writes take the write lock up front.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # First, so that even switching to WAL waits for another process's lock.
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA journal_mode=WAL")
        # In WAL mode NORMAL loses nothing when the process dies, only on power loss.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        write = connection.get_execution_options().get(_WRITE_OPTION, False)
        # On the DBAPI connection: a dispatch round begins several transactions, and
        # SQLAlchemy's statement machinery costs more than the BEGIN itself.
        dbapi_connection = connection.connection.dbapi_connection
        assert dbapi_connection is not None
        dbapi_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")

    return engine


class Database:
    """One Batchyard database: its engine, and transactions on it (the connection wrapper the
    parts of SqlStore are given)."""

    def __init__(self, url: str) -> None:
        try:
            parsed = sa.make_url(url)
        except ArgumentError as exc:
            raise StoreError(f"invalid database URL {url!r}: {exc}") from exc
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        if self.is_sqlite:
            if parsed.database in (None, "", ":memory:"):
                raise StoreError("SqlStore needs a database file; use MemoryStore in memory")
            path = Path(parsed.database)
            self.where = str(path)
            self._directory = os.path.dirname(os.path.abspath(path))
            check_sqlite_file(path)
            self.engine = sqlite_engine(parsed)
        else:
            self.where = parsed.render_as_string(hide_password=True)
            self._directory = ""
            self.engine = sa.create_engine(parsed)
        self._write_lock = threading.Lock()
        # Other processes writing the same SQLite file (`--api-processes`) queue on this lock
        # file: flock wakes a waiter the moment the lock is free, where SQLite's busy handler
        # sleeps 1, 2, 5... ms between tries while a write takes a fraction of one.
        self._write_lock_fd: int | None = None
        self._owner = threading.get_ident()
        self._held: dict[bool, Connection] = {}  # write -> the owner thread's connection
        try:
            self._migrate()
        except StoreError:
            self.close()
            raise
        except (SQLAlchemyError, CommandError) as exc:
            # CommandError: the database is at a revision this Batchyard does not know.
            self.close()
            raise StoreError(f"{self.where}: cannot open the Batchyard database: {exc}") from exc
        self._release_held()  # not the connection Alembic used: start from fresh ones
        if self.is_sqlite:
            self._write_lock_fd = os.open(
                f"{self.where}.write-lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )

    def _migrate(self) -> None:
        with self.writing() as connection:
            tables = set(sa.inspect(connection).get_table_names())
            if tables:
                marker = None
                if "batchyard_meta" in tables:
                    marker = connection.execute(
                        sa.select(meta.c.value).where(meta.c.key == "schema")
                    ).scalar()
                if marker != SCHEMA_MARKER:
                    raise StoreError(
                        f"{self.where} holds tables of another application; refusing to use it"
                    )
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.set_main_option("path_separator", "os")
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def reading(self, *, consistent: bool = False) -> Iterator[Connection]:
        with self._connection(write=False) as connection:
            if consistent and not self.is_sqlite:
                # SQLite reads in one transaction see one state already; elsewhere ask for it.
                connection.execution_options(isolation_level="REPEATABLE READ")
            with connection.begin():
                yield connection

    @contextmanager
    def writing(self) -> Iterator[Connection]:
        # One writer at a time in this process; SQLite allows only one anyway and BEGIN
        # IMMEDIATE makes other processes wait (busy_timeout) instead of failing mid-way.
        try:
            with (
                self._write_lock,
                self._across_processes(),
                self._connection(write=True) as connection,
            ):
                connection.execution_options(**{_WRITE_OPTION: True})
                with connection.begin():
                    yield connection
        except IntegrityError:
            raise  # a lost race or a duplicate: the store itself is fine
        except (SQLAlchemyError, OSError) as error:
            health.current().store_write_failed(error)
            if self.is_sqlite:  # one warning per episode; the dispatcher waits for room
                disk_full.episodes.noticed(error, self._directory, disk_full.STORE)
            raise
        health.current().store_write_succeeded()

    @contextmanager
    def _across_processes(self) -> Iterator[None]:
        fd = self._write_lock_fd
        if fd is None:
            yield
            return
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    @contextmanager
    def _connection(self, *, write: bool) -> Iterator[Connection]:
        """A connection for one transaction.

        The thread that opened a SQLite store (the server's event loop, where the API and the
        dispatcher run) keeps one connection for reads and one for writes between
        transactions: a pool checkout costs several times an empty transaction, and a
        dispatch round runs three. Other threads, and a read nested in a transaction of the
        same kind, check one out of the pool.
        """
        held = None
        if self.is_sqlite and threading.get_ident() == self._owner:
            held = self._held.get(write)
            if held is None or held.closed or held.invalidated:
                held = self._held[write] = self.engine.connect()
            elif held.in_transaction():
                held = None
        if held is not None:
            yield held
        else:
            with self.engine.connect() as connection:
                yield connection

    # -- closing --------------------------------------------------------------------------

    def close(self) -> None:
        self._release_held()
        self.engine.dispose()
        if self._write_lock_fd is not None:
            os.close(self._write_lock_fd)
            self._write_lock_fd = None

    def _release_held(self) -> None:
        held, self._held = self._held, {}
        for connection in held.values():
            connection.close()
