"""The Amazon provider's Batch operators, sensor and trigger against Batchyard (run by
tests/airflow/test_operators.py with `airflow dags test`; job definitions are registered there)."""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.providers.amazon.aws.operators.batch import (
    BatchCreateComputeEnvironmentOperator,
    BatchOperator,
)
from airflow.providers.amazon.aws.sensors.batch import BatchSensor
from airflow.sdk import DAG

with DAG(
    "batchyard_operators",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"retries": 0},
):
    for deferrable in (False, True):
        prefix = "deferred_" if deferrable else ""
        BatchOperator(
            task_id=f"{prefix}succeeds",
            job_name=f"{prefix}succeeds",
            job_queue="default",
            job_definition="airflow-succeeds",
            awslogs_enabled=True,
            deferrable=deferrable,
            poll_interval=1,
        )
        BatchOperator(
            task_id=f"{prefix}fails",
            job_name=f"{prefix}fails",
            job_queue="default",
            job_definition="airflow-fails",
            awslogs_enabled=True,
            deferrable=deferrable,
            poll_interval=1,
        )
    BatchSensor(task_id="sensor", job_id="{{ dag_run.conf['job_id'] }}", poke_interval=1)
    BatchSensor(
        task_id="sensor_on_failed_job",
        job_id="{{ dag_run.conf['failed_job_id'] }}",
        poke_interval=1,
    )
    BatchCreateComputeEnvironmentOperator(
        task_id="create_compute_environment",
        compute_environment_name="{{ dag_run.conf['compute_environment'] }}",
        environment_type="MANAGED",
        state="ENABLED",
        compute_resources={"type": "EC2", "maxvCpus": 2, "subnets": []},
        deferrable=True,  # without it the operator does not wait for VALID
        poll_interval=1,
    )

with DAG(
    "batchyard_throttled",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    default_args={"retries": 0},
):
    BatchOperator(
        task_id="throttled",
        job_name="throttled",
        job_queue="default",
        job_definition="airflow-succeeds",
        awslogs_enabled=True,
    )
