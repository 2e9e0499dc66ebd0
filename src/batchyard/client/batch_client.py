"""BatchClient: AWS Batch on boto3 with the behaviour of Airflow's BatchClientHook.

Owns job polling (exponential back-off with jitter), status retries and log-stream discovery.
Uses only public AWS Batch calls, so it runs against AWS unchanged; imports no other batchyard
module.
"""

from __future__ import annotations

import itertools
import logging
import random
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import boto3
import botocore.config
import botocore.exceptions

log = logging.getLogger("batchyard.client")

JobDescription = dict[str, Any]
"""One element of DescribeJobs' `jobs`, exactly as boto3 returns it."""

DEFAULT_LOG_GROUP = "/aws/batch/job"

THROTTLING_ERROR_CODES = frozenset(
    {
        "TooManyRequestsException",
        "ThrottlingException",
        "Throttling",
        "ThrottledException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "RequestThrottledException",
        "SlowDown",
    }
)


class BatchClientError(Exception):
    """What the SDK raises where Airflow's hook raises AirflowException.

    `job` carries the last job description seen, when there is one.
    """

    def __init__(self, message: str, *, job: JobDescription | None = None) -> None:
        super().__init__(message)
        self.job = job


class Uniform(Protocol):
    """The part of random.Random the client draws jitter from (injectable for tests)."""

    def uniform(self, a: float, b: float, /) -> float: ...


