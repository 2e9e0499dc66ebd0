"""store/sql/fastpath.py runs compiled statements on the DBAPI cursor: it must look to
SQLAlchemy's cursor events, and raise, exactly as `Connection.execute` does. Real SQLite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from batchyard.store.sql import SqlStore, fastpath, rows, statements
from tests.builders import a_submitted_job

Seen = list[tuple[str, str, Any, bool]]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'batchyard.db'}")
    opened.insert_jobs([a_submitted_job("a"), a_submitted_job("b"), a_submitted_job("c")])
    yield opened
    opened.close()


def _listen(engine: sa.Engine, seen: Seen) -> None:
    def before(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> Any:
        seen.append(("before", sql, params, many))
        return f"{sql} -- tagged", params  # a listener may rewrite the statement

    def after(conn: Any, cursor: Any, sql: str, params: Any, context: Any, many: bool) -> None:
        seen.append(("after", sql, params, many))

    sa.event.listen(engine, "before_cursor_execute", before, retval=True)
    sa.event.listen(engine, "after_cursor_execute", after)


def test_cursor_events_fire_as_under_execute(store: SqlStore) -> None:
    seen: Seen = []
    _listen(store.engine, seen)
    with store.engine.connect() as connection:
        expected = connection.execute(statements.SELECT_JOB, {"b_job_id": "b"}).all()
        listed = connection.execute(statements.SELECT_JOBS_BY_ID, {"ids": ["a", "c"]}).all()
    seen_execute = list(seen)
    seen.clear()
    with store.engine.connect() as connection:
        fetched = fastpath.fetch(connection, statements.SELECT_JOB, {"b_job_id": "b"})
        fetched_list = fastpath.fetch(
            connection, statements.SELECT_JOBS_BY_ID, ids=("ids", ["a", "c"])
        )
    by_fastpath = list(seen)
    assert len(seen_execute) == 4
    assert [tuple(row) for row in expected] == fetched
    assert sorted(tuple(row) for row in listed) == sorted(fetched_list)
    assert [row[rows.JOB_ID] for row in fetched] == ["b"]
    # Each statement seen once before and once after, the rewritten SQL after, same values.
    assert [(when, many) for when, _, _, many in by_fastpath] == [
        (when, many) for when, _, _, many in seen_execute
    ]
    assert [tuple(params) for _, _, params, _ in by_fastpath] == [
        tuple(params) for _, _, params, _ in seen_execute
    ]
    assert [sql for when, sql, _, _ in by_fastpath if when == "after"] == [
        sql for when, sql, _, _ in seen_execute if when == "after"
    ]
    assert all(sql.endswith("-- tagged") for when, sql, _, _ in by_fastpath if when == "after")


def test_many_rows_fire_one_executemany_event(store: SqlStore) -> None:
    seen: Seen = []
    _listen(store.engine, seen)
    rows_in = [{"job_id": "a", "depends_on": "x"}, {"job_id": "b", "depends_on": "y"}]
    with store.engine.connect() as connection, connection.begin():
        fastpath.execute_many(connection, statements.INSERT_DEPENDENCY, rows_in)
        stored = connection.execute(sa.text("SELECT job_id, depends_on FROM job_dependencies"))
        assert sorted(tuple(row) for row in stored) == [("a", "x"), ("b", "y")]
    inserts = [entry for entry in seen if entry[1].startswith("INSERT")]
    assert [(when, many) for when, _, _, many in inserts] == [("before", True), ("after", True)]
    assert list(inserts[1][2]) == [("a", "x"), ("b", "y")]


def test_database_errors_are_raised_as_sqlalchemys(store: SqlStore) -> None:
    with store.engine.connect() as connection, connection.begin():
        row = {"job_id": "a", "depends_on": "x"}
        fastpath.execute_many(connection, statements.INSERT_DEPENDENCY, [row])
        with pytest.raises(sa.exc.IntegrityError, match="UNIQUE"):
            fastpath.execute_many(connection, statements.INSERT_DEPENDENCY, [row])


def test_an_insert_row_takes_the_positional_path(store: SqlStore) -> None:
    """execute_rows falls back to a dict a row (slower, silently) when the compiled INSERT's
    parameter order is not INSERT_COLUMNS: it must be the table's column order."""
    with store.engine.connect() as connection:
        form = fastpath.form_of(connection, statements.INSERT_JOB, rows.INSERT_COLUMNS)
    assert form.names == rows.INSERT_COLUMNS
    assert form.defaults == {}
