"""What a SqlStore keeps decoded between transactions, and why none of it is ever stale.

- jobs by id (`job`, `jobs`, `remember`, `forget`): an entry serves a row only at the same
  version and seq (every write of a job's content bumps its version), so the cache is never
  stale, only missed; unfinished jobs only (see `remember`), at most 32,768.
- resource documents by (table, text) (`decoded`): the text is the key, so a changed resource
  is a new entry; every snapshot and SubmitJob reads some.
- consumable resources by row (`consumable`): the row (counts included) is the key; the
  snapshot reads them all every round.
- (queue, share) pairs known to have a share_usage row: rows are never deleted.
- stand-ins for rows and resources that do not decode (store/quarantine.py).

What each buys and the bench scenario that guards it: docs/performance.md, ledger.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from batchyard.domain.model import ConsumableResource, Job
from batchyard.store import codec, quarantine
from batchyard.store.sql.fastpath import fetch
from batchyard.store.sql.rows import JOB_ID, SEQ, VERSION, job_from_row, stand_in
from batchyard.store.sql.schema import (
    compute_environments,
    consumable_resources,
    job_definitions,
    job_queues,
    scheduling_policies,
)
from batchyard.store.sql.statements import SELECT_JOBS_BY_ID, chunks

DECODERS: dict[str, Callable[[Any], Any]] = {
    compute_environments.name: codec.compute_environment_from_document,
    job_queues.name: codec.job_queue_from_document,
    scheduling_policies.name: codec.scheduling_policy_from_document,
    job_definitions.name: codec.job_definition_from_document,
}
SEEN_JOBS = 32_768  # decoded jobs kept by (job_id, version), about 1 KiB each


class DecodeCaches:
    """Decoded jobs, resource documents and consumable rows of one SqlStore (see above)."""

    def __init__(self) -> None:
        self.seen: dict[str, Job] = {}
        self._seen_lock = threading.Lock()
        self.unreadable = quarantine.Unreadable()
        self.unreadable_resources = quarantine.UnreadableResources()
        self._resource_docs: dict[tuple[str, str], Any] = {}
        self._consumable_rows: dict[tuple[Any, ...], ConsumableResource] = {}
        self.known_shares: set[tuple[str, str]] = set()

    def decoded(self, kind: str, text: str) -> Any:
        """A resource document decoded once per distinct text (resources change rarely);
        None for one that does not decode (left out, and logged once)."""
        docs = self._resource_docs
        value = docs.get((kind, text))
        if value is None:
            value = self.unreadable_resources.decode(
                kind, text, lambda found: DECODERS[kind](codec.loads(found))
            )
            if value is None:
                return None
            if len(docs) >= 1024:
                docs.clear()
            docs[(kind, text)] = value
        return value

    def consumable(self, row: Sequence[Any]) -> ConsumableResource | None:
        """The resource a row holds; None for one that does not decode (left out, logged)."""
        key = tuple(row)
        found = self._consumable_rows.get(key)
        if found is None:
            _, total, in_use, text = key

            def decode(text: str) -> ConsumableResource:
                doc = {**codec.loads(text), "total_quantity": total, "in_use_quantity": in_use}
                return codec.consumable_resource_from_document(doc)

            found = self.unreadable_resources.decode(consumable_resources.name, text, decode)
            if found is None:
                return None
            if len(self._consumable_rows) >= 4096:
                self._consumable_rows.clear()
            self._consumable_rows[key] = found
        return found

    def consumables_of(self, rows: Iterable[Sequence[Any]]) -> list[ConsumableResource]:
        return [found for row in rows if (found := self.consumable(row)) is not None]

    def job(self, row: Sequence[Any]) -> Job:
        seen = self.seen.get(row[JOB_ID])
        if seen is not None and seen.version == row[VERSION] and seen.seq == row[SEQ]:
            return seen
        try:
            job = job_from_row(row)
        except Exception as error:
            # Never a half-decoded job, never an exception that stops every read of a list.
            job = stand_in(row, quarantine.unreadable_reason(error))
            self.unreadable.add(job)
            return job
        self.remember([job])
        return job

    def jobs(
        self,
        connection: Connection,
        keys_statement: sa.ClauseElement,
        params: Mapping[str, Any] | None = None,
        *,
        ids: tuple[str, Sequence[str]] | None = None,
    ) -> list[Job]:
        """The jobs a keys-only statement selects, in its order.

        Whole rows are read (in the same transaction) only for the jobs not already decoded at
        their current version: most jobs a round reads were just written by this store, and a
        row's document is most of the cost of reading it.
        """
        keys = fetch(connection, keys_statement, params, ids=ids)
        seen = self.seen
        found: list[Job | None] = []
        missing: list[str] = []
        for job_id, seq, version in keys:  # JOB_KEYS
            job = seen.get(job_id)
            if job is None or job.version != version or job.seq != seq:
                missing.append(job_id)
                job = None
            found.append(job)
        decoded: dict[str, Job] = {}
        for chunk in chunks(missing):
            for row in fetch(connection, SELECT_JOBS_BY_ID, ids=("ids", chunk)):
                decoded[row[JOB_ID]] = self.job(row)
        return [job or decoded[key[0]] for job, key in zip(found, keys, strict=True)]

    def remember(self, jobs: Iterable[Job]) -> None:
        """Keep decoded or just-written jobs (call after their transaction committed), those
        that have not ended: they are what the dispatcher reads every round and clients poll.
        A finished job is read rarely, and reads of many (DescribeJobs of old ids) would only
        churn the cache: each decoded job kept is a few dozen objects the collector walks
        until they reach its oldest generation, and those passes were DescribeJobs' p99."""
        seen = self.seen
        with self._seen_lock:
            for job in jobs:
                seen.pop(job.job_id, None)  # re-inserted at the end: oldest first out
                if not job.status.is_terminal:
                    seen[job.job_id] = job
            while len(seen) > SEEN_JOBS:
                del seen[next(iter(seen))]

    def forget(self, job_ids: Iterable[str]) -> None:
        with self._seen_lock:
            for job_id in job_ids:
                self.seen.pop(job_id, None)
