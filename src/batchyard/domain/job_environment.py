"""The environment an attempt's container runs with: the job's resolved environment plus the
`AWS_BATCH_*` variables AWS Batch sets (docs/aws-behaviour.md#environment-variables).

Pure: the caller passes what it knows (where the attempt was placed, the array parent's size);
nothing here reads a store or a runtime.
"""

from __future__ import annotations

from batchyard.domain.model import Job


def attempt_environment(
    job: Job, compute_environment: str, array_size: int | None = None
) -> dict[str, str]:
    """The environment of `job`'s current attempt, placed on `compute_environment`.

    The definition's and the overrides' variables (already resolved into `job.container`) come
    first; the `AWS_BATCH_*` ones are set after them so they always win (users may not set
    that prefix anyway: service/job_properties.py refuses it). An array child also gets its
    index and `array_size`, its parent's size; the multi-node and EKS variables are not set (a
    multi-node job runs as its main node; there is no EKS)."""
    environment = {
        item["name"]: item.get("value", "") for item in job.container.get("environment", ())
    }
    environment["AWS_BATCH_JOB_ID"] = job.job_id
    environment["AWS_BATCH_JQ_NAME"] = job.job_queue
    environment["AWS_BATCH_CE_NAME"] = compute_environment
    # 1-based: the attempt being started is the last one the job holds.
    environment["AWS_BATCH_JOB_ATTEMPT"] = str(len(job.attempts))
    if job.array_parent_id is not None and job.array_index is not None:
        environment["AWS_BATCH_JOB_ARRAY_INDEX"] = str(job.array_index)
        environment["AWS_BATCH_JOB_ARRAY_SIZE"] = str(array_size or 0)
    return environment
