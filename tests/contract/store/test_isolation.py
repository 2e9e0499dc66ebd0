"""One bad record stops nothing else, in every Store: quarantine_jobs fails a job and its
consequences follow; the dispatcher isolates a job it cannot read or plan while the others
run. SQL-only tests at the end poison rows in the SQLite file itself."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    ConsumableRequirement,
    ConsumableResource,
    EvaluateOnExit,
    Job,
    JobStatus,
    Resources,
    RetryStrategy,
)
from batchyard.scheduling.snapshot import Plan
from batchyard.store.base import JobQuery, SnapshotLimits
from batchyard.store.quarantine import ORIGINAL_RECORD, UNPLANNABLE_REASON, UNREADABLE_REASON
from batchyard.store.sql import SqlStore
from tests.builders import (
    a_complete_compute_environment,
    a_complete_queue,
    a_complete_scheduling_policy,
    a_submitted_job,
    complete_revisions_of,
)
from tests.contract.store.steps import (
    AnyStore,
    evaluate_all,
    flagged_ids,
    summary,
)
from tests.simulation import World

S = JobStatus

UNREADABLE = UNREADABLE_REASON.split("{")[0]
UNPLANNABLE = UNPLANNABLE_REASON.split("{")[0]


# -- quarantine_jobs --------------------------------------------------------------------------


def test_quarantine_fails_the_job_and_flags_its_dependents(store: AnyStore) -> None:
    store.insert_jobs(
        [
            a_submitted_job("a", status=S.RUNNABLE),
            a_submitted_job("d", status=S.PENDING, wait_for=("a",)),
        ]
    )
    evaluate_all(store)
    assert store.quarantine_jobs({"a": "why", "unknown": "why"}, 5_000) == ["a"]
    found = store.get_job("a")
    assert found is not None
    assert (found.status, found.status_reason, found.stopped_at) == (S.FAILED, "why", 5_000)
    assert flagged_ids(store) == ["d"]
    snapshot = store.snapshot()
    assert snapshot.runnable.get("q1", ()) == ()
    # Already failed: nothing more to store.
    assert store.quarantine_jobs({"a": "why"}, 6_000) == []


def test_quarantine_counts_an_array_child_in_its_parent(store: AnyStore) -> None:
    parent, first, second = (
        a_submitted_job("p", array_size=2),
        a_submitted_job("p:0", array_parent_id="p", array_index=0),
        a_submitted_job("p:1", array_parent_id="p", array_index=1),
    )
    store.insert_jobs([parent, first, second])
    evaluate_all(store)
    assert store.quarantine_jobs({"p:0": "why"}, 5_000) == ["p:0"]
    found = store.get_job("p")
    assert found is not None
    assert found.array_status_summary == summary(SUBMITTED=1, FAILED=1)
    assert "p" in flagged_ids(store)


def test_quarantine_releases_consumable_resources(store: AnyStore) -> None:
    store.put_consumable_resource(
        ConsumableResource(
            name="licence", arn="arn:licence", resource_type="REPLENISHABLE", total_quantity=3
        ),
        create=True,
    )
    store.insert_jobs(
        [
            a_submitted_job(
                "c", status=S.RUNNING, consumable_resources=(ConsumableRequirement("licence", 2),)
            )
        ]
    )
    held = store.get_consumable_resource("licence")
    assert held is not None
    assert held.in_use_quantity == 2
    assert store.quarantine_jobs({"c": "why"}, 5_000) == ["c"]
    released = store.get_consumable_resource("licence")
    assert released is not None
    assert released.in_use_quantity == 0
    assert store.active_jobs() == []


# -- the dispatcher isolates what it cannot read or plan --------------------------------------


def _run(store: AnyStore, scenario: Callable[[World], Any]) -> None:
    async def main() -> None:
        world = World(store=store)
        try:
            await scenario(world)
        finally:
            await world.dispatcher.close()

    asyncio.run(main())


def _poisoned(template: Job, job_id: str, **fields: Any) -> Job:
    """A RUNNABLE copy of a job, with fields no API call lets through."""
    return replace(
        template,
        job_id=job_id,
        status=S.RUNNABLE,
        attempts=(),
        started_at=None,
        stopped_at=None,
        status_reason=None,
        compute_environment=None,
        **fields,
    )


def test_a_job_that_cannot_be_read_or_planned_is_failed_and_the_rest_run(
    store: AnyStore,
) -> None:
    async def scenario(w: World) -> None:
        await w.open()
        definition = w.define(["fake", "exit", "0", "after", "10"])
        template = w.job(w.submit(definition))
        await w.settle()
        await w.advance(10)
        assert w.job(template.job_id).status is S.SUCCEEDED
        # vCPUs of None: SqlStore cannot keep it as a number (JSON null reads back as no
        # number), MemoryStore hands it to the planner, which raises adding it up.
        no_vcpus = _poisoned(template, "no-vcpus", resources=Resources(vcpus=None))  # type: ignore[arg-type]
        # An onExitCode that is no glob string: both stores read it; the planner raises when
        # the attempt's exit is matched against it.
        bad_retry = replace(
            _poisoned(template, "bad-retry"),
            container={**template.container, "command": ["fake", "exit", "3", "after", "10"]},
            retry_strategy=RetryStrategy(2, (EvaluateOnExit("RETRY", on_exit_code=3),)),  # type: ignore[arg-type]
        )
        w.store.insert_jobs([no_vcpus, bad_retry])
        others = [w.submit(definition) for _ in range(6)]
        await w.settle()
        await w.advance(10)
        await w.advance(10)
        for job_id in others:
            assert w.job(job_id).status is S.SUCCEEDED, w.job(job_id)
        failed = w.job("no-vcpus")
        assert failed.status is S.FAILED
        assert failed.status_reason is not None
        assert failed.status_reason.startswith((UNREADABLE, UNPLANNABLE)), failed.status_reason
        retried = w.job("bad-retry")
        assert retried.status is S.FAILED
        assert retried.status_reason is not None
        assert retried.status_reason.startswith(UNPLANNABLE), retried.status_reason
        # Terminate and cancel of them are answered, and change nothing.
        for job_id in ("no-vcpus", "bad-retry"):
            assert w.store.mutate_job(job_id, lambda j: lifecycle.request_terminate(j, "x"))
            assert w.store.mutate_job(job_id, lambda j: lifecycle.request_cancel(j, "x"))
            assert w.job(job_id).status is S.FAILED

    _run(store, scenario)


# -- SQL: rows poisoned in the file ----------------------------------------------------------


def _edit_doc(db: Path, table: str, key: str, value: str, edit: Callable[[str], str]) -> None:
    with sqlite3.connect(db) as connection:
        [(doc,)] = connection.execute(f"SELECT doc FROM {table} WHERE {key} = ?", (value,))
        connection.execute(f"UPDATE {table} SET doc = ? WHERE {key} = ?", (edit(doc), value))
    connection.close()


def _null_vcpus(doc: str) -> str:
    found = json.loads(doc)
    found["resources"][0] = None
    return json.dumps(found)


def test_sql_a_row_that_does_not_decode_is_read_as_failed_and_named_in_snapshots(
    tmp_path: Path,
) -> None:
    db = tmp_path / "batchyard.db"
    store = SqlStore(f"sqlite:///{db}")
    store.put_job_queue(a_complete_queue("q1"), create=True)
    resources = Resources(vcpus=1.0, memory_mib=64)
    store.insert_jobs(
        [
            a_submitted_job("bad", status=S.RUNNABLE, resources=resources),
            a_submitted_job("good", status=S.RUNNABLE, resources=resources),
            a_submitted_job("waits", status=S.PENDING, wait_for=("bad",)),
        ]
    )
    store.close()
    _edit_doc(db, "jobs", "job_id", "bad", _null_vcpus)
    store = SqlStore(f"sqlite:///{db}")
    try:
        # Reads answer what can be read: FAILED, saying why.
        found = store.get_job("bad")
        assert found is not None
        assert found.status is S.FAILED
        assert found.status_reason is not None
        assert found.status_reason.startswith(UNREADABLE)
        assert [j.job_id for j in store.get_jobs(["bad", "good"])] == ["bad", "good"]
        listed = store.list_jobs(JobQuery(job_queue="q1"))
        assert {j.job_id for j in listed} == {"bad", "good", "waits"}
        assert store.mutate_job("bad", lambda j: lifecycle.request_terminate(j, "x")) is not None
        # The planner never sees it: the snapshot names it instead.
        snapshot = store.snapshot(SnapshotLimits(to_evaluate=100))
        assert [j.job_id for j in snapshot.runnable["q1"]] == ["good"]
        assert "bad" not in {j.job_id for j in snapshot.to_evaluate}
        assert list(snapshot.unreadable) == ["bad"]
        assert snapshot.unreadable["bad"].startswith(UNREADABLE)
        assert store.quarantine_jobs(snapshot.unreadable, 9_000) == ["bad"]
        store.commit(Plan(evaluated=tuple((j.job_id, j.version) for j in snapshot.to_evaluate)))
        after = store.snapshot(SnapshotLimits(to_evaluate=100))
        assert after.unreadable == {}
        assert [j.job_id for j in after.to_evaluate] == ["waits"]  # its dependency ended
        assert after.dependency_status == {"bad": S.FAILED}
    finally:
        store.close()
    with sqlite3.connect(db) as connection:
        [(status, doc)] = connection.execute("SELECT status, doc FROM jobs WHERE job_id = 'bad'")
    connection.close()
    assert status == "FAILED"
    kept = json.loads(doc)["extra"][ORIGINAL_RECORD]
    assert json.loads(kept["doc"])["resources"][0] is None
    assert kept["status"] == "RUNNABLE"


def test_sql_an_unknown_status_is_read_as_failed(tmp_path: Path) -> None:
    db = tmp_path / "batchyard.db"
    store = SqlStore(f"sqlite:///{db}")
    store.insert_jobs(
        [a_submitted_job("lost"), a_submitted_job("waits", status=S.PENDING, wait_for=("lost",))]
    )
    store.close()
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE jobs SET status = 'LOST' WHERE job_id = 'lost'")
    connection.close()
    store = SqlStore(f"sqlite:///{db}")
    try:
        snapshot = store.snapshot()
        assert list(snapshot.unreadable) == ["lost"]
        assert snapshot.dependency_status == {"lost": S.FAILED}
        assert store.quarantine_jobs(snapshot.unreadable, 9_000) == ["lost"]
        found = store.get_job("lost")
        assert found is not None
        assert found.status is S.FAILED
    finally:
        store.close()


def test_sql_resources_that_do_not_decode_are_left_out(tmp_path: Path) -> None:
    db = tmp_path / "batchyard.db"
    store = SqlStore(f"sqlite:///{db}")
    for name in ("bad", "good"):
        store.put_compute_environment(a_complete_compute_environment(f"ce-{name}"), create=True)
        store.put_job_queue(a_complete_queue(f"q-{name}"), create=True)
        store.put_scheduling_policy(a_complete_scheduling_policy(f"sp-{name}"), create=True)
        store.add_job_definition(complete_revisions_of(f"jd-{name}"))
        store.put_consumable_resource(
            ConsumableResource(
                name=f"cr-{name}",
                arn=f"arn:{name}",
                resource_type="REPLENISHABLE",
                total_quantity=1,
            ),
            create=True,
        )
    store.close()
    _edit_doc(db, "compute_environments", "name", "ce-bad", lambda d: d.replace("8", '"x"'))
    _edit_doc(
        db, "job_queues", "name", "q-bad", lambda d: d.replace('"priority":1', '"priority":null')
    )
    _edit_doc(db, "scheduling_policies", "name", "sp-bad", lambda d: d[:-1])
    _edit_doc(db, "job_definitions", "name", "jd-bad", lambda d: "nope")
    _edit_doc(db, "consumable_resources", "name", "cr-bad", lambda d: "[]")
    store = SqlStore(f"sqlite:///{db}")
    try:
        assert [ce.name for ce in store.list_compute_environments()] == ["ce-good"]
        assert [q.name for q in store.list_job_queues()] == ["q-good"]
        assert [p.name for p in store.list_scheduling_policies()] == ["sp-good"]
        assert [d.name for d in store.list_job_definitions()] == ["jd-good"]
        assert [r.name for r in store.list_consumable_resources()] == ["cr-good"]
        assert store.get_compute_environment("ce-bad") is None
        assert store.get_job_queue("q-bad") is None
        assert store.get_scheduling_policy("sp-bad") is None
        assert store.latest_job_definition("jd-bad", active_only=False) is None
        assert store.get_consumable_resource("cr-bad") is None
        snapshot = store.snapshot()
        assert list(snapshot.compute_environments) == ["ce-good"]
        assert [q.name for q in snapshot.job_queues] == ["q-good"]
        assert list(snapshot.consumable_resources) == ["cr-good"]
    finally:
        store.close()


def test_sql_a_run_order_that_is_no_number_is_read_as_failed(tmp_path: Path) -> None:
    # Ordering a queue compares run orders: one of text would make every round raise.
    db = tmp_path / "batchyard.db"
    store = SqlStore(f"sqlite:///{db}")
    store.put_job_queue(a_complete_queue("q1"), create=True)
    store.insert_jobs(
        [a_submitted_job("text", status=S.RUNNABLE), a_submitted_job("number", status=S.RUNNABLE)]
    )
    store.close()
    with sqlite3.connect(db) as connection:
        connection.execute("UPDATE jobs SET run_order = 'first' WHERE job_id = 'text'")
    connection.close()
    store = SqlStore(f"sqlite:///{db}")
    try:
        snapshot = store.snapshot()
        assert [j.job_id for j in snapshot.runnable["q1"]] == ["number"]
        assert list(snapshot.unreadable) == ["text"]
    finally:
        store.close()
