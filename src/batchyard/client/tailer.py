"""Follow a job's output: every attempt's CloudWatch log stream, in attempt order.

Reads with the public GetLogEvents call only (startFromHead, nextForwardToken), so it works
against AWS unchanged; imports no other batchyard module.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import botocore.exceptions

from batchyard.client.batch_client import BatchClient, JobDescription, job_log_streams

log = logging.getLogger("batchyard.client")


@dataclass(frozen=True, slots=True)
class LogLine:
    """One log event of one attempt of a job."""

    attempt: int  # 0-based position of the attempt in the job's attempts
    log_group: str
    log_stream: str
    timestamp: int  # epoch ms
    message: str


@dataclass(slots=True)
class _Cursor:
    attempt: int
    group: str
    stream: str
    token: str | None = None
    finished: bool = False


class JobLogTailer:
    """Yields a job's log events, attempt after attempt, each exactly once.

    With follow=True it keeps polling every poll_interval seconds until the job is SUCCEEDED or
    FAILED and every stream is read to its end (or stop() is called). A job's status is read
    before its streams, so once a terminal status is seen the streams read afterwards hold
    everything the job wrote.
    """

    def __init__(self, batch: BatchClient, job_id: str, *, poll_interval: float = 1.0) -> None:
        self.batch = batch
        self.job_id = job_id
        self.poll_interval = poll_interval
        self._stopped = threading.Event()
        self._cursors: dict[tuple[str, str], _Cursor] = {}

    def stop(self) -> None:
        """Finish following: one last pass over the streams, then events() returns."""
        self._stopped.set()

    def events(self, *, follow: bool = True) -> Iterator[LogLine]:
        terminal = (self.batch.SUCCESS_STATE, self.batch.FAILURE_STATE)
        while True:
            last_pass = self._stopped.is_set() or not follow
            job = self.batch.get_job_description(self.job_id)
            done = job.get("status") in terminal
            yield from self._read_streams(job)
            if done or last_pass:
                return
            self._stopped.wait(self.poll_interval)

    def _read_streams(self, job: JobDescription) -> Iterator[LogLine]:
        streams = job_log_streams(job, self.batch.region_name) or []
        latest = max((attempt for attempt, _ in streams), default=-1)
        for attempt, info in streams:
            key = (info["awslogs_group"], info["awslogs_stream_name"])
            cursor = self._cursors.get(key)
            if cursor is None:
                cursor = _Cursor(attempt, *key)
                self._cursors[key] = cursor
            if cursor.finished:
                continue
            yield from self._drain(cursor)
            # An older attempt has ended before a newer one started, and a runtime writes all
            # of an attempt's output before reporting its end: what was read is all there is.
            if attempt < latest:
                cursor.finished = True

    def _drain(self, cursor: _Cursor) -> Iterator[LogLine]:
        """Everything the stream has beyond the cursor; GetLogEvents answers the token it was
        given once there is nothing new."""
        while True:
            request: dict[str, object] = {
                "logGroupName": cursor.group,
                "logStreamName": cursor.stream,
                "startFromHead": True,
            }
            if cursor.token is not None:
                request["nextToken"] = cursor.token
            try:
                response = self.batch.logs_client.get_log_events(**request)
            except botocore.exceptions.ClientError as error:
                # A stream is created with the attempt's first output on some backends.
                if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                    return
                raise
            for event in response.get("events", []):
                yield LogLine(
                    attempt=cursor.attempt,
                    log_group=cursor.group,
                    log_stream=cursor.stream,
                    timestamp=int(event.get("timestamp", 0)),
                    message=str(event.get("message", "")),
                )
            token = response.get("nextForwardToken")
            if token is None or token == cursor.token:
                return
            cursor.token = token


class JobLogFetcher(threading.Thread):
    """A thread that hands a job's log lines to sink while the job runs; the log fetcher
    BatchClient.wait_for_job starts and stops. stop() then join() returns once every line
    the job wrote has been handed over."""

    def __init__(
        self,
        batch: BatchClient,
        job_id: str,
        sink: Callable[[LogLine], None],
        *,
        poll_interval: float = 1.0,
    ) -> None:
        super().__init__(name=f"batchyard-logs-{job_id}", daemon=True)
        self.tailer = JobLogTailer(batch, job_id, poll_interval=poll_interval)
        self.sink = sink
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            for line in self.tailer.events(follow=True):
                self.sink(line)
        except Exception as error:  # a log failure must not fail the job being waited for
            self.error = error
            log.warning(
                "Following the logs of AWS Batch job (%s) failed: %s", self.tailer.job_id, error
            )

    def stop(self) -> None:
        self.tailer.stop()
