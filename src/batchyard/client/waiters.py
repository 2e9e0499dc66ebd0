"""BatchWaiters: the JobExists, JobRunning and JobComplete botocore waiters for AWS Batch.

Mirrors Airflow's BatchWaitersHook and its batch_waiters.json model (botocore ships no Batch
waiters). Uses only DescribeJobs; imports no other batchyard module.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from copy import deepcopy
from typing import Any

import botocore.exceptions
import botocore.waiter

from batchyard.client.batch_client import BatchClient, BatchClientError, LogFetcher


def _status_acceptors(statuses: tuple[str, ...], state: str) -> list[dict[str, Any]]:
    return [
        {"argument": "jobs[].status", "expected": status, "matcher": "pathAll", "state": state}
        for status in statuses
    ]


WAITER_MODEL: dict[str, Any] = {
    "version": 2,
    "waiters": {
        # The trailing error acceptor with expected "" also matches an answer without any
        # error, i.e. a job that is missing: JobExists fails at once rather than waiting.
        "JobExists": {
            "delay": 2,
            "operation": "DescribeJobs",
            "maxAttempts": 100,
            "acceptors": [
                *_status_acceptors(
                    (
                        "SUBMITTED",
                        "PENDING",
                        "RUNNABLE",
                        "STARTING",
                        "RUNNING",
                        "FAILED",
                        "SUCCEEDED",
                    ),
                    "success",
                ),
                {
                    "argument": "jobs[].status",
                    "expected": "",
                    "matcher": "error",
                    "state": "failure",
                },
            ],
        },
        "JobRunning": {
            "delay": 5,
            "operation": "DescribeJobs",
            "maxAttempts": 100,
            "acceptors": _status_acceptors(("RUNNING", "FAILED", "SUCCEEDED"), "success"),
        },
        "JobComplete": {
            "delay": 300,
            "operation": "DescribeJobs",
            "maxAttempts": 288,
            "description": "Wait until job status is SUCCEEDED or FAILED",
            "acceptors": [
                {
                    "argument": "jobs[].status",
                    "expected": "SUCCEEDED",
                    "matcher": "pathAll",
                    "state": "success",
                },
                {
                    "argument": "jobs[].status",
                    "expected": "FAILED",
                    "matcher": "pathAny",
                    "state": "failure",
                },
            ],
        },
    },
}
"""The default waiter configuration (botocore waiter model, version 2)."""


class BatchWaiters(BatchClient):
    """A BatchClient that waits with botocore waiters built from a waiter configuration.

    waiter_config defaults to WAITER_MODEL; a modified copy of default_config gives custom
    waiters (e.g. a shorter JobComplete delay). The model is built once, at construction, so
    later changes to a config dict cannot leak into it. Every other argument is BatchClient's.
    """

    def __init__(self, *args: Any, waiter_config: dict[str, Any] | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self._waiter_config = deepcopy(waiter_config) if waiter_config else self.default_config
        self._waiter_model = botocore.waiter.WaiterModel(self._waiter_config)

    @property
    def default_config(self) -> dict[str, Any]:
        """A copy of the default waiter configuration."""
        return deepcopy(WAITER_MODEL)

    @property
    def waiter_config(self) -> dict[str, Any]:
        """A copy of this instance's waiter configuration."""
        return deepcopy(self._waiter_config)

    @property
    def waiter_model(self) -> botocore.waiter.WaiterModel:
        return self._waiter_model

    def get_waiter(self, waiter_name: str) -> botocore.waiter.Waiter:
        """A new waiter from the model; changing its config (delay, max_attempts) does not
        affect later waiters."""
        return botocore.waiter.create_waiter_with_client(
            waiter_name, self._waiter_model, self.client
        )

    def list_waiters(self) -> list[str]:
        return list(self._waiter_model.waiter_names)

    def wait_for_job(
        self,
        job_id: str,
        delay: float | None = None,
        get_batch_log_fetcher: Callable[[str], LogFetcher | None] | None = None,
    ) -> None:
        """Wait for the job with the JobExists, JobRunning then JobComplete waiters.

        Each waiter's delay gets a jitter of +/- 2 s (at least 1 s) and unlimited attempts:
        the caller owns the timeout. A FAILED job makes JobComplete fail.

        :raises BatchClientError: on an AWS error or a waiter failure
        """
        self.delay(delay)
        try:
            self._wait("JobExists", job_id)
            self._wait("JobRunning", job_id)
            batch_log_fetcher = None
            try:
                if get_batch_log_fetcher:
                    batch_log_fetcher = get_batch_log_fetcher(job_id)
                    if batch_log_fetcher:
                        batch_log_fetcher.start()
                self._wait("JobComplete", job_id)
            finally:
                if batch_log_fetcher:
                    batch_log_fetcher.stop()
                    batch_log_fetcher.join()
        except (botocore.exceptions.ClientError, botocore.exceptions.WaiterError) as err:
            raise BatchClientError(str(err)) from err

    def _wait(self, waiter_name: str, job_id: str) -> None:
        waiter = self.get_waiter(waiter_name)
        # botocore-stubs types Waiter.config as a dict; it is a SingleWaiterConfig.
        config: Any = waiter.config
        config.delay = self.add_jitter(config.delay, width=2, minima=1)
        config.max_attempts = sys.maxsize  # the caller owns the timeout
        waiter.wait(jobs=[job_id])
