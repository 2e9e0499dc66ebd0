"""SQL only: the 0002 migration (consumable resources, fair share) of an existing database, index
use, and statements per snapshot."""

from __future__ import annotations

import sqlite3
from dataclasses import replace
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from batchyard.domain.model import (
    JobStatus,
    ShareUsage,
)
from batchyard.scheduling.snapshot import Snapshot
from batchyard.store import codec
from batchyard.store.base import ConsumableJobQuery, JobQuery, SnapshotLimits
from batchyard.store.sql import SqlStore
from tests.builders import (
    FAIR_POLICY_ARN,
    a_complete_consumable_resource,
    a_complete_queue,
    a_complete_scheduling_policy,
    a_submitted_job,
)
from tests.contract.store.steps import (
    AnyStore,
    evaluate_all,
    fair_queues,
    held,
    listed_by_resource,
    needs,
)

S = JobStatus


# -- SQL only: the 0002 migration ------------------------------------------------------------------


def test_a_0001_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        config = Config()
        migrations = Path(codec.__file__).resolve().parent / "migrations"
        config.set_main_option("script_location", str(migrations))
        config.set_main_option("path_separator", "os")
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
        columns = {c["name"] for c in sa.inspect(connection).get_columns("jobs")}
        assert "scheduling_priority" not in columns
        base = {
            "version": 1,
            "needs_eval": False,
            "job_queue": "fq",
            "status": "RUNNABLE",
            "job_name": "old",
            "job_name_lc": "old",
            "job_definition_name": "def",
            "job_definition_arn": "arn:def",
            "created_at": 100,
            "share_identifier": "blue",
        }
        rows = [
            {**base, "job_id": "low", "seq": 1, "run_order": 1, "doc": "{}"},
            {
                **base,
                "job_id": "high",
                "seq": 2,
                "run_order": 2,
                "doc": '{"scheduling_priority":7}',
            },
            {
                **base,
                "job_id": "done",
                "seq": 3,
                "run_order": 3,
                "status": "SUCCEEDED",
                "share_identifier": "red",
                "created_at": 50,
                "doc": "{}",
            },
        ]
        connection.execute(
            sa.text(
                "INSERT INTO jobs (job_id, seq, version, needs_eval, job_queue, status, "
                "run_order, job_name, job_name_lc, job_definition_name, job_definition_arn, "
                "created_at, share_identifier, doc) VALUES (:job_id, :seq, :version, "
                ":needs_eval, :job_queue, :status, :run_order, :job_name, :job_name_lc, "
                ":job_definition_name, :job_definition_arn, :created_at, :share_identifier, "
                ":doc)"
            ),
            rows,
        )
        connection.execute(sa.text("UPDATE counters SET value = 3 WHERE name = 'seq'"))
    engine.dispose()

    store = SqlStore(f"sqlite:///{path}")
    try:
        high = store.get_job("high")
        assert high is not None
        assert high.scheduling_priority == 7
        store.put_scheduling_policy(a_complete_scheduling_policy("fair"), create=True)
        store.put_job_queue(
            a_complete_queue("fq", scheduling_policy_arn=FAIR_POLICY_ARN), create=True
        )
        snap = store.snapshot()
        assert {
            s: [j.job_id for j in jobs] for s, jobs in snap.runnable_by_share["fq"].items()
        } == {"blue": ["high", "low"]}
        assert snap.share_usage["fq"] == {
            "blue": ShareUsage("fq", "blue", 0.0, 100),
            "red": ShareUsage("fq", "red", 0.0, 50),
        }
        [new] = store.insert_jobs(
            [
                a_submitted_job(
                    "new", job_queue="fq", share_identifier="blue", consumable_resources=needs(x=1)
                )
            ]
        )
        assert new.seq == 4
        assert listed_by_resource(store, resource="x") == ["new"]
    finally:
        store.close()
    connection_ = sqlite3.connect(path)
    try:
        [(version,)] = connection_.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        connection_.close()
    assert version == "0002"


