"""The CloudWatch Logs subset against a real server: boto3's `logs` client and the AWS CLI read
the output of real jobs from `attempts[].container.logStreamName`."""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import ClientError

from batchyard.api.operations import LOGS_UNSUPPORTED, served
from batchyard.domain.model import JobStatus as S
from batchyard.logs.file_store import FileLogStore
from batchyard.service.retention import DAY_MS
from batchyard.store.sql import SqlStore
from tests.builders import a_finished_job, a_logged_attempt
from tests.fixtures import ServerProcess, aws, unique, wait_for

GROUP = "/aws/batch/job"
LINES = [f"line-{i}" for i in range(1, 26)]
STDERR_LINE = "oops on stderr"
WORDS = ["alpha one", "beta two", "alpha beta three", 'said "hello there" twice']
TOKEN = re.compile(r"^[fb]/\d{56}$")


# -- jobs whose output the tests read ----------------------------------------------------


@dataclass(frozen=True)
class Streams:
    prefix: str  # the common prefix of both definitions' names, so of both streams
    lines: str  # LINES on stdout, then STDERR_LINE on stderr
    words: str  # WORDS


def _run_job(batch: Any, definition_name: str, script: str) -> dict[str, Any]:
    """Run `sh -c script` on the default queue to success; the job's description."""
    batch.register_job_definition(
        jobDefinitionName=definition_name,
        type="container",
        containerProperties={"image": "busybox", "command": ["sh", "-c", script]},
    )
    job_id = batch.submit_job(
        jobName=unique("logs"), jobQueue="default", jobDefinition=definition_name
    )["jobId"]
    job = _wait_status(batch, job_id, ("SUCCEEDED", "FAILED"))
    assert job["status"] == "SUCCEEDED", job
    return job


def _stream(job: dict[str, Any]) -> str:
    return str(job["attempts"][-1]["container"]["logStreamName"])


def _wait_status(batch: Any, job_id: str, statuses: tuple[str, ...]) -> dict[str, Any]:
    def reached() -> dict[str, Any] | None:
        job = batch.describe_jobs(jobs=[job_id])["jobs"][0]
        return dict(job) if job["status"] in statuses else None

    return wait_for(reached, timeout=30, what=f"job {job_id} in {statuses}")


@pytest.fixture(scope="module")
def streams(server: ServerProcess) -> Streams:
    batch = server.client("batch")
    prefix = unique("logs")
    lines = _run_job(
        batch,
        f"{prefix}-lines",
        f'for i in $(seq 1 25); do echo line-$i; done; echo "{STDERR_LINE}" >&2',
    )
    words = _run_job(batch, f"{prefix}-words", "; ".join(f"echo {json.dumps(w)}" for w in WORDS))
    return Streams(prefix, _stream(lines), _stream(words))


@pytest.fixture
def logs(server: ServerProcess) -> Any:
    return server.client("logs")


def _messages(events: list[dict[str, Any]]) -> list[str]:
    return [event["message"] for event in events]


# -- GetLogEvents ------------------------------------------------------------------------


def test_latest_events_by_default_and_earliest_from_head(logs: Any, streams: Streams) -> None:
    everything = logs.get_log_events(logGroupName=GROUP, logStreamName=streams.lines)
    assert _messages(everything["events"]) == [*LINES, STDERR_LINE]  # stderr lands too
    event = everything["events"][0]
    assert set(event) == {"timestamp", "message", "ingestionTime"}
    assert event["ingestionTime"] >= event["timestamp"] > 1_600_000_000_000

    tail = logs.get_log_events(logGroupName=GROUP, logStreamName=streams.lines, limit=5)
    assert _messages(tail["events"]) == [*LINES[-4:], STDERR_LINE]
    head = logs.get_log_events(
        logGroupName=GROUP, logStreamName=streams.lines, limit=5, startFromHead=True
    )
    assert _messages(head["events"]) == LINES[:5]
    for page in (everything, tail, head):
        assert TOKEN.match(page["nextForwardToken"])
        assert TOKEN.match(page["nextBackwardToken"])
    assert head["nextBackwardToken"] == "b/" + "0" * 56


