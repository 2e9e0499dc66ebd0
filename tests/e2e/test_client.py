"""batchyard.client end to end: the SDK, its waiters and its log tailer against a real server."""

from __future__ import annotations

import copy
import time
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import WaiterError

from batchyard.client import (
    WAITER_MODEL,
    BatchClient,
    BatchClientError,
    BatchWaiters,
    JobLogFetcher,
    JobLogTailer,
    LogLine,
)
from tests.fixtures import (
    ServerProcess,
    define_job,
    describe_job,
    make_environment,
    submit_job,
    unique,
    wait_status,
)


class ShortSleeps:
    """Records the pauses the client asks for and sleeps at most 50 ms of each, so polling
    runs its real back-off logic at test speed."""

    def __init__(self) -> None:
        self.requested: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.requested.append(seconds)
        time.sleep(min(seconds, 0.05))


def sdk(server: ServerProcess, cls: type[BatchClient] = BatchClient, **kwargs: Any) -> Any:
    session = boto3.session.Session(
        aws_access_key_id="batchyard", aws_secret_access_key="batchyard", region_name="us-east-1"
    )
    return cls(
        session=session,
        endpoint_url=server.url,
        config=Config(retries={"max_attempts": 1, "mode": "standard"}),
        **kwargs,
    )


@pytest.fixture(scope="module")
def queue(server: ServerProcess) -> str:
    """One compute environment for the module: the server allows 50 in all."""
    return make_environment(server.client(), max_vcpus=4)[0]


def test_submit_wait_and_check_success(server: ServerProcess, batch: Any, queue: str) -> None:
    sleeps = ShortSleeps()
    client = sdk(server, sleep=sleeps)
    definition = define_job(batch, ["sh", "-c", "sleep 0.3"])
    response = client.submit_job(unique("sdk"), queue, definition, parameters={"a": "b"})
    job_id = response["jobId"]
    client.wait_for_job(job_id)
    assert client.check_job_success(job_id) is True
    assert describe_job(batch, job_id)["status"] == "SUCCEEDED"
    # three initial random delays of 1..10 s, then back-off pauses
    assert len(sleeps.requested) >= 3
    assert all(0 <= s <= 10 for s in sleeps.requested)


def test_failed_job_raises_with_its_status_reason(
    server: ServerProcess, batch: Any, queue: str
) -> None:
    client = sdk(server, sleep=ShortSleeps())
    job_id = client.submit_job(unique("sdk"), queue, define_job(batch, ["sh", "-c", "exit 3"]))[
        "jobId"
    ]
    client.wait_for_job(job_id, delay=0)
    with pytest.raises(BatchClientError) as caught:
        client.check_job_success(job_id)
    assert str(caught.value) == (
        f"AWS Batch job ({job_id}) failed: Essential container in task exited"
    )
    assert caught.value.job is not None
    assert caught.value.job["attempts"][0]["container"]["exitCode"] == 3


def test_terminate_job_and_poll_for_running(server: ServerProcess, batch: Any, queue: str) -> None:
    client = sdk(server, sleep=ShortSleeps())
    job_id = client.submit_job(unique("sdk"), queue, define_job(batch, ["sleep", "300"]))["jobId"]
    client.poll_for_job_running(job_id, delay=0)
    assert client.get_job_description(job_id)["status"] == "RUNNING"
    client.terminate_job(job_id, "Stopped by the SDK")
    client.poll_for_job_complete(job_id, delay=0)
    with pytest.raises(BatchClientError, match="failed: Stopped by the SDK"):
        client.check_job_success(job_id)


def test_missing_job_is_a_clear_error(server: ServerProcess) -> None:
    sleeps = ShortSleeps()
    client = sdk(server, sleep=sleeps, status_retries=3)
    with pytest.raises(BatchClientError) as caught:
        client.get_job_description("00000000-0000-4000-8000-000000000000")
    assert "job not found" in str(caught.value)
    assert "exceeded status_retries (3)" in str(caught.value)
    assert len(sleeps.requested) == 2


def test_awslogs_info_lists_every_attempt(server: ServerProcess, batch: Any, queue: str) -> None:
    client = sdk(server)
    definition = define_job(batch, ["sh", "-c", 'test "$AWS_BATCH_JOB_ATTEMPT" -ge 3'])
    job_id = submit_job(batch, queue, definition, retryStrategy={"attempts": 3})
    job = wait_status(batch, job_id)
    streams = [a["container"]["logStreamName"] for a in job["attempts"]]
    assert len(streams) == 3
    infos = client.get_job_all_awslogs_info(job_id)
    assert [i["awslogs_stream_name"] for i in infos] == streams
    assert {(i["awslogs_group"], i["awslogs_region"]) for i in infos} == {
        ("/aws/batch/job", "us-east-1")
    }
    assert client.get_job_awslogs_info(job_id) == infos[-1]


# -- waiters -----------------------------------------------------------------------------


