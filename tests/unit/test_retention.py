"""Job retention (service/retention.py delete_expired_jobs): old job records go, and so do the log
streams of their attempts, on a real SQLite store and a real file log store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batchyard.cli import build_parser
from batchyard.domain.model import JobStatus
from batchyard.logs.file_store import FileLogStore
from batchyard.service.context import ServiceContext
from batchyard.service.retention import DAY_MS, delete_expired_jobs
from batchyard.store.sql import SqlStore
from tests.builders import FixedClock, a_finished_job, a_logged_attempt

S = JobStatus
GROUP = "/aws/batch/job"
NOW = 1_700_000_000_000
HOUR_MS = DAY_MS // 24


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqlStore]:
    opened = SqlStore(f"sqlite:///{tmp_path / 'batchyard.db'}")
    yield opened
    opened.close()


@pytest.fixture
def logs(tmp_path: Path) -> FileLogStore:
    return FileLogStore(tmp_path / "logs")


def context(store: SqlStore, logs: FileLogStore, now: int = NOW) -> ServiceContext:
    return ServiceContext(store=store, clock=FixedClock(now), logs=logs)


def write_streams(logs: FileLogStore, *task_ids: str) -> None:
    for task_id in task_ids:
        logs.append(GROUP, f"render/default/{task_id}", [(1, f"output of {task_id}")], 2)


def streams(logs: FileLogStore) -> list[str]:
    return [info.name for info in logs.list_streams(GROUP)]


def test_old_jobs_and_their_attempts_streams_are_deleted(
    store: SqlStore, logs: FileLogStore, tmp_path: Path
) -> None:
    week_ago = NOW - 7 * DAY_MS
    store.insert_jobs(
        [
            # Two attempts (a retry): both streams go.
            a_finished_job(
                "old-retried",
                S.SUCCEEDED,
                week_ago - 1,
                a_logged_attempt("t1"),
                a_logged_attempt("t2"),
            ),
            a_finished_job("old-failed", S.FAILED, week_ago - HOUR_MS, a_logged_attempt("t3")),
            # An attempt whose stream name was never recorded: the dispatcher's default name.
            a_finished_job(
                "old-unnamed", S.FAILED, week_ago - 5, a_logged_attempt("t4", stream=False)
            ),
            a_finished_job("old-never-ran", S.FAILED, week_ago - 5),
            a_finished_job("just-kept", S.SUCCEEDED, week_ago, a_logged_attempt("t5")),
            a_finished_job("recent", S.SUCCEEDED, NOW - HOUR_MS, a_logged_attempt("t6")),
            a_finished_job("running", S.RUNNING, None, a_logged_attempt("t7")),
        ]
    )
    write_streams(logs, "t1", "t2", "t3", "t4", "t5", "t6", "t7")
    logs.append(GROUP, "someone-else/default/x", [(1, "not a job's")], 2)

    removed = delete_expired_jobs(context(store, logs), retention_days=7)

    assert sorted(j.job_id for j in removed) == [
        "old-failed",
        "old-never-ran",
        "old-retried",
        "old-unnamed",
    ]
    kept = [j.job_id for j in store.get_jobs(["just-kept", "recent", "running", "old-failed"])]
    assert kept == ["just-kept", "recent", "running"]
    expected = [
        "render/default/t5",
        "render/default/t6",
        "render/default/t7",
        "someone-else/default/x",
    ]
    assert streams(logs) == expected
    assert streams(FileLogStore(tmp_path / "logs")) == expected  # gone from disk too
    assert delete_expired_jobs(context(store, logs), retention_days=7) == []


def test_fractional_days_and_a_clock_that_moves_on(store: SqlStore, logs: FileLogStore) -> None:
    store.insert_jobs([a_finished_job("a", S.SUCCEEDED, NOW - 2 * HOUR_MS, a_logged_attempt("t1"))])
    write_streams(logs, "t1")
    assert delete_expired_jobs(context(store, logs), retention_days=3 / 24) == []
    assert streams(logs) == ["render/default/t1"]
    later = context(store, logs, now=NOW + HOUR_MS + 1)
    assert [j.job_id for j in delete_expired_jobs(later, retention_days=3 / 24)] == ["a"]
    assert streams(logs) == []


@pytest.mark.parametrize("days", [0, -1])
def test_zero_keeps_everything(store: SqlStore, logs: FileLogStore, days: float) -> None:
    store.insert_jobs([a_finished_job("ancient", S.SUCCEEDED, 1, a_logged_attempt("t1"))])
    write_streams(logs, "t1")
    assert delete_expired_jobs(context(store, logs), retention_days=days) == []
    assert [j.job_id for j in store.get_jobs(["ancient"])] == ["ancient"]
    assert streams(logs) == ["render/default/t1"]


def test_without_a_log_store_only_records_go(store: SqlStore) -> None:
    store.insert_jobs([a_finished_job("old", S.SUCCEEDED, 1, a_logged_attempt("t1"))])
    ctx = ServiceContext(store=store, clock=FixedClock())
    assert [j.job_id for j in delete_expired_jobs(ctx, retention_days=1)] == ["old"]


def test_server_option(monkeypatch: pytest.MonkeyPatch) -> None:
    def parsed(*argv: str) -> Any:
        return build_parser().parse_args(["server", *argv]).job_retention_days

    monkeypatch.delenv("BATCHYARD_JOB_RETENTION_DAYS", raising=False)
    assert parsed() == 7.0  # AWS keeps job records at least 7 days
    assert parsed("--job-retention-days", "0.5") == 0.5
    monkeypatch.setenv("BATCHYARD_JOB_RETENTION_DAYS", "30")
    assert parsed() == 30.0
    assert parsed("--job-retention-days", "0") == 0.0