def test_forward_paging_ends_when_the_same_token_comes_back(logs: Any, streams: Streams) -> None:
    read: list[str] = []
    token = None
    pages = 0
    while True:
        request = {"logGroupName": GROUP, "logStreamName": streams.lines, "limit": 7}
        page = logs.get_log_events(
            **request, startFromHead=True, **({"nextToken": token} if token else {})
        )
        pages += 1
        assert len(page["events"]) <= 7
        read += _messages(page["events"])
        if page["nextForwardToken"] == token:
            assert page["events"] == []
            break
        token = page["nextForwardToken"]
        assert pages < 10, "paging did not end"
    assert read == [*LINES, STDERR_LINE]
    assert pages == 5  # 7 + 7 + 7 + 5, then the empty page that hands the token back
    again = logs.get_log_events(
        logGroupName=GROUP, logStreamName=streams.lines, nextToken=token, startFromHead=True
    )
    assert again["events"] == []
    assert again["nextForwardToken"] == token


def test_backward_paging_from_the_tail(logs: Any, streams: Streams) -> None:
    page = logs.get_log_events(logGroupName=GROUP, logStreamName=streams.lines, limit=10)
    pages = [_messages(page["events"])]
    first_forward = page["nextForwardToken"]
    token = page["nextBackwardToken"]
    while True:
        page = logs.get_log_events(
            logGroupName=GROUP, logStreamName=streams.lines, limit=10, nextToken=token
        )
        if page["nextBackwardToken"] == token:
            assert page["events"] == []
            break
        pages.append(_messages(page["events"]))
        token = page["nextBackwardToken"]
        assert len(pages) < 10, "paging did not end"
    assert [len(p) for p in pages] == [10, 10, 6]
    assert [m for p in reversed(pages) for m in p] == [*LINES, STDERR_LINE]
    # A backward page's forward token reads what follows that page.
    oldest_page = logs.get_log_events(
        logGroupName=GROUP, logStreamName=streams.lines, limit=3, nextToken=token
    )
    assert oldest_page["events"] == []
    middle = logs.get_log_events(
        logGroupName=GROUP,
        logStreamName=streams.lines,
        limit=10,
        nextToken=f"b/{16:056d}",
    )
    assert _messages(middle["events"]) == LINES[6:16]
    after = logs.get_log_events(
        logGroupName=GROUP,
        logStreamName=streams.lines,
        nextToken=middle["nextForwardToken"],
        startFromHead=True,
    )
    assert _messages(after["events"]) == [*LINES[16:], STDERR_LINE]
    # The tail page's forward token is at the end: nothing newer.
    end = logs.get_log_events(
        logGroupName=GROUP, logStreamName=streams.lines, nextToken=first_forward
    )
    assert (end["events"], end["nextForwardToken"]) == ([], first_forward)


def test_log_group_identifier_takes_a_name_or_an_arn(logs: Any, streams: Streams) -> None:
    arn = "arn:aws:logs:us-east-1:000000000000:log-group:/aws/batch/job:*"
    for identifier in (GROUP, arn, arn[:-2]):
        page = logs.get_log_events(
            logGroupIdentifier=identifier, logStreamName=streams.words, startFromHead=True
        )
        assert _messages(page["events"]) == WORDS


