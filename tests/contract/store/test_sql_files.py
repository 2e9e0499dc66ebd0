"""What only the SQLite store does: durability across a reopen and kill -9, refusing foreign
files, and queries bounded by their indexes."""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from batchyard.domain.model import (
    JobStatus,
)
from batchyard.store.base import JobQuery, StoreError
from batchyard.store.sql import SqlStore
from tests.builders import (
    a_complete_compute_environment,
    a_complete_job,
    a_complete_queue,
    a_complete_scheduling_policy,
    a_submitted_array,
    a_submitted_job,
    complete_revisions_of,
)
from tests.contract.store.steps import (
    set_status,
)

S = JobStatus
RICH = a_complete_job()


# -- SQL only: durability -------------------------------------------------------------------------


def test_reopen_keeps_everything(db_url: str) -> None:
    first = SqlStore(db_url)
    first.put_compute_environment(a_complete_compute_environment("ce"), create=True)
    first.put_job_queue(a_complete_queue("q1"), create=True)
    first.put_scheduling_policy(a_complete_scheduling_policy("fair"), create=True)
    definition = first.add_job_definition(complete_revisions_of("def"))
    stored = first.insert_jobs([RICH, *a_submitted_array("p", 2)])
    first.mutate_job("p:0", set_status(S.RUNNABLE))
    first.delete_jobs_finished_before(0)
    jobs_before = first.get_jobs(["rich", "p", "p:0", "p:1"])
    snapshot_before = first.snapshot()
    counter = first.change_counter()
    first.close()

    second = SqlStore(db_url)
    assert second.get_compute_environment("ce") == a_complete_compute_environment("ce")
    assert second.get_job_queue("q1") == a_complete_queue("q1")
    assert second.get_scheduling_policy("fair") == a_complete_scheduling_policy("fair")
    assert second.get_job_definition("def", 1) == definition
    assert second.get_jobs(["rich", "p", "p:0", "p:1"]) == jobs_before
    assert second.get_job("rich") == stored[0]
    assert second.snapshot() == snapshot_before
    assert second.change_counter() == counter
    [later] = second.insert_jobs([a_submitted_job("later")])
    assert later.seq == 5
    assert second.add_job_definition(complete_revisions_of("def")).revision == 2
    second.close()


def test_data_survives_kill_9(db_url: str, tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import os, signal
        from batchyard.domain.model import Job, JobStatus
        from batchyard.store.sql import SqlStore

        store = SqlStore({db_url!r})
        store.insert_jobs([
            Job(job_id=f"k{{i}}", job_name="k", job_queue="q1", job_definition_arn="arn",
                job_definition_name="d", status=JobStatus.SUBMITTED, created_at=1, seq=0)
            for i in range(50)
        ])
        print("ok", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.stdout == "ok\n", done.stderr
    assert done.returncode == -signal.SIGKILL
    # The writes sit in the WAL (no clean close checkpointed them) and must be recovered.
    assert (tmp_path / "batchyard.db-wal").stat().st_size > 0
    reopened = SqlStore(db_url)
    found = reopened.get_jobs([f"k{i}" for i in range(50)])
    assert [j.seq for j in found] == list(range(1, 51))
    reopened.close()


# -- SQL only: foreign files --------------------------------------------------------------------


def _assert_refused(path: Path) -> None:
    before = path.read_bytes()
    siblings = sorted(p.name for p in path.parent.iterdir())
    with pytest.raises(StoreError) as raised:
        SqlStore(f"sqlite:///{path}")
    assert str(path) in str(raised.value)
    assert path.read_bytes() == before
    assert sorted(p.name for p in path.parent.iterdir()) == siblings


def test_refuses_a_file_that_is_not_sqlite(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(random.Random(1234).randbytes(8192))
    _assert_refused(path)


def test_refuses_a_text_file_shorter_than_a_header(tmp_path: Path) -> None:
    path = tmp_path / "short.db"
    path.write_bytes(b"hello")
    _assert_refused(path)


def test_refuses_a_sqlite_database_of_another_application(tmp_path: Path) -> None:
    path = tmp_path / "app.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
    connection.execute("INSERT INTO customers (name) VALUES ('ada')")
    connection.commit()
    connection.close()
    _assert_refused(path)


def test_refuses_a_sqlite_database_with_a_foreign_marker(tmp_path: Path) -> None:
    path = tmp_path / "marker.db"
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE batchyard_meta (key TEXT PRIMARY KEY, value TEXT)")
    connection.execute("INSERT INTO batchyard_meta VALUES ('schema', 'someone-else')")
    connection.commit()
    connection.close()
    _assert_refused(path)


def test_refuses_a_directory_and_a_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match=str(tmp_path)):
        SqlStore(f"sqlite:///{tmp_path}")
    missing = tmp_path / "nope" / "b.db"
    with pytest.raises(StoreError, match=str(missing)):
        SqlStore(f"sqlite:///{missing}")
    assert not missing.parent.exists()


def test_refuses_a_database_from_a_newer_batchyard(db_url: str, tmp_path: Path) -> None:
    SqlStore(db_url).close()
    path = tmp_path / "batchyard.db"
    connection = sqlite3.connect(path)
    connection.execute("UPDATE alembic_version SET version_num = 'from-the-future'")
    connection.commit()
    connection.close()
    with pytest.raises(StoreError, match=str(path)):
        SqlStore(db_url)


def test_an_empty_file_becomes_a_batchyard_database(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    path.touch()
    store = SqlStore(f"sqlite:///{path}")
    store.insert_jobs([a_submitted_job("a")])
    store.close()
    reopened = SqlStore(f"sqlite:///{path}")
    assert reopened.get_job("a") is not None
    reopened.close()


# -- SQL only: bounded queries ---------------------------------------------------------------------


def test_queries_use_indexes(db_url: str) -> None:
    store = SqlStore(db_url)
    store.put_job_queue(a_complete_queue("q1"), create=True)
    store.insert_jobs(
        a_submitted_array("p", 50)
        + [a_submitted_job(f"r{i}", status=S.RUNNABLE) for i in range(50)]
    )
    statements: list[tuple[str, Any]] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM jobs" in statement:
            statements.append((statement, parameters))

    store.snapshot()
    store.list_jobs(JobQuery(job_queue="q1", status=S.RUNNABLE, limit=10, after=40))
    store.list_jobs(JobQuery(job_queue="q1", limit=10))
    store.list_jobs(JobQuery(job_queue="q1", share_identifier="x", limit=10))
    store.list_jobs(JobQuery(array_job_id="p", after=10, limit=10))
    store.get_jobs([f"r{i}" for i in range(20)])
    store.delete_jobs_finished_before(5)
    sa.event.remove(store.engine, "before_cursor_execute", capture)
    assert len(statements) >= 9

    with store.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        for statement, parameters in statements:
            plan = [row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            scans = [step for step in plan if step.startswith("SCAN jobs")]
            assert scans == [], (statement, plan)
            if "LIMIT" in statement:
                assert not any("TEMP B-TREE" in step for step in plan), (statement, plan)
    store.close()
