"""Group commit for SubmitJob: the jobs of the requests that reach the store in the same turn
of the event loop are inserted in one transaction, and each request is answered after it.

Under load a transaction per request costs more than the insert itself, and with several API
processes every transaction is a hand-off of the SQLite write lock. Owns only the batching;
what is stored is the service's decision, and a request is acknowledged only once committed.
"""

from __future__ import annotations

import asyncio
import logging

from batchyard import disk_full
from batchyard.domain.model import Job
from batchyard.store.base import Store

log = logging.getLogger(__name__)


class GroupCommit:
    def __init__(self, store: Store) -> None:
        self._store = store
        self._pending: list[tuple[list[Job], asyncio.Future[Job]]] = []

    async def insert(self, jobs: list[Job]) -> Job:
        """Store `jobs` (one submission: a job, or an array parent and its children) with
        the others of this loop turn; returns the first as stored."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Job] = loop.create_future()
        if not self._pending:
            # Runs after the request tasks already scheduled in this turn have had their go.
            loop.call_soon(self._flush)
        self._pending.append((jobs, future))
        return await future

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if len(batch) > 1:
            try:
                stored = self._store.insert_jobs([job for jobs, _ in batch for job in jobs])
            except Exception as error:
                # One submission's failure must not fail the others: store each alone.
                if not disk_full.is_disk_full(error):  # then each fails alike, and says why
                    log.warning(
                        "A grouped insert of %d submissions failed; retrying each", len(batch)
                    )
            else:
                first = 0
                for jobs, future in batch:
                    if not future.done():  # a cancelled request's jobs are stored all the same
                        future.set_result(stored[first])
                    first += len(jobs)
                return
        for jobs, future in batch:
            try:
                job = self._store.insert_jobs(jobs)[0]
            except Exception as error:
                if not future.done():
                    future.set_exception(error)
            else:
                if not future.done():
                    future.set_result(job)
