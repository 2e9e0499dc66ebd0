"""What Airflow's Amazon provider (BatchClientHook, BatchOperator, BatchSensor, triggers,
AwsBatchExecutor) relies on from the server, each checked with boto3 against a real server.

No Airflow here: tests/airflow runs the real thing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from batchyard.api.rate_limits import RateLimits
from tests.fixtures import (
    ServerProcess,
    define_job,
    describe_job,
    submit_job,
    unique,
    wait_for,
    wait_status,
)

QUEUE = "default"


def error_code(error: ClientError) -> str:
    return str(error.response["Error"]["Code"])


# -- DescribeJobs ------------------------------------------------------------------------


def test_unknown_job_ids_are_omitted(batch: Any) -> None:
    job_id = submit_job(batch, QUEUE, define_job(batch, ["true"]))
    answer = batch.describe_jobs(jobs=["00000000-0000-0000-0000-000000000000", job_id, "nope"])
    assert [job["jobId"] for job in answer["jobs"]] == [job_id]
    assert batch.describe_jobs(jobs=["00000000-0000-0000-0000-000000000000"])["jobs"] == []


def test_job_is_visible_right_after_submit_with_its_id_echoed(batch: Any) -> None:
    definition = define_job(batch, ["sleep", "5"])
    for _ in range(5):
        job_id = submit_job(batch, QUEUE, definition)
        (job,) = batch.describe_jobs(jobs=[job_id])["jobs"]
        assert job["jobId"] == job_id
        assert job["status"] in ("SUBMITTED", "PENDING", "RUNNABLE", "STARTING", "RUNNING")
        batch.terminate_job(jobId=job_id, reason="cleanup")


def test_describe_jobs_takes_up_to_100_ids(batch: Any) -> None:
    definition = define_job(batch, ["true"])
    ids = [submit_job(batch, QUEUE, definition) for _ in range(100)]
    jobs = batch.describe_jobs(jobs=ids)["jobs"]
    assert sorted(job["jobId"] for job in jobs) == sorted(ids)
    with pytest.raises(ClientError) as caught:
        batch.describe_jobs(jobs=[*ids, "one-too-many"])
    assert error_code(caught.value) == "ClientException"


def test_every_failed_job_has_a_status_reason(batch: Any) -> None:
    blocker = submit_job(batch, QUEUE, define_job(batch, ["sleep", "300"]))
    failed = {
        "exit": submit_job(batch, QUEUE, define_job(batch, ["sh", "-c", "exit 2"])),
        "start": submit_job(batch, QUEUE, define_job(batch, ["/no/such/program"])),
        "dependency": submit_job(
            batch,
            QUEUE,
            define_job(batch, ["true"]),
            dependsOn=[{"jobId": submit_job(batch, QUEUE, define_job(batch, ["false"]))}],
        ),
        "cancel": submit_job(
            batch, QUEUE, define_job(batch, ["true"]), dependsOn=[{"jobId": blocker}]
        ),
    }
    batch.cancel_job(jobId=failed["cancel"], reason="Cancelled by Airflow")
    wait_status(batch, blocker, ("RUNNING",))
    batch.terminate_job(jobId=blocker, reason="Terminated by Airflow")
    failed["terminate"] = blocker
    for kind, job_id in failed.items():
        job = wait_status(batch, job_id)
        assert job["status"] == "FAILED", kind
        assert job.get("statusReason"), f"{kind}: FAILED without statusReason"
    assert describe_job(batch, failed["cancel"])["statusReason"] == "Cancelled by Airflow"
    assert describe_job(batch, blocker)["statusReason"] == "Terminated by Airflow"


def test_container_has_log_stream_and_awslogs_configuration(
    batch: Any, server: ServerProcess
) -> None:
    job_id = submit_job(batch, QUEUE, define_job(batch, ["sh", "-c", "echo from-the-job"]))
    job = wait_status(batch, job_id)
    container = job["container"]
    assert container["logStreamName"]
    assert container["logConfiguration"]["logDriver"] == "awslogs"
    options = container["logConfiguration"]["options"]
    assert options["awslogs-group"] == "/aws/batch/job"
    assert options["awslogs-region"] == "us-east-1"
    # ...and the stream it names is readable where Airflow looks for it.
    logs = server.client("logs")
    events = logs.get_log_events(
        logGroupName=options["awslogs-group"],
        logStreamName=container["logStreamName"],
        startFromHead=True,
    )["events"]
    assert [event["message"] for event in events] == ["from-the-job"]


# -- SubmitJob ---------------------------------------------------------------------------


def test_submit_accepts_empty_parameters_tags_and_overrides(batch: Any) -> None:
    job_id = str(
        batch.submit_job(
            jobName=unique("airflow"),
            jobQueue=QUEUE,
            jobDefinition=define_job(batch, ["true"]),
            parameters={},
            tags={},
            containerOverrides={},
        )["jobId"]
    )
    assert wait_status(batch, job_id)["status"] == "SUCCEEDED"


def test_submit_takes_a_command_with_a_1kb_json_argument(batch: Any, tmp_path: Path) -> None:
    # The executor passes the task to run as one JSON argument of this size.
    payload = json.dumps({"token": "x" * 900, "ti": {"dag_id": "d", "task_id": "t", "try": 1}})
    assert len(payload) > 900
    out = tmp_path / "arg.json"
    job_id = submit_job(
        batch,
        QUEUE,
        define_job(batch, ["false"]),
        containerOverrides={"command": ["sh", "-c", f'printf %s "$1" > {out}', "sh", payload]},
    )
    assert wait_status(batch, job_id)["status"] == "SUCCEEDED"
    assert json.loads(out.read_text()) == json.loads(payload)


# -- throttling --------------------------------------------------------------------------


def test_rate_limit_answers_too_many_requests(tmp_path: Path) -> None:
    # One token, refilled every 5 s: the second call is throttled however slow the machine is.
    server = ServerProcess(tmp_path / "data", "--rate-limit", "DescribeJobs=0.2")
    server.start()
    try:
        batch = server.client()
        answers = [_describe_jobs_answer(batch) for _ in range(10)]
        assert answers[0] == ("ok", 200)
        assert ("TooManyRequestsException", 429) in answers
        # Other operations are not limited, and the bucket refills.
        for _ in range(10):
            batch.describe_job_queues()
        wait_for(
            lambda: _describe_jobs_admitted(batch), timeout=15, interval=0.5, what="bucket refilled"
        )
    finally:
        server.stop()


def _describe_jobs_answer(batch: Any) -> tuple[str, int]:
    try:
        batch.describe_jobs(jobs=["x"])
    except ClientError as error:
        return error_code(error), int(error.response["ResponseMetadata"]["HTTPStatusCode"])
    return "ok", 200


def _describe_jobs_admitted(batch: Any) -> bool:
    return _describe_jobs_answer(batch) == ("ok", 200)


def test_malformed_rate_limit_is_refused(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--rate-limit", "NoSuchOperation=1")
    server.start(wait=False)
    assert server.process is not None
    assert server.process.wait(timeout=30) == 2
    assert "NoSuchOperation" in server.output()


# -- GetLogEvents ------------------------------------------------------------------------


def test_get_log_events_token_is_stable_at_the_end(batch: Any, server: ServerProcess) -> None:
    job_id = submit_job(batch, QUEUE, define_job(batch, ["sh", "-c", "echo one; echo two"]))
    stream = wait_status(batch, job_id)["container"]["logStreamName"]
    logs = server.client("logs")
    first = logs.get_log_events(
        logGroupName="/aws/batch/job", logStreamName=stream, startFromHead=True
    )
    assert [e["message"] for e in first["events"]] == ["one", "two"]
    token = first["nextForwardToken"]
    again = logs.get_log_events(
        logGroupName="/aws/batch/job", logStreamName=stream, nextToken=token
    )
    assert again["events"] == []
    assert again["nextForwardToken"] == token


def test_get_log_events_missing_group_or_stream(server: ServerProcess) -> None:
    logs = server.client("logs")
    for group, stream in (("/aws/batch/nope", "x"), ("/aws/batch/job", "no/such/stream")):
        with pytest.raises(ClientError) as caught:
            logs.get_log_events(logGroupName=group, logStreamName=stream)
        assert error_code(caught.value) == "ResourceNotFoundException"


# -- restarts ----------------------------------------------------------------------------


def test_jobs_survive_a_restart(tmp_path: Path) -> None:
    server = ServerProcess(tmp_path / "data", "--stop-timeout", "2")
    server.start()
    batch = server.client()
    done = submit_job(batch, QUEUE, define_job(batch, ["true"]))
    wait_status(batch, done)
    running = submit_job(batch, QUEUE, define_job(batch, ["sh", "-c", "sleep 2; echo finished"]))
    wait_status(batch, running, ("RUNNING",))
    assert server.stop() == 0

    server.start()
    try:
        batch = server.client()
        assert describe_job(batch, done)["status"] == "SUCCEEDED"
        job = wait_status(batch, running)
        assert job["status"] == "SUCCEEDED"
        assert len(job["attempts"]) == 1
    finally:
        server.stop()


def test_rate_limit_bucket_refills_at_its_rate() -> None:
    now = [0.0]
    limits = RateLimits.parse("DescribeJobs=2, GetLogEvents=0.5")
    limits.monotonic = lambda: now[0]
    assert [limits.admit("DescribeJobs") for _ in range(3)] == [True, True, False]
    assert limits.admit("SubmitJob")  # not limited
    now[0] = 0.5
    assert [limits.admit("DescribeJobs") for _ in range(2)] == [True, False]
    # Below one request a second the burst is one request.
    assert [limits.admit("GetLogEvents") for _ in range(2)] == [True, False]
    now[0] = 2.5
    assert limits.admit("GetLogEvents")


@pytest.mark.parametrize(
    "text",
    [
        "DescribeJobs", "DescribeJobs=x", "DescribeJobs=0", "DescribeJobs=nan",
        "DescribeJobs=inf", "DescribeJobs=1e3", "DescribeJobs=1_0", "Nope=1",
    ],
)  # fmt: skip
def test_rate_limit_parse_rejects(text: str) -> None:
    with pytest.raises(ValueError, match=r"rate limit"):
        RateLimits.parse(text)
