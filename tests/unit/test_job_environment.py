"""The environment an attempt runs with (domain/job_environment.py): the job's own variables,
then the AWS_BATCH_* ones AWS Batch sets (docs/aws-behaviour.md#environment-variables)."""

from __future__ import annotations

from batchyard.domain.job_environment import attempt_environment
from tests.builders import a_job, an_attempt


def test_a_plain_job_gets_its_id_queue_compute_environment_and_attempt() -> None:
    job = a_job("job-7", job_queue="high", attempts=(an_attempt(),))
    assert attempt_environment(job, "ce-b") == {
        "AWS_BATCH_JOB_ID": "job-7",
        "AWS_BATCH_JQ_NAME": "high",
        "AWS_BATCH_CE_NAME": "ce-b",
        "AWS_BATCH_JOB_ATTEMPT": "1",
    }


def test_the_attempt_number_counts_from_one_across_retries() -> None:
    attempts = tuple(an_attempt(task_id=f"task-{n}") for n in range(3))
    job = a_job("job-7", attempts=attempts)
    assert attempt_environment(job, "ce-a")["AWS_BATCH_JOB_ATTEMPT"] == "3"


def test_an_array_child_gets_its_index_and_its_parents_size() -> None:
    child = a_job("arr:4", array_parent_id="arr", array_index=4, attempts=(an_attempt(),))
    environment = attempt_environment(child, "ce-a", array_size=10)
    assert environment["AWS_BATCH_JOB_ID"] == "arr:4"
    assert environment["AWS_BATCH_JOB_ARRAY_INDEX"] == "4"
    assert environment["AWS_BATCH_JOB_ARRAY_SIZE"] == "10"


def test_a_job_that_is_not_an_array_child_gets_no_array_variables() -> None:
    parent = a_job("arr", array_size=10, attempts=(an_attempt(),))
    environment = attempt_environment(parent, "ce-a", array_size=10)
    assert "AWS_BATCH_JOB_ARRAY_INDEX" not in environment
    assert "AWS_BATCH_JOB_ARRAY_SIZE" not in environment


def test_the_jobs_own_variables_come_first_and_batchs_win() -> None:
    container = {
        "environment": [
            {"name": "COLOR", "value": "blue"},
            {"name": "EMPTY"},
            {"name": "AWS_BATCH_JOB_ID", "value": "forged"},
        ]
    }
    job = a_job("job-7", container=container, attempts=(an_attempt(),))
    environment = attempt_environment(job, "ce-a")
    assert environment["COLOR"] == "blue"
    assert environment["EMPTY"] == ""
    assert environment["AWS_BATCH_JOB_ID"] == "job-7"
    assert list(environment)[:3] == ["COLOR", "EMPTY", "AWS_BATCH_JOB_ID"]
