"""Records a server cannot read or plan, written into the SQLite file as past bad input would have
left them, then a restart: they are failed with a reason, every other job keeps moving, and
no call about them answers 500."""

from __future__ import annotations

import json
import sqlite3
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.fixtures import (
    ServerProcess,
    define_job,
    describe_job,
    make_environment,
    submit_job,
    unique,
    wait_status,
)

UNREADABLE = "Batchyard could not read this job's stored record"
UNPLANNABLE = "Batchyard could not schedule this job"


def _edit_job(db: Path, job_id: str, edit: Callable[[dict[str, Any]], str], **columns: Any) -> None:
    """Rewrite one job's row as stored: its document by `edit` (a JSON text, or not), and
    these columns."""
    with sqlite3.connect(db) as connection:
        [(doc,)] = connection.execute("SELECT doc FROM jobs WHERE job_id = ?", (job_id,))
        values = {"doc": edit(json.loads(doc)), **columns}
        assignments = ", ".join(f"{name} = ?" for name in values)
        connection.execute(
            f"UPDATE jobs SET {assignments} WHERE job_id = ?", (*values.values(), job_id)
        )
    connection.close()


def _edit_named(db: Path, table: str, name: str, edit: Callable[[dict[str, Any]], None]) -> None:
    with sqlite3.connect(db) as connection:
        [(doc,)] = connection.execute(f"SELECT doc FROM {table} WHERE name = ?", (name,))
        found = json.loads(doc)
        edit(found)
        connection.execute(f"UPDATE {table} SET doc = ? WHERE name = ?", (json.dumps(found), name))
    connection.close()


def _with_vcpus(value: str) -> Callable[[dict[str, Any]], str]:
    """A document whose vCPU count is `value` as JSON text: what float('nan') or float('inf')
    left, `null` through orjson, `NaN` through a JSON writer that allows it."""

    def edit(doc: dict[str, Any]) -> str:
        doc["resources"][0] = "@VCPUS@"
        return json.dumps(doc).replace('"@VCPUS@"', value)

    return edit


def _retry_exit_code_as_number(doc: dict[str, Any]) -> str:
    # evaluateOnExit's onExitCode is a glob string; a number decodes, and the planner raises
    # on it when the attempt's exit is matched.
    doc["retry_strategy"][1][0][3] = 3
    return json.dumps(doc)


