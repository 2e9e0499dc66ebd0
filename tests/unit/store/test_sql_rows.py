"""store/sql/rows.py: a job row is read and written by column name, never by a position kept
in step by hand. Checked against the table of schema.py and a real SQLite file."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa

from batchyard.domain.model import Job, JobStatus
from batchyard.store import codec
from batchyard.store.sql import SqlStore, rows, schema
from tests.builders import a_submitted_job

S = JobStatus


def _stored(**fields: Any) -> Job:
    job = a_submitted_job("job-7", **fields)
    return codec.replace_job(job, seq=7, run_order=7, version=1)


def test_an_insert_row_holds_each_columns_value_at_the_columns_place() -> None:
    parent = codec.replace_job(
        _stored(array_size=3),
        array_status_summary={status.value: n for n, status in enumerate(S, start=1)},
    )
    for job in (_stored(share_identifier="blue", scheduling_priority=9), parent):
        row = rows.insert_row(job, "the document")
        assert len(row) == len(schema.jobs.columns)
        expected = [
            rows.inserted_value(column.name, job, "the document") for column in schema.jobs.columns
        ]
        assert list(row) == expected
    # SUBMITTED 1, PENDING 2, RUNNABLE 3, STARTING 4, RUNNING 5 (JobStatus order)
    assert rows.insert_row(parent, "d")[rows.INSERT_COLUMNS.index("n_running")] == 5


def test_named_positions_are_where_a_select_puts_their_columns(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'batchyard.db'}")
    try:
        store.insert_jobs([a_submitted_job("job-1", share_identifier="blue")])
        with store.engine.connect() as connection:
            [row] = connection.execute(sa.select(*rows.JOB_COLUMNS)).all()
    finally:
        store.close()
    assert row[rows.JOB_ID] == "job-1"
    assert row[rows.STATUS] == "SUBMITTED"
    assert row[rows.VERSION] == 1
    assert row[rows.SEQ] == 1
    record = rows.row_record(row)
    assert record["share_identifier"] == "blue"
    assert record["job_name"] == "name-job-1"
    job = rows.job_from_row(row)
    assert (job.job_id, job.status, job.version, job.seq) == ("job-1", S.SUBMITTED, 1, 1)


def test_changed_values_name_only_the_columns_that_differ() -> None:
    old = _stored()
    new = codec.replace_job(old, status=S.RUNNABLE, job_name="Renamed")
    assert rows.changed_values(old, new) == {
        "status": "RUNNABLE",
        "job_name": "Renamed",
        "job_name_lc": "renamed",
    }
    assert rows.changed_values(old, old) == {}
