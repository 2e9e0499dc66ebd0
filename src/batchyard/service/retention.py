"""Job retention: job records that finished long enough ago go, with their attempts' log
streams. Not an API operation: the server's sweep calls it once an hour, off the event loop.
"""

from __future__ import annotations

from batchyard.domain import lifecycle
from batchyard.domain.model import Job
from batchyard.service.context import ServiceContext

RETENTION_SWEEP_SECONDS = 3600.0
DAY_MS = 86_400_000


def delete_expired_jobs(ctx: ServiceContext, retention_days: float) -> list[Job]:
    """Delete the job records that finished more than retention_days ago, and the log stream
    of every attempt of theirs. retention_days <= 0 keeps everything."""
    if retention_days <= 0:
        return []
    cutoff = ctx.clock.now_ms() - round(retention_days * DAY_MS)
    removed = ctx.store.delete_jobs_finished_before(cutoff)
    if ctx.logs is not None:
        for job in removed:
            for attempt in job.attempts:
                stream = attempt.log_stream_name or lifecycle.log_stream_name(
                    job.job_definition_name, attempt.task_id
                )
                ctx.logs.delete_stream(ctx.log_group, stream)
    return removed
