"""batchyard.client's pure logic: back-off, jitter, status retries, parsing, waiter model.

AWS answers come from botocore's own Stubber on a real boto3 client; sleeps and randomness are
injected, so nothing here waits.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import boto3
import botocore.waiter
import pytest
from botocore.exceptions import ClientError
from botocore.stub import Stubber

from batchyard.client import (
    WAITER_MODEL,
    BatchClient,
    BatchClientError,
    BatchWaiters,
    job_log_streams,
)

JOB_ID = "8c1a7e2f-0000-4000-8000-000000000001"


class UpperBound:
    """A random.Random stand-in that records the bounds it is asked for and draws the upper."""

    def __init__(self) -> None:
        self.calls: list[tuple[float, float]] = []

    def uniform(self, a: float, b: float, /) -> float:
        self.calls.append((a, b))
        return b


@pytest.fixture
def boto_batch() -> Any:
    return boto3.client(
        "batch",
        region_name="eu-west-1",
        endpoint_url="http://127.0.0.1:1",
        aws_access_key_id="x",
        aws_secret_access_key="x",
    )


@pytest.fixture
def stubber(boto_batch: Any) -> Iterator[Stubber]:
    with Stubber(boto_batch) as stub:
        yield stub
        stub.assert_no_pending_responses()


def make_client(boto_batch: Any, **kwargs: Any) -> tuple[BatchClient, list[float], UpperBound]:
    sleeps: list[float] = []
    rng = UpperBound()
    client = BatchClient(boto_batch, sleep=sleeps.append, rng=rng, **kwargs)
    return client, sleeps, rng


def job(status: str = "RUNNING", job_id: str = JOB_ID, **extra: Any) -> dict[str, Any]:
    return {
        "jobName": "j",
        "jobId": job_id,
        "jobQueue": "q",
        "status": status,
        "startedAt": 1,
        "jobDefinition": "d",
        **extra,
    }


def answer(stubber: Stubber, *jobs: dict[str, Any]) -> None:
    stubber.add_response("describe_jobs", {"jobs": list(jobs)}, {"jobs": [JOB_ID]})


def fail(stubber: Stubber, code: str, status: int) -> None:
    stubber.add_client_error(
        "describe_jobs", code, "message", status, expected_params={"jobs": [JOB_ID]}
    )


# -- constants ---------------------------------------------------------------------------


def test_constants_match_airflow() -> None:
    assert (BatchClient.MAX_RETRIES, BatchClient.STATUS_RETRIES) == (4200, 10)
    assert (BatchClient.DEFAULT_DELAY_MIN, BatchClient.DEFAULT_DELAY_MAX) == (1, 10)
    assert (BatchClient.FAILURE_STATE, BatchClient.SUCCESS_STATE) == ("FAILED", "SUCCEEDED")
    assert BatchClient.RUNNING_STATE == "RUNNING"
    assert BatchClient.INTERMEDIATE_STATES == (
        "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING",
    )  # fmt: skip
    assert BatchClient.COMPUTE_ENVIRONMENT_TERMINAL_STATUS == ("VALID", "DELETED")
    assert BatchClient.COMPUTE_ENVIRONMENT_INTERMEDIATE_STATUS == (
        "CREATING", "UPDATING", "DELETING",
    )  # fmt: skip
    assert BatchClient.JOB_QUEUE_TERMINAL_STATUS == ("VALID", "DELETED")
    assert BatchClient.JOB_QUEUE_INTERMEDIATE_STATUS == ("CREATING", "UPDATING", "DELETING")


def test_retry_counts_default_when_not_given(boto_batch: Any) -> None:
    client = BatchClient(boto_batch)
    assert (client.max_retries, client.status_retries) == (4200, 10)
    client = BatchClient(boto_batch, max_retries=3, status_retries=2)
    assert (client.max_retries, client.status_retries) == (3, 2)


# -- back-off and jitter -----------------------------------------------------------------

BACKOFF = [1.0, 1.36, 2.44, 4.24, 6.76, 10.0, 13.96, 18.64, 24.04, 30.16]


@pytest.mark.parametrize(("tries", "delay"), list(enumerate(BACKOFF)))
def test_exponential_delay_draws_between_a_third_and_the_delay(
    boto_batch: Any, tries: int, delay: float
) -> None:
    client, _, rng = make_client(boto_batch)
    assert client.exponential_delay(tries) == pytest.approx(delay)
    ((low, high),) = rng.calls
    assert (low, high) == pytest.approx((delay / 3, delay))


def test_exponential_delay_is_capped_at_ten_minutes(boto_batch: Any) -> None:
    client, _, rng = make_client(boto_batch)
    for tries in (41, 100, 4200):
        assert client.exponential_delay(tries) == 600
    assert set(rng.calls) == {(200, 600)}


def test_exponential_delay_with_real_randomness_stays_in_bounds(boto_batch: Any) -> None:
    client = BatchClient(boto_batch, rng=random.Random(7))
    for tries, delay in enumerate(BACKOFF):
        draws = [client.exponential_delay(tries) for _ in range(200)]
        assert all(delay / 3 - 1e-9 <= d <= delay + 1e-9 for d in draws)
        assert max(draws) - min(draws) > (delay - delay / 3) / 2  # spread, not a constant


@pytest.mark.parametrize(
    ("args", "bounds"),
    [
        ((10,), (9, 11)),
        ((10, 5), (5, 15)),
        ((0,), (0, 1)),
        ((0.5,), (0, 1.5)),
        ((1, 5, 2), (2, 6)),  # minima raises the lower bound
        ((-10, -5, -0), (5, 15)),  # absolute values
    ],
)
def test_add_jitter_bounds(
    boto_batch: Any, args: tuple[float, ...], bounds: tuple[float, float]
) -> None:
    client, _, rng = make_client(boto_batch)
    assert client.add_jitter(*args) == bounds[1]
    assert rng.calls == [bounds]


def test_add_jitter_with_real_randomness(boto_batch: Any) -> None:
    client = BatchClient(boto_batch, rng=random.Random(3))
    draws = [client.add_jitter(10, width=5, minima=0) for _ in range(500)]
    assert all(5 <= d <= 15 for d in draws)
    assert min(draws) < 6
    assert max(draws) > 14


def test_delay_defaults_to_one_to_ten_seconds(boto_batch: Any) -> None:
    client, sleeps, rng = make_client(boto_batch)
    client.delay()
    client.delay(4)
    assert rng.calls == [(1, 10), (3, 5)]
    assert sleeps == [10, 5]


# -- describing jobs ---------------------------------------------------------------------


def test_parse_job_description_finds_the_job() -> None:
    response = {"jobs": [job(job_id="other"), job()]}
    assert BatchClient.parse_job_description(JOB_ID, response)["jobId"] == JOB_ID


def test_parse_job_description_missing_job() -> None:
    with pytest.raises(BatchClientError, match=rf"\({JOB_ID}\) description error: job not found"):
        BatchClient.parse_job_description(JOB_ID, {"jobs": []})


def test_parse_job_description_duplicated_job() -> None:
    with pytest.raises(BatchClientError, match="listed 2 times"):
        BatchClient.parse_job_description(JOB_ID, {"jobs": [job(), job()]})


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("TooManyRequestsException", 429),
        ("ThrottlingException", 400),
        ("ServerException", 500),
        ("ServiceUnavailable", 503),
    ],
)
def test_get_job_description_retries_throttling_and_server_errors(
    boto_batch: Any, stubber: Stubber, code: str, status: int
) -> None:
    client, sleeps, rng = make_client(boto_batch)
    fail(stubber, code, status)
    fail(stubber, code, status)
    answer(stubber, job("RUNNABLE"))
    assert client.get_job_description(JOB_ID)["status"] == "RUNNABLE"
    # retry n pauses add_jitter(exponential_delay(n)): upper bounds 1.36 + 1, then 2.44 + 1
    assert sleeps == [pytest.approx(2.36), pytest.approx(3.44)]
    assert rng.calls[0] == pytest.approx((1.36 / 3, 1.36))
    assert rng.calls[1] == pytest.approx((0.36, 2.36))


def test_get_job_description_raises_client_errors_at_once(
    boto_batch: Any, stubber: Stubber
) -> None:
    client, sleeps, _ = make_client(boto_batch)
    fail(stubber, "ClientException", 400)
    with pytest.raises(ClientError, match="ClientException"):
        client.get_job_description(JOB_ID)
    assert sleeps == []


def test_get_job_description_gives_up_after_status_retries(
    boto_batch: Any, stubber: Stubber
) -> None:
    client, sleeps, _ = make_client(boto_batch, status_retries=3)
    for _ in range(3):
        answer(stubber)
    with pytest.raises(BatchClientError) as caught:
        client.get_job_description(JOB_ID)
    message = str(caught.value)
    assert "exceeded status_retries (3)" in message
    assert "job not found" in message
    assert len(sleeps) == 2


def test_get_job_description_gives_up_on_persistent_throttling(
    boto_batch: Any, stubber: Stubber
) -> None:
    client, sleeps, _ = make_client(boto_batch, status_retries=2)
    fail(stubber, "TooManyRequestsException", 429)
    fail(stubber, "TooManyRequestsException", 429)
    with pytest.raises(BatchClientError, match=r"exceeded status_retries \(2\).*TooManyRequests"):
        client.get_job_description(JOB_ID)
    assert len(sleeps) == 1


# -- polling -----------------------------------------------------------------------------


def test_poll_job_status_backs_off_until_a_match(boto_batch: Any, stubber: Stubber) -> None:
    client, sleeps, _ = make_client(boto_batch)
    for status in ("SUBMITTED", "RUNNABLE", "STARTING", "RUNNING"):
        answer(stubber, job(status))
    assert client.poll_job_status(JOB_ID, ["RUNNING", "SUCCEEDED", "FAILED"]) is True
    # no pause before the first check; then add_jitter(exponential_delay(1..3)) (upper bounds)
    assert sleeps == [pytest.approx(d + 1) for d in BACKOFF[1:4]]


def test_poll_job_status_exceeds_max_retries(boto_batch: Any, stubber: Stubber) -> None:
    client, sleeps, _ = make_client(boto_batch, max_retries=2)
    for _ in range(3):
        answer(stubber, job("RUNNABLE"))
    with pytest.raises(BatchClientError, match="status checks exceed max_retries"):
        client.poll_job_status(JOB_ID, ["SUCCEEDED", "FAILED"])
    assert len(sleeps) == 2


def test_poll_for_job_running_accepts_a_job_already_done(boto_batch: Any, stubber: Stubber) -> None:
    client, sleeps, _ = make_client(boto_batch)
    answer(stubber, job("FAILED"))
    client.poll_for_job_running(JOB_ID, delay=0)
    assert sleeps == [1]  # the initial delay(0): add_jitter(0) draws from [0, 1]


def test_wait_for_job_starts_and_stops_the_log_fetcher(boto_batch: Any, stubber: Stubber) -> None:
    client, _, _ = make_client(boto_batch)
    answer(stubber, job("RUNNING"))
    answer(stubber, job("RUNNING"))
    answer(stubber, job("SUCCEEDED"))
    calls: list[str] = []

    class Fetcher:
        def start(self) -> None:
            calls.append("start")

        def stop(self) -> None:
            calls.append("stop")

        def join(self, timeout: float | None = None) -> None:
            calls.append("join")

    client.wait_for_job(JOB_ID, delay=1, get_batch_log_fetcher=lambda job_id: Fetcher())
    assert calls == ["start", "stop", "join"]


def test_check_job_success(boto_batch: Any, stubber: Stubber) -> None:
    client, _, _ = make_client(boto_batch)
    answer(stubber, job("SUCCEEDED"))
    assert client.check_job_success(JOB_ID) is True

    answer(stubber, job("FAILED", statusReason="Essential container in task exited"))
    with pytest.raises(BatchClientError) as caught:
        client.check_job_success(JOB_ID)
    assert (
        str(caught.value) == f"AWS Batch job ({JOB_ID}) failed: Essential container in task exited"
    )
    assert caught.value.job is not None
    assert caught.value.job["status"] == "FAILED"

    answer(stubber, job("RUNNABLE"))
    with pytest.raises(BatchClientError, match="is not complete: status RUNNABLE"):
        client.check_job_success(JOB_ID)


# -- log streams -------------------------------------------------------------------------


def attempt(stream: str) -> dict[str, Any]:
    return {"container": {"logStreamName": stream, "exitCode": 1}}


def test_log_streams_of_every_attempt_in_order() -> None:
    described = job(
        "RUNNING",
        attempts=[attempt("d/default/a"), attempt("d/default/b")],
        container={"logStreamName": "d/default/c", "logConfiguration": {"logDriver": "awslogs"}},
    )
    streams = job_log_streams(described, "eu-west-1")
    assert streams == [
        (i, {"awslogs_stream_name": f"d/default/{s}", "awslogs_group": "/aws/batch/job",
             "awslogs_region": "eu-west-1"})
        for i, s in enumerate("abc")
    ]  # fmt: skip


def test_log_streams_honour_awslogs_options() -> None:
    options = {"awslogs-group": "/custom", "awslogs-region": "us-west-2"}
    described = job(
        "SUCCEEDED",
        attempts=[attempt("s1")],
        container={
            "logStreamName": "s1",
            "logConfiguration": {"logDriver": "awslogs", "options": options},
        },
    )
    assert job_log_streams(described, "eu-west-1") == [
        (0, {"awslogs_stream_name": "s1", "awslogs_group": "/custom",
             "awslogs_region": "us-west-2"})
    ]  # fmt: skip


def test_log_streams_none_for_other_log_drivers() -> None:
    described = job("SUCCEEDED", container={"logConfiguration": {"logDriver": "json-file"}})
    assert job_log_streams(described, "eu-west-1") is None


def test_log_streams_of_multi_node_jobs_cross_attempts_and_node_groups() -> None:
    groups = [
        {"targetNodes": "0", "container": {"logConfiguration": {"logDriver": "awslogs"}}},
        {
            "targetNodes": "1:",
            "container": {
                "logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "/g"}}
            },
        },
    ]
    described = job(
        "RUNNING",
        nodeProperties={"numNodes": 2, "mainNode": 0, "nodeRangeProperties": groups},
        attempts=[attempt("s1"), attempt("s2")],
    )
    streams = job_log_streams(described, "eu-west-1") or []
    assert [(i, s["awslogs_stream_name"], s["awslogs_group"]) for i, s in streams] == [
        (0, "s1", "/aws/batch/job"),
        (0, "s1", "/g"),
        (1, "s2", "/aws/batch/job"),
        (1, "s2", "/g"),
    ]


def test_get_job_awslogs_info_is_the_current_stream(boto_batch: Any, stubber: Stubber) -> None:
    client, _, _ = make_client(boto_batch)
    answer(
        stubber,
        job("RUNNING", attempts=[attempt("s1"), attempt("s2")], container={"logStreamName": "s2"}),
    )
    assert client.get_job_awslogs_info(JOB_ID) == {
        "awslogs_stream_name": "s2",
        "awslogs_group": "/aws/batch/job",
        "awslogs_region": "eu-west-1",
    }


def test_get_job_all_awslogs_info_rejects_unsupported_jobs(
    boto_batch: Any, stubber: Stubber
) -> None:
    client, _, _ = make_client(boto_batch)
    answer(stubber, job("RUNNING"))
    with pytest.raises(BatchClientError, match="not a supported job type"):
        client.get_job_all_awslogs_info(JOB_ID)


# -- waiters -----------------------------------------------------------------------------


def test_waiter_model_is_airflows(boto_batch: Any) -> None:
    waiters = BatchWaiters(boto_batch)
    assert waiters.list_waiters() == ["JobComplete", "JobExists", "JobRunning"]
    assert isinstance(waiters.waiter_model, botocore.waiter.WaiterModel)
    complete = waiters.waiter_model.get_waiter("JobComplete")
    assert (complete.delay, complete.max_attempts) == (300, 288)
    assert [(a.expected, a.matcher, a.state) for a in complete.acceptors] == [
        ("SUCCEEDED", "pathAll", "success"),
        ("FAILED", "pathAny", "failure"),
    ]
    exists = waiters.waiter_model.get_waiter("JobExists")
    assert (exists.delay, exists.max_attempts) == (2, 100)
    assert {a.expected for a in exists.acceptors if a.state == "success"} == {
        "SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING", "FAILED", "SUCCEEDED",
    }  # fmt: skip
    running = waiters.waiter_model.get_waiter("JobRunning")
    assert (running.delay, running.max_attempts) == (5, 100)


def config_of(waiter: botocore.waiter.Waiter) -> botocore.waiter.SingleWaiterConfig:
    """The waiter's config: botocore sets a SingleWaiterConfig, which botocore-stubs declares
    as a dict."""
    config: object = waiter.config
    assert isinstance(config, botocore.waiter.SingleWaiterConfig)
    return config


def test_waiter_config_copies_do_not_leak(boto_batch: Any) -> None:
    waiters = BatchWaiters(boto_batch)
    config = waiters.default_config
    config["waiters"]["JobExists"]["delay"] = 99
    assert waiters.default_config == WAITER_MODEL
    assert config_of(waiters.get_waiter("JobExists")).delay == 2
    custom = BatchWaiters(boto_batch, waiter_config=config)
    assert config_of(custom.get_waiter("JobExists")).delay == 99
    waiter = custom.get_waiter("JobExists")
    config_of(waiter).delay = 1
    assert config_of(custom.get_waiter("JobExists")).delay == 99
