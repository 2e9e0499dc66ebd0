"""AwsBatchExecutor as the scheduler's executor on Batchyard: every task runs as a Batch job on
the process runtime (the job runs Airflow's Task SDK, which reports to the API server), retries
are Airflow's, and a scheduler killed with SIGKILL mid-run is replaced by one that adopts the
running task's Batch job."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.airflow.environment import AirflowHome
from tests.fixtures import ServerProcess, describe_job, free_port, wait_for, wait_status

pytestmark = [pytest.mark.airflow, pytest.mark.slow, pytest.mark.timeout(900)]

JOB_DEFINITION = "airflow-executor"


class Airflow:
    """An AIRFLOW_HOME whose scheduler uses AwsBatchExecutor, with its API server, DAG processor
    and scheduler running as subprocesses."""

    def __init__(self, home: AirflowHome, executor_env: dict[str, str]) -> None:
        self.home = home
        self.executor_env = executor_env
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, component: str, *args: str) -> None:
        log = (self.home.home / f"{component}.log").open("ab")
        self.processes[component] = subprocess.Popen(
            [str(self.home.bin / "airflow"), *args],
            env=self.home.env(**self.executor_env),
            cwd=self.home.home,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()

    def log(self, component: str) -> str:
        return (self.home.home / f"{component}.log").read_text(errors="replace")

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(self.home.home / "airflow.db", timeout=30) as db:
            return db.execute(sql, params).fetchall()

    def trigger(self, dag_id: str) -> str:
        wait_for(
            lambda: self.query("SELECT 1 FROM dag WHERE dag_id = ?", dag_id),
            timeout=120,
            interval=1,
            what=f"DAG {dag_id} parsed",
        )
        self.home.airflow("dags", "trigger", dag_id, "--run-id", f"{dag_id}-run")
        return f"{dag_id}-run"

    def wait_run(self, dag_id: str, run_id: str, timeout: float = 300) -> str:
        def finished() -> str | None:
            rows = self.query(
                "SELECT state FROM dag_run WHERE dag_id = ? AND run_id = ?", dag_id, run_id
            )
            return rows[0][0] if rows and rows[0][0] in ("success", "failed") else None

        return wait_for(finished, timeout=timeout, interval=1, what=f"{dag_id} run finished")

    def tasks(self, dag_id: str, run_id: str) -> dict[str, tuple[str, int, str]]:
        rows = self.query(
            "SELECT task_id, state, try_number, external_executor_id FROM task_instance "
            "WHERE dag_id = ? AND run_id = ?",
            dag_id,
            run_id,
        )
        return {task: (state, tries, job_id) for task, state, tries, job_id in rows}


@pytest.fixture(scope="module")
def airflow(
    airflow_bin: Path, batchyard: ServerProcess, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Airflow]:
    home = AirflowHome(airflow_bin, tmp_path_factory.mktemp("airflow"), batchyard.url)
    api_port = free_port()
    execution_api = f"http://127.0.0.1:{api_port}/execution/"
    # What the Batch job needs to run an Airflow task: the Airflow executables on PATH, the DAGs
    # and the execution API of the API server (the job gets its task and token in its command).
    job_environment = {
        "PATH": f"{airflow_bin}:/usr/local/bin:/usr/bin:/bin",
        "AIRFLOW_HOME": str(home.home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(home.home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": execution_api,
    }
    batchyard.client().register_job_definition(
        jobDefinitionName=JOB_DEFINITION,
        type="container",
        containerProperties={
            "image": "apache/airflow:3",  # for the docker runtime; the process runtime ignores it
            "command": ["true"],  # replaced by the executor with the task's command
            "environment": [{"name": k, "value": v} for k, v in job_environment.items()],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "512"},
            ],
        },
    )
    executor_env = {
        "AIRFLOW__CORE__EXECUTOR": (
            "airflow.providers.amazon.aws.executors.batch.AwsBatchExecutor"
        ),
        "AIRFLOW__AWS_BATCH_EXECUTOR__REGION_NAME": "us-east-1",
        "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_NAME": "airflow-task",
        "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_QUEUE": "default",
        "AIRFLOW__AWS_BATCH_EXECUTOR__JOB_DEFINITION": JOB_DEFINITION,
        "AIRFLOW__AWS_BATCH_EXECUTOR__CHECK_HEALTH_ON_STARTUP": "True",
        "AIRFLOW__AWS_BATCH_EXECUTOR__MAX_SUBMIT_JOB_ATTEMPTS": "3",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": execution_api,
        "AIRFLOW__API__PORT": str(api_port),
        "AIRFLOW__API_AUTH__JWT_SECRET": "batchyard-airflow-tests",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "2",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        # A dead scheduler is noticed, and its tasks adopted, within seconds.
        "AIRFLOW__SCHEDULER__SCHEDULER_HEALTH_CHECK_THRESHOLD": "10",
        "AIRFLOW__SCHEDULER__ORPHANED_TASKS_CHECK_INTERVAL": "2",
    }
    home.setup()
    airflow = Airflow(home, executor_env)
    airflow.start("api-server", "api-server", "--port", str(api_port))
    airflow.start("dag-processor", "dag-processor")
    airflow.start("scheduler", "scheduler")
    yield airflow
    airflow.stop()


def test_every_task_runs_as_a_batch_job(airflow: Airflow, batchyard: ServerProcess) -> None:
    run_id = airflow.trigger("batchyard_executor")
    assert airflow.wait_run("batchyard_executor", run_id) == "failed"  # `fails` fails
    tasks = airflow.tasks("batchyard_executor", run_id)
    assert {task: state for task, (state, _, _) in tasks.items()} == {
        "first": "success",
        "flaky": "success",
        "fails": "failed",
    }
    assert tasks["flaky"][1] == 2  # failed once, retried by Airflow
    batch = batchyard.client()
    for task, (_, _, job_id) in tasks.items():
        # The task reports its end to the API server before its process exits.
        job = wait_status(batch, job_id)
        assert job["jobDefinition"].split("/")[-1].startswith(f"{JOB_DEFINITION}:"), task
        assert job["container"]["command"][:3] == [
            "python", "-m", "airflow.sdk.execution_time.execute_workload",
        ]  # fmt: skip
        assert task in job["container"]["command"][-1]
        # A task that fails in Airflow is still a Batch job that ran its process to the end.
        assert job["status"] == "SUCCEEDED", (task, job.get("statusReason"))
    # The first try of `flaky` was a Batch job of its own.
    history = airflow.query(
        "SELECT try_number, external_executor_id FROM task_instance_history "
        "WHERE dag_id = ? AND run_id = ? AND task_id = 'flaky'",
        "batchyard_executor",
        run_id,
    )
    assert [tries for tries, _ in history] == [1]
    assert history[0][1] != tasks["flaky"][2]
    assert wait_status(batch, history[0][1])["status"] == "SUCCEEDED"
    # `first` returned the AWS_BATCH_JOB_ID it saw: it ran inside its Batch job.
    (value,) = airflow.query(
        "SELECT value FROM xcom WHERE dag_id = ? AND run_id = ? AND task_id = 'first'",
        "batchyard_executor",
        run_id,
    )[0]
    assert json.loads(value) == tasks["first"][2]


def test_a_new_scheduler_adopts_a_running_batch_job(
    airflow: Airflow, batchyard: ServerProcess
) -> None:
    run_id = airflow.trigger("batchyard_adopt")

    def slow_job() -> str | None:
        state, _, job_id = airflow.tasks("batchyard_adopt", run_id).get("slow", ("", 0, ""))
        return job_id if state == "running" and job_id else None

    job_id = wait_for(slow_job, timeout=180, interval=1, what="slow task running")
    assert describe_job(batchyard.client(), job_id)["status"] == "RUNNING"
    scheduler = airflow.processes["scheduler"]
    scheduler.send_signal(signal.SIGKILL)
    scheduler.wait(timeout=10)

    airflow.start("scheduler-2", "scheduler")
    assert airflow.wait_run("batchyard_adopt", run_id) == "success"
    tasks = airflow.tasks("batchyard_adopt", run_id)
    assert tasks["slow"] == ("success", 1, job_id)  # the same try, the same Batch job
    assert tasks["after"][0] == "success"
    job = wait_status(batchyard.client(), job_id)
    assert job["status"] == "SUCCEEDED"
    assert len(job["attempts"]) == 1
    assert "Adopted the following" in airflow.log("scheduler-2")