def test_poisoned_records_are_isolated_after_a_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--stop-timeout", "2")
    server.start()
    batch = server.client()
    first, second = make_environment(batch, max_vcpus=4, priorities=(2, 1))
    quick = define_job(batch, ["true"])
    sleeping = define_job(batch, ["sleep", "3"])
    retried = define_job(
        batch,
        ["sh", "-c", "sleep 3; exit 3"],
        retryStrategy={"attempts": 2, "evaluateOnExit": [{"onExitCode": "3", "action": "RETRY"}]},
    )
    null_vcpus, broken_json, unknown_status = (submit_job(batch, first, quick) for _ in range(3))
    for job_id in (null_vcpus, broken_json, unknown_status):
        wait_status(batch, job_id)
    running_nan = submit_job(batch, first, sleeping)
    unplannable = submit_job(batch, first, retried)
    wait_status(batch, running_nan, ("RUNNING",))
    wait_status(batch, unplannable, ("RUNNING",))
    dependent = submit_job(batch, second, quick, dependsOn=[{"jobId": running_nan}])
    wait_status(batch, dependent, ("PENDING",))
    broken_queue = unique("q")
    batch.create_job_queue(
        jobQueueName=broken_queue,
        priority=3,
        computeEnvironmentOrder=[
            {"order": 1, "computeEnvironment": batch.describe_job_queues(jobQueues=[first])[
                "jobQueues"][0]["computeEnvironmentOrder"][0]["computeEnvironment"]}
        ],
    )  # fmt: skip
    broken_definition = define_job(batch, ["true"])
    assert server.stop() == 0

    db = server.data_dir / "batchyard.db"
    # Each as a past release could have stored it, all flagged for the planner or holding
    # capacity, so that the first rounds after the restart read them.
    _edit_job(db, null_vcpus, _with_vcpus("null"), status="RUNNABLE", needs_eval=1)
    _edit_job(db, broken_json, lambda doc: '{"resources": [1.0, 64', status="PENDING", needs_eval=1)
    _edit_job(db, unknown_status, json.dumps, status="LOST", needs_eval=1)
    _edit_job(db, running_nan, _with_vcpus("NaN"))
    _edit_job(db, unplannable, _retry_exit_code_as_number)
    _edit_named(db, "job_queues", broken_queue, lambda doc: doc.update(priority="high"))
    name, revision = broken_definition.rsplit("/", 1)[1].split(":")
    with sqlite3.connect(db) as connection:
        connection.execute(
            "UPDATE job_definitions SET doc = '[' WHERE name = ? AND revision = ?",
            (name, int(revision)),
        )
    connection.close()

    server.start()
    batch = server.client()
    with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
        assert json.loads(response.read())["status"] == "ok"

    # Every other job in every queue keeps moving.
    fresh = [submit_job(batch, queue, quick) for queue in (first, second, first, second)]
    for job_id in fresh:
        assert wait_status(batch, job_id, timeout=60)["status"] == "SUCCEEDED"

    # Each poisoned job is failed, saying why; the job waiting on one fails as a dependent.
    for job_id in (null_vcpus, broken_json, unknown_status, running_nan):
        job = wait_status(batch, job_id, ("FAILED",), timeout=30)
        assert job["statusReason"].startswith(UNREADABLE), job
    assert (
        "NaN" in describe_job(batch, running_nan)["statusReason"]
        or "JSON" in (describe_job(batch, running_nan)["statusReason"])
    )
    failed = wait_status(batch, unplannable, ("FAILED",), timeout=30)
    assert failed["statusReason"].startswith(UNPLANNABLE), failed
    assert wait_status(batch, dependent, timeout=30)["status"] == "FAILED"

    # Calls about them answer, never 500.
    poisoned = [null_vcpus, broken_json, unknown_status, running_nan, unplannable]
    for job_id in poisoned:
        batch.terminate_job(jobId=job_id, reason="cleanup")
        batch.cancel_job(jobId=job_id, reason="cleanup")
    described = batch.describe_jobs(jobs=poisoned)["jobs"]
    assert {job["jobId"] for job in described} == set(poisoned)
    assert all(job["status"] == "FAILED" for job in described)
    listed = batch.list_jobs(jobQueue=first, jobStatus="FAILED")["jobSummaryList"]
    assert set(poisoned) <= {job["jobId"] for job in listed}

    # Resources that cannot be read are left out of answers, not a 500.
    queues = {q["jobQueueName"] for q in batch.describe_job_queues()["jobQueues"]}
    assert {first, second} <= queues
    assert broken_queue not in queues
    definitions = batch.describe_job_definitions(jobDefinitionName=name)["jobDefinitions"]
    assert definitions == []

    # The unreadable record is kept in the failed job's row, and the log names each job.
    with sqlite3.connect(db) as connection:
        [(doc,)] = connection.execute("SELECT doc FROM jobs WHERE job_id = ?", (broken_json,))
    connection.close()
    assert json.loads(doc)["extra"]["batchyard:unreadableRecord"]["doc"] == '{"resources": [1.0, 64'
    output = server.output()
    for job_id in poisoned:
        assert f"job {job_id} stored as FAILED" in output
    assert f"job queue {broken_queue}: its stored record cannot be read" in output
    with urllib.request.urlopen(f"{server.url}/health", timeout=5) as response:
        assert json.loads(response.read())["status"] == "ok"
    assert server.stop() == 0
