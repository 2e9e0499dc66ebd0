"""Acknowledged writes survive kill -9; a foreign database file is refused, never overwritten."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from tests.fixtures import ServerProcess, unique, wait_for


def test_resources_survive_kill_9_and_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    server.start()
    batch = server.client()
    ce, queue, definition = unique("ce"), unique("q"), unique("jd")
    batch.create_compute_environment(
        computeEnvironmentName=ce,
        type="MANAGED",
        computeResources={"type": "EC2", "maxvCpus": 2, "subnets": []},
        tags={"owner": "me"},
    )
    wait_for(
        lambda: (
            batch.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"][0][
                "status"
            ]
            == "VALID"
        ),
        what="CE valid",
    )
    batch.create_job_queue(
        jobQueueName=queue,
        priority=5,
        computeEnvironmentOrder=[{"order": 1, "computeEnvironment": ce}],
    )
    arn = batch.register_job_definition(
        jobDefinitionName=definition, type="container", containerProperties={"image": "x"}
    )["jobDefinitionArn"]
    policy = batch.create_scheduling_policy(name=unique("sp"))["arn"]
    server.kill9()

    server.start()
    batch = server.client()
    ces = batch.describe_compute_environments(computeEnvironments=[ce])["computeEnvironments"]
    assert ces[0]["tags"] == {"owner": "me"}
    queues = batch.describe_job_queues(jobQueues=[queue])["jobQueues"]
    assert queues[0]["priority"] == 5
    definitions = batch.describe_job_definitions(jobDefinitions=[arn])["jobDefinitions"]
    assert definitions[0]["revision"] == 1
    assert batch.describe_scheduling_policies(arns=[policy])["schedulingPolicies"]
    # the revision counter survived too
    again = batch.register_job_definition(
        jobDefinitionName=definition, type="container", containerProperties={"image": "x"}
    )
    assert again["revision"] == 2
    server.stop()


def _start_on(data_dir: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "batchyard", "server", "--port", "1", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_unreadable_database_file_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "batchyard.db"
    garbage = b"this is not a database\x00" * 100
    db.write_bytes(garbage)
    result = _start_on(data)
    assert result.returncode != 0
    assert str(db) in result.stderr
    assert db.read_bytes() == garbage


def test_foreign_sqlite_database_is_refused(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    db = data / "batchyard.db"
    with sqlite3.connect(db) as connection:
        connection.execute("create table invoices (id integer primary key, total real)")
        connection.execute("insert into invoices values (1, 9.5)")
    before = db.read_bytes()
    result = _start_on(data)
    assert result.returncode != 0
    assert str(db) in result.stderr
    assert db.read_bytes() == before


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data")
    server.start()
    assert server.stop() == 0


def test_unexpected_errors_answer_server_exception_and_the_server_keeps_serving(
    tmp_path: Path,
) -> None:
    server = ServerProcess(tmp_path / "data")
    server.start()
    batch = server.client()
    # Break the store underneath the running server: job definitions can no longer be read.
    with sqlite3.connect(server.data_dir / "batchyard.db") as connection:
        connection.execute("alter table job_definitions rename to job_definitions_moved")
    with pytest.raises(ClientError) as caught:
        batch.describe_job_definitions()
    error = caught.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 500
    assert error["Error"]["Code"] == "ServerException"
    assert "Internal server error" in error["Error"]["Message"]
    assert "Traceback" in server.output()  # logged with its traceback
    # Everything else keeps working.
    assert batch.describe_job_queues(jobQueues=["default"])["jobQueues"]
    server.stop()