class LogFetcher(Protocol):
    """What wait_for_job starts before polling for completion and stops afterwards
    (a thread, like Airflow's AwsTaskLogFetcher or batchyard.client.JobLogFetcher)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def join(self, timeout: float | None = None) -> None: ...


def is_retryable_status_error(error: botocore.exceptions.ClientError) -> bool:
    """Throttling and server-side (5xx) errors are worth asking again; client errors are not."""
    code = str(error.response.get("Error", {}).get("Code", ""))
    status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code in THROTTLING_ERROR_CODES or status >= 500


def _is_aws_endpoint(url: str | None) -> bool:
    if not url:
        return True
    host = url.split("://", 1)[-1].split("/", 1)[0].split(":", 1)[0]
    return host.endswith((".amazonaws.com", ".amazonaws.com.cn"))


class BatchClient:
    """Interact with AWS Batch: a thick wrapper around boto3.client("batch").

    Mirrors airflow.providers.amazon.aws.hooks.batch_client.BatchClientHook: same constants,
    method names and signatures, and the same polling; BatchClientError stands in for
    AirflowException.

    :param client: a boto3 "batch" client; built from session/region_name/endpoint_url if None
    :param logs_client: a boto3 "logs" client; built on first use if None (on the batch
        client's endpoint when that is not an AWS endpoint, since Batchyard serves both)
    :param max_retries: exponential back-off retries of poll_job_status, 4200 = 48 hours
    :param status_retries: DescribeJobs attempts per get_job_description, 10
    :param sleep: pauses execution (time.sleep); injectable so tests need not wait
    :param rng: source of jitter (a random.Random); injectable for deterministic tests

    Several methods pause for a random delay, random.uniform(DEFAULT_DELAY_MIN,
    DEFAULT_DELAY_MAX), so that many concurrent pollers do not hit API throttling together.
    Explicit delays get a 1 second jitter (see add_jitter).
    """

    MAX_RETRIES = 4200
    STATUS_RETRIES = 10

    # delays are in seconds
    DEFAULT_DELAY_MIN = 1
    DEFAULT_DELAY_MAX = 10

    FAILURE_STATE = "FAILED"
    SUCCESS_STATE = "SUCCEEDED"
    RUNNING_STATE = "RUNNING"
    INTERMEDIATE_STATES = (
        "SUBMITTED",
        "PENDING",
        "RUNNABLE",
        "STARTING",
        RUNNING_STATE,
    )

    COMPUTE_ENVIRONMENT_TERMINAL_STATUS = ("VALID", "DELETED")
    COMPUTE_ENVIRONMENT_INTERMEDIATE_STATUS = ("CREATING", "UPDATING", "DELETING")

    JOB_QUEUE_TERMINAL_STATUS = ("VALID", "DELETED")
    JOB_QUEUE_INTERMEDIATE_STATUS = ("CREATING", "UPDATING", "DELETING")

    def __init__(
        self,
        client: Any | None = None,
        *,
        logs_client: Any | None = None,
        session: boto3.session.Session | None = None,
        region_name: str | None = None,
        endpoint_url: str | None = None,
        config: botocore.config.Config | None = None,
        max_retries: int | None = None,
        status_retries: int | None = None,
        sleep: Callable[[float], None] = time.sleep,
        rng: Uniform | None = None,
    ) -> None:
        self.max_retries = max_retries or self.MAX_RETRIES
        self.status_retries = status_retries or self.STATUS_RETRIES
        self._session = session
        self._region_name = region_name
        self._endpoint_url = endpoint_url
        self._config = config
        self._sleep = sleep
        self._rng: Uniform = rng if rng is not None else random.Random()
        self._client = client if client is not None else self._new_client("batch", endpoint_url)
        self._logs_client = logs_client

    def _new_client(self, service: str, endpoint_url: str | None) -> Any:
        session = self._session or boto3.session.Session()
        return session.client(
            service,  # type: ignore[call-overload]
            region_name=self._region_name,
            endpoint_url=endpoint_url,
            config=self._config,
        )

    @property
    def client(self) -> Any:
        """The boto3 "batch" client."""
        return self._client

    @property
    def logs_client(self) -> Any:
        """The boto3 "logs" (CloudWatch Logs) client that serves the jobs' output."""
        if self._logs_client is None:
            endpoint = self._endpoint_url
            batch_endpoint = str(self._client.meta.endpoint_url)
            if endpoint is None and not _is_aws_endpoint(batch_endpoint):
                endpoint = batch_endpoint
            if self._region_name is None:
                self._region_name = self.region_name
            self._logs_client = self._new_client("logs", endpoint)
        return self._logs_client

    @property
    def region_name(self) -> str:
        return str(self._client.meta.region_name)

    # -- job calls ---------------------------------------------------------------------------

    def submit_job(
        self, job_name: str, job_queue: str, job_definition: str, **kwargs: Any
    ) -> dict[str, Any]:
        """Submit a Batch job; kwargs are SubmitJob's other members as boto3 takes them
        (arrayProperties, dependsOn, parameters, containerOverrides, tags, ...).

        :return: an API response (jobArn, jobName, jobId)
        """
        response: dict[str, Any] = self._client.submit_job(
            jobName=job_name, jobQueue=job_queue, jobDefinition=job_definition, **kwargs
        )
        log.info("AWS Batch job (%s) submitted: %s", response.get("jobId"), job_name)
        return response

    def terminate_job(self, job_id: str, reason: str) -> dict[str, Any]:
        """Terminate a Batch job (cancels it if it has not started).

        :return: an API response
        """
        response: dict[str, Any] = self._client.terminate_job(jobId=job_id, reason=reason)
        log.info(response)
        return response

    def cancel_job(self, job_id: str, reason: str) -> dict[str, Any]:
        """Cancel a Batch job that has not started yet (no effect once it is STARTING).

        :return: an API response
        """
        response: dict[str, Any] = self._client.cancel_job(jobId=job_id, reason=reason)
        log.info(response)
        return response

    def check_job_success(self, job_id: str) -> bool:
        """Check the final status of the Batch job.

        Return True if the job 'SUCCEEDED', else raise a BatchClientError that names the
        status and the job's statusReason.
        """
        job = self.get_job_description(job_id)
        job_status = job.get("status")

        if job_status == self.SUCCESS_STATE:
            log.info("AWS Batch job (%s) succeeded: %s", job_id, job)
            return True

        reason = job.get("statusReason") or "no status reason"
        if job_status == self.FAILURE_STATE:
            raise BatchClientError(f"AWS Batch job ({job_id}) failed: {reason}", job=job)

        if job_status in self.INTERMEDIATE_STATES:
            raise BatchClientError(
                f"AWS Batch job ({job_id}) is not complete: status {job_status}", job=job
            )

        raise BatchClientError(
            f"AWS Batch job ({job_id}) has unknown status: {job_status}", job=job
        )

    def wait_for_job(
        self,
        job_id: str,
        delay: float | None = None,
        get_batch_log_fetcher: Callable[[str], LogFetcher | None] | None = None,
    ) -> None:
        """Wait for the Batch job to complete (SUCCEEDED or FAILED; use check_job_success to
        tell which).

        :param delay: a delay before each polling phase (None: a random 1 to 10 s)
        :param get_batch_log_fetcher: returns a started-later log fetcher for the job (e.g.
            lambda job_id: JobLogFetcher(client, job_id, sink=print)); it runs while the job
            runs and is stopped, then joined, once the job is complete
        """
        self.delay(delay)
        self.poll_for_job_running(job_id, delay)
        batch_log_fetcher = None
        try:
            if get_batch_log_fetcher:
                batch_log_fetcher = get_batch_log_fetcher(job_id)
                if batch_log_fetcher:
                    batch_log_fetcher.start()
            self.poll_for_job_complete(job_id, delay)
        finally:
            if batch_log_fetcher:
                batch_log_fetcher.stop()
                batch_log_fetcher.join()
        log.info("AWS Batch job (%s) has completed", job_id)

    def poll_for_job_running(self, job_id: str, delay: float | None = None) -> None:
        """Poll until the job is RUNNING, SUCCEEDED or FAILED.

        The completed states count because a job can go from STARTING through RUNNING to
        done faster than polling sees it.
        """
        self.delay(delay)
        running_status = [self.RUNNING_STATE, self.SUCCESS_STATE, self.FAILURE_STATE]
        self.poll_job_status(job_id, running_status)

    def poll_for_job_complete(self, job_id: str, delay: float | None = None) -> None:
        """Poll until the job is SUCCEEDED or FAILED."""
        self.delay(delay)
        complete_status = [self.SUCCESS_STATE, self.FAILURE_STATE]
        self.poll_job_status(job_id, complete_status)

    def poll_job_status(self, job_id: str, match_status: Sequence[str]) -> bool:
        """Poll the job's status with exponential back-off until it is in match_status.

        Check 0 is immediate; check n (1..max_retries) follows a pause of
        add_jitter(exponential_delay(n)).

        :raises BatchClientError: after max_retries checks without a match
        """
        for retries in range(1 + self.max_retries):
            if retries:
                pause = self.exponential_delay(retries)
                log.info(
                    "AWS Batch job (%s) status check (%d of %d) in the next %.2f seconds",
                    job_id,
                    retries,
                    self.max_retries,
                    pause,
                )
                self.delay(pause)

            job = self.get_job_description(job_id)
            job_status = job.get("status")
            log.info("AWS Batch job (%s) check status (%s) in %s", job_id, job_status, match_status)
            if job_status in match_status:
                return True
        raise BatchClientError(f"AWS Batch job ({job_id}) status checks exceed max_retries")

    def get_job_description(self, job_id: str) -> JobDescription:
        """Describe one job, asking up to status_retries times.

        A job missing from the answer (DescribeJobs is eventually consistent), throttling and
        5xx errors are retried after add_jitter(exponential_delay(n)); other client errors
        are raised at once.

        :raises BatchClientError: when status_retries attempts all failed
        :raises botocore.exceptions.ClientError: on a non-retryable AWS error
        """
        last_error = ""
        for retries in range(self.status_retries):
            if retries:
                pause = self.exponential_delay(retries)
                log.info(
                    "AWS Batch job (%s) description retry (%d of %d) in the next %.2f seconds",
                    job_id,
                    retries,
                    self.status_retries,
                    pause,
                )
                self.delay(pause)

            try:
                response = self._client.describe_jobs(jobs=[job_id])
                return self.parse_job_description(job_id, response)
            except BatchClientError as err:
                log.warning(err)
                last_error = str(err)
            except botocore.exceptions.ClientError as err:
                if not is_retryable_status_error(err):
                    raise
                log.warning("Retrying a throttled or failed DescribeJobs call: %s", err)
                last_error = str(err)
        raise BatchClientError(
            f"AWS Batch job ({job_id}) description error: exceeded status_retries "
            f"({self.status_retries}); last error: {last_error}"
        )

    @staticmethod
    def parse_job_description(job_id: str, response: dict[str, Any]) -> JobDescription:
        """The description of job_id in a DescribeJobs response.

        :raises BatchClientError: when the job is missing from the response or listed twice
        """
        jobs = response.get("jobs", [])
        matching_jobs = [job for job in jobs if job.get("jobId") == job_id]
        if not matching_jobs:
            raise BatchClientError(
                f"AWS Batch job ({job_id}) description error: job not found "
                f"(DescribeJobs returned {len(jobs)} other job(s))"
            )
        if len(matching_jobs) > 1:
            raise BatchClientError(
                f"AWS Batch job ({job_id}) description error: the job is listed "
                f"{len(matching_jobs)} times"
            )
        return dict(matching_jobs[0])

    # -- logs --------------------------------------------------------------------------------

    def get_job_awslogs_info(self, job_id: str) -> dict[str, str] | None:
        """The CloudWatch location of the job's current log stream (its latest attempt), or
        None when it has none yet or logs do not go to CloudWatch.

        Keys: awslogs_stream_name, awslogs_group, awslogs_region.
        """
        job = self.get_job_description(job_id)
        all_info = self.get_job_all_awslogs_info(job_id, job=job)
        if not all_info:
            return None
        if len(all_info) > 1:
            log.warning(
                "AWS Batch job (%s) has more than one log stream, only returning one.", job_id
            )
        current = job.get("container", {}).get("logStreamName")
        for info in all_info:
            if info["awslogs_stream_name"] == current:
                return info
        return all_info[0]

    def get_job_all_awslogs_info(
        self, job_id: str, *, job: JobDescription | None = None
    ) -> list[dict[str, str]]:
        """The CloudWatch location of every log stream of the job: one per attempt (oldest
        first), times one per node group for multi-node parallel jobs.

        [] when no stream exists yet or a non-awslogs log driver is used.

        :raises BatchClientError: for a job that is neither container nor multi-node
        """
        job_desc = job if job is not None else self.get_job_description(job_id)
        if not job_desc.get("nodeProperties") and not job_desc.get("container"):
            raise BatchClientError(
                f"AWS Batch job ({job_id}) is not a supported job type. "
                "Supported job types: container, array, multinode."
            )
        streams = job_log_streams(job_desc, self.region_name)
        if streams is None:
            log.warning(
                "AWS Batch job (%s) uses non-aws log drivers. AWS CloudWatch logging disabled.",
                job_id,
            )
            return []
        if not streams:
            # Early after submission (or on misconfiguration) no stream exists yet.
            log.warning("AWS Batch job (%s) doesn't have any AWS CloudWatch Stream.", job_id)
        return [info for _, info in streams]

    # -- delays ------------------------------------------------------------------------------

    def add_jitter(self, delay: float, width: float = 1, minima: float = 0) -> float:
        """A random delay in [max(minima, delay - width), delay + width].

        All arguments are taken as absolute values, so the result is never negative.
        """
        delay = abs(delay)
        width = abs(width)
        minima = abs(minima)
        lower = max(minima, delay - width)
        upper = delay + width
        return self._rng.uniform(lower, upper)

    def delay(self, delay: float | None = None) -> None:
        """Pause for add_jitter(delay) seconds, or for a random DEFAULT_DELAY_MIN to
        DEFAULT_DELAY_MAX seconds when delay is None."""
        if delay is None:
            pause = self._rng.uniform(self.DEFAULT_DELAY_MIN, self.DEFAULT_DELAY_MAX)
        else:
            pause = self.add_jitter(delay)
        self._sleep(pause)

    def exponential_delay(self, tries: int) -> float:
        """A back-off delay for the given try, drawn uniformly from [delay / 3, delay] where
        delay = min(600, 1 + (tries * 0.6) ** 2): 1.0, 1.36, 2.44, 4.24, 6.76, 10.0, 13.96,
        18.64, 24.04, 30.16 s for tries 0..9, and 3 to 10 minutes at most."""
        max_interval = 600.0
        delay = min(max_interval, 1 + pow(tries * 0.6, 2))
        return self._rng.uniform(delay / 3, delay)


def job_log_streams(
    job: JobDescription, default_region: str
) -> list[tuple[int, dict[str, str]]] | None:
    """(attempt index, awslogs info) of every stream of a described job, oldest attempt first;
    None when a log driver other than awslogs is configured.

    Attempts list their streams; the running attempt's stream is also the job's
    container.logStreamName, which is included when the attempt is not listed yet.
    """
    node_properties = job.get("nodeProperties") or {}
    container = job.get("container") or {}
    stream_names = [a.get("container", {}).get("logStreamName") for a in job.get("attempts", [])]
    if node_properties:
        # one log configuration per node group
        log_configs = [
            p.get("container", {}).get("logConfiguration", {})
            for p in node_properties.get("nodeRangeProperties", [])
        ]
    else:
        log_configs = [container.get("logConfiguration", {})]
        current = container.get("logStreamName")
        if current is not None and current not in stream_names:
            stream_names.append(current)
    if any(c.get("logDriver", "awslogs") != "awslogs" for c in log_configs):
        return None
    log_options = [c.get("options", {}) for c in log_configs]
    result: list[tuple[int, dict[str, str]]] = []
    named = [(i, s) for i, s in enumerate(stream_names) if s]
    for (attempt, stream), option in itertools.product(named, log_options):
        result.append(
            (
                attempt,
                {
                    "awslogs_stream_name": stream,
                    "awslogs_group": option.get("awslogs-group", DEFAULT_LOG_GROUP),
                    "awslogs_region": option.get("awslogs-region", default_region),
                },
            )
        )
    return result
