"""Airflow's BatchOperator (plain and deferrable), BatchSensor and
BatchCreateComputeEnvironmentOperator run unchanged against a Batchyard server: one
`airflow dags test` run of tests/airflow/dags/batchyard_operators.py, checked task by task."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.environment import AirflowHome, task_sections
from tests.fixtures import ServerProcess, describe_job, submit_job, unique

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(900)]

SUCCEEDS = ["sh", "-c", "echo output-of-the-job; sleep 3; echo job-done"]
FAILS = ["sh", "-c", "echo about-to-fail; sleep 3; exit 3"]


class DagRun:
    def __init__(self, states: dict[str, str | None], logs: dict[str, str], conf: dict[str, str]):
        self.states, self.logs, self.conf = states, logs, conf


@pytest.fixture(scope="module")
def run(
    airflow_bin: Path, batchyard: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> DagRun:
    batch = batchyard.client()
    for name, command in (("airflow-succeeds", SUCCEEDS), ("airflow-fails", FAILS)):
        batch.register_job_definition(
            jobDefinitionName=name,
            type="container",
            containerProperties={"image": "busybox", "command": command},
        )
    conf = {
        # Long enough for the sensor to wait on it while the other tasks run.
        "job_id": submit_job(
            batch,
            "default",
            "airflow-succeeds",
            containerOverrides={"command": ["sh", "-c", "sleep 20; echo sensed"]},
        ),
        "failed_job_id": submit_job(batch, "default", "airflow-fails"),
        "compute_environment": unique("airflow-ce"),
    }
    home = AirflowHome(airflow_bin, tmp_path_factory.mktemp("airflow"), batchyard.url)
    home.setup()
    # `dags test` runs every task in this process, deferred ones through their trigger inline;
    # the run fails (exit 1) because some tasks are meant to fail.
    output = home.airflow(
        "dags", "test", "batchyard_operators", "2024-01-02", "-c", json.dumps(conf), check=False
    )
    (home.home / "dags-test.log").write_text(output)
    example = home.airflow("dags", "test", "batchyard_example", "2024-01-02", check=False)
    (home.home / "example.log").write_text(example)
    return DagRun(
        {
            **home.task_states("batchyard_operators"),
            **{f"example.{k}": v for k, v in home.task_states("batchyard_example").items()},
        },
        {**task_sections(output), **{f"example.{k}": v for k, v in task_sections(example).items()}},
        conf,
    )


def job_id_in(log: str) -> str:
    marker = "AWS Batch job ("
    assert marker in log, log
    return log.split(marker, 1)[1].split(")", 1)[0]


@pytest.mark.parametrize("task", ["succeeds", "deferred_succeeds"])
def test_job_that_succeeds(run: DagRun, batchyard: ServerProcess, task: str) -> None:
    assert run.states[task] == "success", run.logs.get(task)
    log = run.logs[task]
    assert "output-of-the-job" in log
    assert "job-done" in log
    assert describe_job(batchyard.client(), job_id_in(log))["status"] == "SUCCEEDED"


def test_deferred_task_went_through_the_trigger(run: DagRun) -> None:
    # The job sleeps, so the operator defers and BatchJobTrigger polls until it succeeds.
    assert "Job completed." not in run.logs["deferred_succeeds"]
    assert "Fetching logs for AWS Batch job" in run.logs["deferred_succeeds"]


@pytest.mark.parametrize("task", ["fails", "deferred_fails"])
def test_job_that_fails(run: DagRun, batchyard: ServerProcess, task: str) -> None:
    assert run.states[task] == "failed", run.logs.get(task)
    log = run.logs[task]
    assert "about-to-fail" in log
    job_id = job_id_in(log)
    job: dict[str, Any] = describe_job(batchyard.client(), job_id)
    assert job["status"] == "FAILED"
    if task == "fails":
        assert job["statusReason"] in log
    else:
        # BatchJobTrigger's waiter reports the status only (an Airflow choice): the task log
        # names the job and its FAILED status.
        assert f"Failure while running batch job {job_id}" in log
        assert "FAILED" in log


def test_sensor_waits_for_a_job(run: DagRun, batchyard: ServerProcess) -> None:
    assert run.states["sensor"] == "success", run.logs.get("sensor")
    assert describe_job(batchyard.client(), run.conf["job_id"])["status"] == "SUCCEEDED"
    assert run.states["sensor_on_failed_job"] == "failed"
    assert "AWS Batch job status: FAILED" in run.logs["sensor_on_failed_job"]


def test_create_compute_environment_reaches_valid(run: DagRun, batchyard: ServerProcess) -> None:
    assert run.states["create_compute_environment"] == "success"
    (environment,) = batchyard.client().describe_compute_environments(
        computeEnvironments=[run.conf["compute_environment"]]
    )["computeEnvironments"]
    assert environment["status"] == "VALID"
    assert environment["state"] == "ENABLED"


def test_example_dag_runs(run: DagRun) -> None:
    example = {task: state for task, state in run.states.items() if task.startswith("example.")}
    assert example == {
        "example.register_job_definition": "success",
        "example.hello": "success",
        "example.hello_deferred": "success",
        "example.wait_for_hello": "success",
    }
    assert "Hello from Airflow on Batchyard" in run.logs["example.hello"]
    assert "Hello from job" in run.logs["example.hello_deferred"]


def test_operator_rides_out_throttling(
    airflow_bin: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    # One DescribeJobs every 2 s: the operator's first status checks come faster than that.
    server = ServerProcess(
        tmp_path_factory.mktemp("throttled") / "data", "--rate-limit", "DescribeJobs=0.5"
    )
    server.start()
    try:
        server.client().register_job_definition(
            jobDefinitionName="airflow-succeeds",
            type="container",
            containerProperties={"image": "busybox", "command": SUCCEEDS},
        )
        # botocore's own retries off, so the 429s reach BatchClientHook's retry loop.
        home = AirflowHome(
            airflow_bin,
            tmp_path_factory.mktemp("airflow-throttled"),
            server.url,
            extra_env={"AWS_MAX_ATTEMPTS": "1", "AWS_RETRY_MODE": "standard"},
        )
        home.setup()
        output = home.airflow("dags", "test", "batchyard_throttled", "2024-01-02", check=False)
        (home.home / "dags-test.log").write_text(output)
    finally:
        server.stop()
    log = task_sections(output)["throttled"]
    assert home.task_states("batchyard_throttled") == {"throttled": "success"}, log
    assert "Ignored TooManyRequestsException error" in log
    assert "output-of-the-job" in log
