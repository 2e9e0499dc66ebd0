"""An Airflow DAG that runs AWS Batch jobs with the Amazon provider's operators, unchanged, on
Batchyard. Point Airflow at Batchyard with AWS_ENDPOINT_URL (or the connection's endpoint_url
extra) and run it: `airflow dags test batchyard_example`. See docs/airflow.md.
"""

from __future__ import annotations

from datetime import UTC, datetime

from airflow.providers.amazon.aws.hooks.batch_client import BatchClientHook
from airflow.providers.amazon.aws.operators.batch import BatchOperator
from airflow.providers.amazon.aws.sensors.batch import BatchSensor
from airflow.sdk import DAG, task

JOB_DEFINITION = "batchyard-example"


@task
def register_job_definition() -> str:
    """Register (a new revision of) the job definition the jobs below run."""
    batch = BatchClientHook(aws_conn_id="aws_default").client
    answer = batch.register_job_definition(
        jobDefinitionName=JOB_DEFINITION,
        type="container",
        containerProperties={
            "image": "busybox",  # the docker runtime runs it; the process runtime ignores it
            "command": ["sh", "-c", "echo Hello from job $AWS_BATCH_JOB_ID"],
            "resourceRequirements": [
                {"type": "VCPU", "value": "1"},
                {"type": "MEMORY", "value": "256"},
            ],
        },
    )
    return str(answer["jobDefinitionArn"])


with DAG(
    "batchyard_example",
    schedule=None,
    start_date=datetime(2024, 1, 1, tzinfo=UTC),
    catchup=False,
    tags=["batchyard"],
):
    definition = register_job_definition()

    hello = BatchOperator(
        task_id="hello",
        job_name="hello",
        job_queue="default",  # Batchyard creates the 'default' queue on first start
        job_definition=JOB_DEFINITION,
        container_overrides={
            "command": ["sh", "-c", "echo 'Hello from Airflow on Batchyard'; sleep 2; echo done"]
        },
        awslogs_enabled=True,  # the job's output is copied into the task log
    )

    hello_deferred = BatchOperator(
        task_id="hello_deferred",
        job_name="hello-deferred",
        job_queue="default",
        job_definition=JOB_DEFINITION,
        container_overrides={
            "command": ["sh", "-c", "sleep 5; echo Hello from job $AWS_BATCH_JOB_ID"]
        },
        awslogs_enabled=True,
        deferrable=True,  # waits in the triggerer (BatchJobTrigger), not in a worker slot
        poll_interval=2,
    )

    wait_for_hello = BatchSensor(
        task_id="wait_for_hello",
        job_id=hello.output,  # BatchOperator returns the job id
        poke_interval=5,
    )

    definition >> [hello, hello_deferred]
    hello >> wait_for_hello