def test_output_of_a_running_job_then_its_time_window(
    logs: Any, batch: Any, tmp_path: Path
) -> None:
    gate = tmp_path / "gate"
    definition = unique("running")
    batch.register_job_definition(
        jobDefinitionName=definition,
        type="container",
        containerProperties={
            "image": "busybox",
            "command": [
                "sh", "-c",
                f"echo tick-1; echo tick-2; while [ ! -e {gate} ]; do sleep 0.02; done; "
                "echo tick-3",
            ],
        },
    )  # fmt: skip
    job_id = batch.submit_job(jobName="running", jobQueue="default", jobDefinition=definition)[
        "jobId"
    ]
    job = _wait_status(batch, job_id, ("RUNNING", "SUCCEEDED", "FAILED"))
    assert job["status"] == "RUNNING"
    stream = job["container"]["logStreamName"]  # the running attempt's stream

    def two_ticks() -> dict[str, Any] | None:
        page = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, startFromHead=True)
        return page if len(page["events"]) == 2 else None

    page = wait_for(two_ticks, what="the first two lines of the running job")
    assert _messages(page["events"]) == ["tick-1", "tick-2"]
    token = page["nextForwardToken"]
    # Nothing new while the job waits: the same token comes back, again and again.
    for _ in range(2):
        idle = logs.get_log_events(
            logGroupName=GROUP, logStreamName=stream, nextToken=token, startFromHead=True
        )
        assert (idle["events"], idle["nextForwardToken"]) == ([], token)
    assert _wait_status(batch, job_id, ("RUNNING", "SUCCEEDED", "FAILED"))["status"] == "RUNNING"

    # tick-3 is read by the server strictly after tick-2's millisecond.
    tick_2 = page["events"][1]["timestamp"]
    wait_for(lambda: time.time_ns() // 1_000_000 > tick_2, what="the next millisecond")
    gate.touch()
    assert _wait_status(batch, job_id, ("SUCCEEDED", "FAILED"))["status"] == "SUCCEEDED"
    newer = logs.get_log_events(
        logGroupName=GROUP, logStreamName=stream, nextToken=token, startFromHead=True
    )
    assert _messages(newer["events"]) == ["tick-3"]
    tick_3 = newer["events"][0]["timestamp"]
    assert tick_3 > tick_2

    def window(**times: int) -> list[str]:
        found = logs.get_log_events(logGroupName=GROUP, logStreamName=stream, **times)
        return _messages(found["events"])

    assert window(startTime=tick_3) == ["tick-3"]  # start inclusive
    assert window(endTime=tick_3) == ["tick-1", "tick-2"]  # end exclusive
    assert window(startTime=tick_2, endTime=tick_3) == _messages(
        [e for e in page["events"] if e["timestamp"] == tick_2]
    )
    assert window(startTime=tick_3 + 1) == []


# -- FilterLogEvents ---------------------------------------------------------------------


def _filter(logs: Any, **request: Any) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while True:
        page = logs.filter_log_events(logGroupName=GROUP, **request)
        assert "searchedLogStreams" not in page or page["searchedLogStreams"] == []
        events += page["events"]
        if "nextToken" not in page:
            return events
        request["nextToken"] = page["nextToken"]


def test_filter_terms_and_phrases(logs: Any, streams: Streams) -> None:
    def matching(pattern: str) -> list[str]:
        return _messages(_filter(logs, logStreamNamePrefix=streams.prefix, filterPattern=pattern))

    assert matching("line-1") == ["line-1", *(f"line-1{i}" for i in range(10))]
    assert matching("LINE-1") == []  # case-sensitive
    assert matching("alpha beta") == ["alpha beta three"]  # every term
    assert matching("beta alpha") == ["alpha beta three"]
    assert matching('"beta three"') == ["alpha beta three"]  # an exact phrase
    assert matching('"three beta"') == []
    assert matching('"hello there"') == ['said "hello there" twice']
    assert matching("stderr") == [STDERR_LINE]
    assert sorted(matching("")) == sorted([*LINES, STDERR_LINE, *WORDS])


def test_filter_pages_across_two_streams(logs: Any, streams: Streams) -> None:
    events = _filter(logs, logStreamNamePrefix=streams.prefix, limit=4)
    assert len(events) == len(LINES) + 1 + len(WORDS)
    assert len({e["eventId"] for e in events}) == len(events)
    assert {e["logStreamName"] for e in events} == {streams.lines, streams.words}
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    by_stream = {
        stream: [e["message"] for e in events if e["logStreamName"] == stream]
        for stream in (streams.lines, streams.words)
    }
    assert by_stream == {streams.lines: [*LINES, STDERR_LINE], streams.words: WORDS}
    first = logs.filter_log_events(logGroupName=GROUP, logStreamNamePrefix=streams.prefix, limit=4)
    assert len(first["events"]) == 4
    assert "nextToken" in first
    event = first["events"][0]
    assert set(event) == {"logStreamName", "timestamp", "message", "ingestionTime", "eventId"}

    newest_first = _filter(logs, logStreamNamePrefix=streams.prefix, limit=7, startFromHead=False)
    assert [e["eventId"] for e in newest_first] == [e["eventId"] for e in reversed(events)]


def test_filter_by_stream_names(logs: Any, streams: Streams) -> None:
    only_words = _filter(logs, logStreamNames=[streams.words], filterPattern="alpha")
    assert _messages(only_words) == ["alpha one", "alpha beta three"]
    assert {e["logStreamName"] for e in only_words} == {streams.words}
    with pytest.raises(ClientError) as caught:
        logs.filter_log_events(
            logGroupName=GROUP, logStreamNames=[streams.words], logStreamNamePrefix=streams.prefix
        )
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"


def test_filter_time_window(logs: Any, streams: Streams) -> None:
    words = logs.get_log_events(logGroupName=GROUP, logStreamName=streams.words)["events"]
    start, end = words[0]["timestamp"], words[-1]["timestamp"]
    within = _filter(logs, logStreamNamePrefix=streams.prefix, startTime=start, endTime=end)
    assert set(WORDS) <= set(_messages(within))  # endTime is inclusive here, as AWS documents
    assert _filter(logs, logStreamNamePrefix=streams.prefix, startTime=end + 1) == []


# -- DescribeLogStreams / DescribeLogGroups -----------------------------------------------


def test_describe_log_streams_by_prefix_order_and_pages(logs: Any, streams: Streams) -> None:
    found = logs.describe_log_streams(logGroupName=GROUP, logStreamNamePrefix=streams.prefix)
    described = found["logStreams"]
    assert [s["logStreamName"] for s in described] == [streams.lines, streams.words]
    assert "nextToken" not in found
    lines = described[0]
    assert lines["arn"] == (
        f"arn:aws:logs:us-east-1:000000000000:log-group:{GROUP}:log-stream:{streams.lines}"
    )
    assert lines["creationTime"] <= lines["firstEventTimestamp"] <= lines["lastEventTimestamp"]
    assert lines["lastIngestionTime"] >= lines["lastEventTimestamp"]

    descending = logs.describe_log_streams(
        logGroupName=GROUP, logStreamNamePrefix=streams.prefix, descending=True
    )["logStreams"]
    assert [s["logStreamName"] for s in descending] == [streams.words, streams.lines]

    first = logs.describe_log_streams(
        logGroupName=GROUP, logStreamNamePrefix=streams.prefix, limit=1
    )
    second = logs.describe_log_streams(
        logGroupName=GROUP,
        logStreamNamePrefix=streams.prefix,
        limit=1,
        nextToken=first["nextToken"],
    )
    assert [s["logStreamName"] for s in first["logStreams"] + second["logStreams"]] == [
        streams.lines,
        streams.words,
    ]
    assert "nextToken" not in second


def test_describe_log_streams_by_last_event_time(logs: Any, streams: Streams) -> None:
    recent: list[dict[str, Any]] = []
    request: dict[str, Any] = {"orderBy": "LastEventTime", "descending": True, "limit": 2}
    while True:
        page = logs.describe_log_streams(logGroupName=GROUP, **request)
        assert len(page["logStreams"]) <= 2
        recent += page["logStreams"]
        if "nextToken" not in page:
            break
        request["nextToken"] = page["nextToken"]
    times = [s.get("lastEventTimestamp", s["creationTime"]) for s in recent]
    assert times == sorted(times, reverse=True)
    names = [s["logStreamName"] for s in recent]
    assert len(names) == len(set(names))
    assert {streams.lines, streams.words} <= set(names)
    assert names.index(streams.words) < names.index(streams.lines)  # words ran later
    with pytest.raises(ClientError) as caught:
        logs.describe_log_streams(
            logGroupName=GROUP, orderBy="LastEventTime", logStreamNamePrefix=streams.prefix
        )
    assert caught.value.response["Error"]["Code"] == "InvalidParameterException"
    assert "LastEventTime" in caught.value.response["Error"]["Message"]


def test_describe_log_groups(logs: Any, streams: Streams) -> None:
    groups = logs.describe_log_groups(logGroupNamePrefix="/aws/batch")["logGroups"]
    assert [g["logGroupName"] for g in groups] == [GROUP]
    group = groups[0]
    assert group["arn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{GROUP}:*"
    assert group["logGroupArn"] == f"arn:aws:logs:us-east-1:000000000000:log-group:{GROUP}"
    assert group["metricFilterCount"] == 0
    assert group["storedBytes"] > 0
    assert group["creationTime"] > 1_600_000_000_000
    assert GROUP in [g["logGroupName"] for g in logs.describe_log_groups()["logGroups"]]
    assert logs.describe_log_groups(logGroupNamePrefix="/nothing")["logGroups"] == []


# -- errors ------------------------------------------------------------------------------


def test_missing_group_or_stream(logs: Any, streams: Streams) -> None:
    calls = [
        (logs.get_log_events, {"logGroupName": "/no/such", "logStreamName": streams.lines},
         "The specified log group does not exist."),
        (logs.get_log_events, {"logGroupName": GROUP, "logStreamName": "no/such/stream"},
         "The specified log stream does not exist."),
        (logs.describe_log_streams, {"logGroupName": "/no/such"},
         "The specified log group does not exist."),
        (logs.filter_log_events, {"logGroupName": "/no/such"},
         "The specified log group does not exist."),
    ]  # fmt: skip
    for call, request, message in calls:
        with pytest.raises(logs.exceptions.ResourceNotFoundException) as caught:
            call(**request)
        assert caught.value.response["Error"]["Message"] == message
        assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_invalid_tokens_and_parameters(logs: Any, streams: Streams) -> None:
    for call, request in [
        (logs.get_log_events, {"logStreamName": streams.lines, "nextToken": "x/1"}),
        (logs.filter_log_events, {"nextToken": "not-a-token"}),
        (logs.describe_log_streams, {"nextToken": "bm90LWEtdG9rZW4"}),
    ]:
        with pytest.raises(logs.exceptions.InvalidParameterException):
            call(logGroupName=GROUP, **request)
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.get_log_events(logStreamName=streams.lines)  # no group
    with pytest.raises(logs.exceptions.InvalidParameterException):
        logs.get_log_events(
            logGroupName=GROUP, logGroupIdentifier=GROUP, logStreamName=streams.lines
        )


def test_unsupported_operation_names_itself(logs: Any) -> None:
    with pytest.raises(ClientError) as caught:
        logs.put_retention_policy(logGroupName=GROUP, retentionInDays=1)
    error = caught.value.response["Error"]
    assert error["Code"] == "InvalidOperationException"
    assert error["Message"] == "Operation PutRetentionPolicy is not supported by Batchyard."
    assert caught.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_every_logs_operation_is_implemented_or_listed_unsupported() -> None:
    model = botocore.session.get_session().get_service_model("logs")
    assert set(model.operation_names) == served("logs") | LOGS_UNSUPPORTED
    assert served("logs").isdisjoint(LOGS_UNSUPPORTED)


def _raw(server: ServerProcess, target: str, body: bytes) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        server.url + "/",
        data=body,
        method="POST",
        headers={"Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": target},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        payload = json.loads(error.read())
        payload["errorTypeHeader"] = error.headers["x-amzn-ErrorType"]
        return error.code, payload


def test_every_unsupported_operation_answers_a_clear_error(server: ServerProcess) -> None:
    for operation in sorted(LOGS_UNSUPPORTED):
        status, body = _raw(server, f"Logs_20140328.{operation}", b"{}")
        assert status == 400, operation
        assert body["__type"] == body["errorTypeHeader"] == "InvalidOperationException"
        assert body["message"] == f"Operation {operation} is not supported by Batchyard."


def test_raw_json_protocol_errors(server: ServerProcess) -> None:
    status, body = _raw(server, "Logs_20140328.NoSuchThing", b"{}")
    assert (status, body["__type"]) == (400, "UnknownOperationException")
    assert "Logs_20140328.NoSuchThing" in body["message"]

    status, body = _raw(server, "Logs_20140328.GetLogEvents", b'{"logGroupName": "/aws/batch/job"}')
    assert (status, body["__type"]) == (400, "InvalidParameterException")
    assert "1 validation error detected" in body["message"]
    assert "logStreamName" in body["message"]

    status, body = _raw(server, "Logs_20140328.DescribeLogGroups", b"{not json")
    assert (status, body["__type"]) == (400, "InvalidParameterException")

    status, body = _raw(server, "Logs_20140328.DescribeLogGroups", b"")
    assert status == 200
    assert GROUP in [g["logGroupName"] for g in body["logGroups"]]


# -- retention ---------------------------------------------------------------------------


def test_expired_jobs_and_their_streams_are_deleted_when_the_server_starts(
    tmp_path: Path,
) -> None:
    # A data dir with one job that stopped 8 days ago and one that stopped an hour ago, each
    # with its attempt's stream, written by the store and log store the server itself uses.
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    now = time.time_ns() // 1_000_000
    store = SqlStore(f"sqlite:///{data_dir / 'batchyard.db'}")
    old, recent = unique("old"), unique("recent")
    store.insert_jobs(
        [
            a_finished_job(old, S.SUCCEEDED, now - 8 * DAY_MS, a_logged_attempt(f"{old}-task")),
            a_finished_job(
                recent, S.FAILED, now - DAY_MS // 24, a_logged_attempt(f"{recent}-task")
            ),
        ]
    )
    store.close()
    files = FileLogStore(data_dir / "logs")
    for job_id in (old, recent):
        files.append(GROUP, f"render/default/{job_id}-task", [(now, f"{job_id} says hi")], now)

    server = ServerProcess(data_dir)  # the default retention: 7 days
    server.start()
    try:
        batch, logs = server.client("batch"), server.client("logs")
        wait_for(
            lambda: batch.describe_jobs(jobs=[old])["jobs"] == [],
            what="the expired job record to go",
        )
        assert [j["jobId"] for j in batch.describe_jobs(jobs=[recent])["jobs"]] == [recent]
        with pytest.raises(logs.exceptions.ResourceNotFoundException):
            logs.get_log_events(logGroupName=GROUP, logStreamName=f"render/default/{old}-task")
        kept = logs.get_log_events(
            logGroupName=GROUP, logStreamName=f"render/default/{recent}-task"
        )
        assert _messages(kept["events"]) == [f"{recent} says hi"]
    finally:
        assert server.stop() == 0


# -- the AWS CLI -------------------------------------------------------------------------


def test_aws_cli_get_log_events(server: ServerProcess, streams: Streams) -> None:
    result = aws(
        server, "logs", "get-log-events",
        "--log-group-name", GROUP, "--log-stream-name", streams.words, "--start-from-head",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert _messages(json.loads(result.stdout)["events"]) == WORDS

    missing = aws(
        server, "logs", "get-log-events", "--log-group-name", GROUP, "--log-stream-name", "nope"
    )  # fmt: skip
    assert missing.returncode != 0
    assert "ResourceNotFoundException" in missing.stderr