def test_waiters_against_a_real_server(server: ServerProcess, batch: Any, queue: str) -> None:
    waiters = sdk(server, BatchWaiters)
    ok = submit_job(batch, queue, define_job(batch, ["sh", "-c", "sleep 0.3"]))
    bad = submit_job(batch, queue, define_job(batch, ["false"]))
    waiters.get_waiter("JobExists").wait(jobs=[ok])
    for waiter_name in ("JobRunning", "JobComplete"):
        waiter = waiters.get_waiter(waiter_name)
        waiter.config.delay = 0.1
        waiter.config.max_attempts = 300
        waiter.wait(jobs=[ok])
    assert describe_job(batch, ok)["status"] == "SUCCEEDED"

    complete = waiters.get_waiter("JobComplete")
    complete.config.delay = 0.1
    with pytest.raises(WaiterError, match="terminal failure state"):
        complete.wait(jobs=[bad])
    assert describe_job(batch, bad)["status"] == "FAILED"


def test_job_exists_waiter_fails_for_a_missing_job(server: ServerProcess) -> None:
    waiters = sdk(server, BatchWaiters)
    started = time.monotonic()
    with pytest.raises(WaiterError, match="terminal failure state"):
        waiters.get_waiter("JobExists").wait(jobs=["00000000-0000-4000-8000-000000000000"])
    assert time.monotonic() - started < 2  # failed at the first answer, no polling


def test_waiters_wait_for_job_with_log_fetcher(
    server: ServerProcess, batch: Any, queue: str
) -> None:
    # delays of 0 s, and jitter drawing its lower bound: every waiter delay is its 1 s minimum
    class Lowest:
        def uniform(self, a: float, b: float, /) -> float:
            return a

    config = copy.deepcopy(WAITER_MODEL)
    for model in config["waiters"].values():
        model["delay"] = 0
    waiters = sdk(server, BatchWaiters, waiter_config=config, rng=Lowest(), sleep=ShortSleeps())
    job_id = submit_job(
        batch, queue, define_job(batch, ["sh", "-c", "echo one; sleep 0.5; echo two"])
    )
    lines: list[LogLine] = []
    waiters.wait_for_job(
        job_id,
        delay=0,
        get_batch_log_fetcher=lambda j: JobLogFetcher(waiters, j, lines.append, poll_interval=0.1),
    )
    assert [line.message for line in lines] == ["one", "two"]

    failing = submit_job(batch, queue, define_job(batch, ["false"]))
    with pytest.raises(BatchClientError, match="terminal failure state"):
        waiters.wait_for_job(failing, delay=0)


# -- log tailer --------------------------------------------------------------------------


def test_tailer_follows_every_attempt_in_order(
    server: ServerProcess, batch: Any, queue: str
) -> None:
    client = sdk(server)
    script = (
        'for i in 1 2 3; do echo "attempt $AWS_BATCH_JOB_ATTEMPT line $i"; sleep 0.1; done; '
        'test "$AWS_BATCH_JOB_ATTEMPT" -ge 3'
    )
    job_id = submit_job(
        batch, queue, define_job(batch, ["sh", "-c", script]), retryStrategy={"attempts": 3}
    )
    tailer = JobLogTailer(client, job_id, poll_interval=0.1)
    lines = list(tailer.events(follow=True))  # starts before the job runs
    assert [line.message for line in lines] == [
        f"attempt {a} line {i}" for a in (1, 2, 3) for i in (1, 2, 3)
    ]
    assert [line.attempt for line in lines] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    job = describe_job(batch, job_id)
    assert job["status"] == "SUCCEEDED"
    streams = [a["container"]["logStreamName"] for a in job["attempts"]]
    assert [line.log_stream for line in lines[::3]] == streams
    assert all(line.log_group == "/aws/batch/job" for line in lines)
    assert all(line.timestamp > 0 for line in lines)


def test_tailer_without_follow_reads_what_is_there(
    server: ServerProcess, batch: Any, queue: str
) -> None:
    client = sdk(server)
    script = "echo first; sleep 300"
    job_id = submit_job(batch, queue, define_job(batch, ["sh", "-c", script]))
    wait_status(batch, job_id, ("RUNNING",))
    tailer = JobLogTailer(client, job_id, poll_interval=0.1)
    deadline = time.monotonic() + 10
    messages: list[str] = []
    while not messages and time.monotonic() < deadline:
        messages = [line.message for line in tailer.events(follow=False)]
    assert messages == ["first"]
    # a second pass from the same tailer only yields what is new: nothing
    assert list(tailer.events(follow=False)) == []
    batch.terminate_job(jobId=job_id, reason="done")
    wait_status(batch, job_id)


def test_tailer_of_a_job_that_never_ran_ends_empty(
    server: ServerProcess, batch: Any, queue: str
) -> None:
    client = sdk(server)
    job_id = submit_job(
        batch, queue, define_job(batch, ["true"], vcpus="8")
    )  # more than the CE has
    batch.cancel_job(jobId=job_id, reason="never fits")
    wait_status(batch, job_id)
    assert list(JobLogTailer(client, job_id, poll_interval=0.1).events(follow=True)) == []