def test_reopen_keeps_resources_and_share_usage(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    first = SqlStore(url)
    fair_queues(first)
    first.put_consumable_resource(a_complete_consumable_resource("lic", 3), create=True)
    first.insert_jobs(
        [
            a_submitted_job(
                "a",
                job_queue="fq",
                share_identifier="s",
                status=S.RUNNING,
                consumable_resources=needs(lic=2),
            )
        ]
    )
    before = first.snapshot()
    first.close()
    second = SqlStore(url)
    try:
        assert second.snapshot() == before
        assert held(second, "lic") == (2, 3)
    finally:
        second.close()


def test_share_heads_and_resource_listing_use_indexes(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'i.db'}")
    fair_queues(store)
    store.insert_jobs(
        [
            a_submitted_job(
                f"j{i}",
                job_queue="fq",
                share_identifier=f"s{i % 4}",
                status=S.RUNNABLE,
                scheduling_priority=i % 3,
                consumable_resources=needs(lic=1),
            )
            for i in range(60)
        ]
    )
    statements: list[tuple[str, Any]] = []

    @sa.event.listens_for(store.engine, "before_cursor_execute")
    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, *args: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "jobs" in statement:
            statements.append((statement, parameters))

    store.snapshot(SnapshotLimits(runnable_per_queue=5))
    store.list_jobs_by_consumable_resource(ConsumableJobQuery(resource="lic", limit=5, after=30))
    store.list_jobs_by_consumable_resource(
        ConsumableJobQuery(resource="lic", status=S.RUNNABLE, limit=5)
    )
    sa.event.remove(store.engine, "before_cursor_execute", capture)
    share_heads = []
    with store.engine.connect() as connection:
        raw = connection.connection.dbapi_connection
        assert raw is not None
        for statement, parameters in statements:
            plan = [row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {statement}", parameters)]
            assert not any(step.startswith("SCAN") for step in plan), (statement, plan)
            if "FROM share_usage JOIN jobs" in statement:
                share_heads.append(plan)
                # Each share's heads come from the index, then only they are sorted, one share
                # (one share_usage row) at a time.
                assert "CORRELATED LIST SUBQUERY 1" in plan, plan
                assert any("COVERING INDEX ix_jobs_runnable_share" in step for step in plan), plan
                sorts = [step for step in plan if "TEMP B-TREE" in step]
                assert sorts == ["USE TEMP B-TREE FOR RIGHT PART OF ORDER BY"], plan
            elif "LIMIT" in statement:
                assert not any("TEMP B-TREE" in step for step in plan), (statement, plan)
    store.close()
    assert len(share_heads) == 1
    assert len(statements) >= 6


def test_snapshot_statements_do_not_grow_with_the_shares(tmp_path: Path) -> None:
    store = SqlStore(f"sqlite:///{tmp_path / 'n.db'}")
    try:
        fair_queues(store)
        store.insert_jobs(
            [
                a_submitted_job(
                    f"a{i}", job_queue="fq", share_identifier=f"s{i % 2}", status=S.RUNNABLE
                )
                for i in range(6)
            ]
        )
        statements: list[str] = []

        @sa.event.listens_for(store.engine, "before_cursor_execute")
        def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
            statements.append(statement)

        def snapshot() -> tuple[int, Snapshot]:
            # Counted on a warm store: no job to evaluate, every job already decoded (whole
            # rows of jobs not yet decoded are read in chunks, a count that grows with them).
            evaluate_all(store)
            store.snapshot()
            statements.clear()
            taken = store.snapshot(SnapshotLimits(runnable_per_queue=3))
            return len(statements), taken

        few, snap = snapshot()
        assert len(snap.runnable_by_share["fq"]) == 2
        # 200 shares more: half with RUNNABLE jobs, half whose jobs ended (their rows stay).
        store.insert_jobs(
            [
                a_submitted_job(
                    f"b{i}",
                    job_queue="fq",
                    share_identifier=f"t{i % 200:03d}",
                    status=S.RUNNABLE if i % 200 < 100 else S.SUCCEEDED,
                    scheduling_priority=i % 3,
                )
                for i in range(800)
            ]
        )
        many, snap = snapshot()
        assert len(snap.share_usage["fq"]) == 202
        heads = snap.runnable_by_share["fq"]
        assert len(heads) == 102
        assert [len(jobs) for jobs in heads.values()] == [3] * 102
        assert many == few > 0
    finally:
        store.close()


def test_list_jobs_still_work_with_fair_share_jobs(store: AnyStore) -> None:
    fair_queues(store)
    store.insert_jobs(
        [a_submitted_job("a", job_queue="fq", share_identifier="blue", scheduling_priority=3)]
    )
    assert [j.job_id for j in store.list_jobs(JobQuery(job_queue="fq"))] == ["a"]


def test_changed_requirements_move_the_listing_and_what_is_held(store: AnyStore) -> None:
    store.put_consumable_resource(a_complete_consumable_resource("lic", 5), create=True)
    store.put_consumable_resource(a_complete_consumable_resource("gpu", 5), create=True)
    store.insert_jobs([a_submitted_job("a", status=S.RUNNING, consumable_resources=needs(lic=2))])
    store.mutate_job("a", lambda j: replace(j, consumable_resources=needs(gpu=3)))
    assert (held(store, "lic"), held(store, "gpu")) == ((0, 5), (3, 5))
    assert listed_by_resource(store, resource="lic") == []
    assert listed_by_resource(store, resource="gpu") == ["a"]
