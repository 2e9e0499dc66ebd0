"""The Batchyard Python SDK: AWS Batch on boto3 with the behaviour of Airflow's BatchClientHook.

Public AWS Batch and CloudWatch Logs calls only, so it works against AWS unchanged. Imports no
other batchyard module (an import-linter contract keeps it that way).
"""

from batchyard.client.batch_client import (
    DEFAULT_LOG_GROUP,
    BatchClient,
    BatchClientError,
    JobDescription,
    LogFetcher,
    job_log_streams,
)
from batchyard.client.tailer import JobLogFetcher, JobLogTailer, LogLine
from batchyard.client.waiters import WAITER_MODEL, BatchWaiters

__all__ = [
    "DEFAULT_LOG_GROUP",
    "WAITER_MODEL",
    "BatchClient",
    "BatchClientError",
    "BatchWaiters",
    "JobDescription",
    "JobLogFetcher",
    "JobLogTailer",
    "LogFetcher",
    "LogLine",
    "job_log_streams",
]
