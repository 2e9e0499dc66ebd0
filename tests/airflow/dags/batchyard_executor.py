"""Run by AwsBatchExecutor on Batchyard (tests/airflow/test_executor.py): every task is a Batch
job; `flaky` fails its first try and Airflow retries it; `slow` runs long enough to kill the
scheduler under it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from airflow.sdk import DAG, task


@task
def first() -> str:
    import os

    print("first runs as Batch job", os.environ.get("AWS_BATCH_JOB_ID"))
    return os.environ.get("AWS_BATCH_JOB_ID", "")


@task(retries=1, retry_delay=timedelta(seconds=1))
def flaky(**context: Any) -> None:
    ti = context["ti"]  # Airflow's task instance; Airflow has no types in .venv
    if ti.try_number == 1:
        raise RuntimeError("flaky fails its first try")


@task
def slow(seconds: float) -> None:
    import time

    time.sleep(seconds)


@task(retries=0)
def fails() -> None:
    raise RuntimeError("this task always fails")


@task
def after() -> None:
    print("after the slow task")


with DAG(
    "batchyard_executor",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    is_paused_upon_creation=False,
):
    first() >> flaky()
    fails()

with DAG(
    "batchyard_adopt",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    is_paused_upon_creation=False,
):
    slow(30) >> after()
