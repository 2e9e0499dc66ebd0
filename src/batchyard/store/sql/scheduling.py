"""What the dispatcher reads and writes each round: the snapshot (bounded: heads of each queue
and share, flagged jobs, active jobs), the commit of a plan (version-checked, guarded against
over-allocating consumable resources, with share-usage accruals), and the quarantine of jobs
that cannot be read or planned. Also the share queries the service asks.

Part of SqlStore (see parts.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from batchyard.domain.model import (
    ALL_JOB_STATUSES,
    ComputeEnvironment,
    ConsumableRequirement,
    Job,
    JobQueue,
    JobStatus,
    SchedulingPolicy,
    ShareUsage,
)
from batchyard.scheduling.snapshot import Plan, Snapshot, UsageAccrual
from batchyard.store import apply_rules, codec, quarantine
from batchyard.store.base import SnapshotLimits
from batchyard.store.sql.consumables import (
    account_pairs,
    lock_consumables,
    required_names,
    write_consumables,
)
from batchyard.store.sql.fastpath import execute_many, fetch
from batchyard.store.sql.jobs import consequences, load_for_update, store_pairs
from batchyard.store.sql.parts import StorePart
from batchyard.store.sql.rows import (
    JOB_ID,
    STATUS,
    VERSION,
    job_from_row,
    row_record,
    stand_in,
)
from batchyard.store.sql.schema import COUNT_COLUMN, job_consumable_resources
from batchyard.store.sql.statements import (
    ACTIVE_KEYS,
    BUMP_CHANGES,
    BUMP_JOB,
    CLEAR_FLAG,
    COUNT_CHILDREN,
    COUNT_QUEUE_SHARES,
    FLAGGED_KEYS,
    INSERT_SHARE_ROW,
    LOCK_JOBS_BY_ID,
    LOCK_SHARE_ROW,
    RESOURCE_TABLES,
    RUNNABLE_HEAD_KEYS,
    SELECT_ACTIVE_SHARES,
    SELECT_CONSUMABLES,
    SELECT_DEPENDENTS,
    SELECT_RESOURCES,
    SELECT_SHARE_USAGE,
    SELECT_STATUS_BY_ID,
    SET_PARENT_COUNTS,
    SET_SHARE_ROW,
    SHARE_HEAD_KEYS_LATERAL,
    SHARE_HEAD_KEYS_SQLITE,
    UPDATE_JOB,
    chunks,
)

_DEFAULT_LIMITS = SnapshotLimits()


def share_blocks(heads: Sequence[Job], limit: int) -> dict[str | None, tuple[Job, ...]]:
    """Each share's heads, from heads that come share by share and at most `limit` of each.

    A share's block ends within `limit` heads of its start, so bisection finds its end without
    looking at each head: a round may read thousands.
    """
    blocks: dict[str | None, tuple[Job, ...]] = {}
    start, count = 0, len(heads)
    while start < count:
        share = heads[start].share_identifier
        stop = count if limit <= 0 else min(start + limit, count)  # SQLite: LIMIT -1 is none
        # heads[start:low] are of the share, heads[high:stop] of shares after it.
        low, high = start + 1, stop
        while low < high:
            middle = (low + high) // 2
            if heads[middle].share_identifier == share:
                low = middle + 1
            else:
                high = middle
        blocks[share] = tuple(heads[start:low])
        start = low
    return blocks


class Scheduling(StorePart):
    def seen_share_count(self, job_queue: str) -> int:
        with self._db.reading() as connection:
            return int(fetch(connection, COUNT_QUEUE_SHARES, {"b_queue": job_queue})[0][0])

    def active_share_identifiers(self, job_queue: str) -> set[str]:
        with self._db.reading() as connection:
            rows = connection.execute(SELECT_ACTIVE_SHARES, {"b_queue": job_queue})
            return {row[0] for row in rows}

    def snapshot(self, limits: SnapshotLimits = _DEFAULT_LIMITS) -> Snapshot:
        with self._db.reading(consistent=True) as connection:
            ces: list[ComputeEnvironment] = []
            queues: list[JobQueue] = []
            policies: list[SchedulingPolicy] = []
            found = (ces, queues, policies)
            for kind, _, text in sorted(fetch(connection, SELECT_RESOURCES)):
                resource = self._caches.decoded(RESOURCE_TABLES[kind].name, text)
                if resource is not None:
                    found[kind].append(resource)
            active = tuple(self._active(connection))
            fair = {queue.name for queue in queues if queue.scheduling_policy_arn is not None}
            share_usage: dict[str, dict[str, ShareUsage]] = {name: {} for name in fair}
            if fair:
                for queue_name, share, value, at in fetch(connection, SELECT_SHARE_USAGE):
                    if queue_name in fair:
                        share_usage[queue_name][share] = ShareUsage(queue_name, share, value, at)
            runnable: dict[str, tuple[Job, ...]] = {}
            runnable_by_share: dict[str, dict[str, tuple[Job, ...]]] = {}
            share_heads = SHARE_HEAD_KEYS_SQLITE if self._db.is_sqlite else SHARE_HEAD_KEYS_LATERAL
            for queue in queues:
                if queue.name in fair:
                    limit = limits.heads_of(queue.name)
                    # A share with RUNNABLE jobs has its entry even when none is to be read
                    # (limit 0), as in MemoryStore: one head tells, then is left out.
                    read = limit or 1
                    params = {"b_queue": queue.name, "b_limit": read}
                    heads_of = (
                        share_blocks(self._caches.jobs(connection, share_heads, params), read)
                        if share_usage[queue.name]
                        else {}
                    )
                    # Shares in the order of their usage rows, those with no RUNNABLE job left out.
                    runnable_by_share[queue.name] = {
                        share: heads_of[share] if limit else ()
                        for share in share_usage[queue.name]
                        if share in heads_of
                    }
                    continue
                heads = self._caches.jobs(
                    connection,
                    RUNNABLE_HEAD_KEYS,
                    {"b_queue": queue.name, "b_limit": limits.heads_of(queue.name)},
                )
                runnable[queue.name] = tuple(heads)
            consumables = self._caches.consumables_of(fetch(connection, SELECT_CONSUMABLES))
            to_evaluate = tuple(
                self._caches.jobs(connection, FLAGGED_KEYS, {"b_limit": limits.to_evaluate})
            )
            wanted = list(dict.fromkeys(d for job in to_evaluate for d in job.wait_for))
            dependency_status: dict[str, JobStatus] = {}
            for chunk in chunks(wanted):
                for job_id, status in fetch(connection, SELECT_STATUS_BY_ID, ids=("ids", chunk)):
                    # A status Batchyard does not know is of a record it will fail.
                    dependency_status[job_id] = quarantine.stored_status(status) or JobStatus.FAILED
        unreadable: dict[str, str] = {}
        if self._caches.unreadable:  # rows that did not decode: named, never handed to the planner
            separate = self._caches.unreadable.separate
            active = separate(active, unreadable)
            runnable = {name: separate(heads, unreadable) for name, heads in runnable.items()}
            runnable_by_share = {
                name: {share: separate(heads, unreadable) for share, heads in shares.items()}
                for name, shares in runnable_by_share.items()
            }
            to_evaluate = separate(to_evaluate, unreadable)
        return Snapshot(
            compute_environments={ce.name: ce for ce in ces},
            job_queues=tuple(queues),
            scheduling_policies={policy.arn: policy for policy in policies},
            active=active,
            runnable=runnable,
            runnable_by_share=runnable_by_share,
            share_usage=share_usage,
            consumable_resources={r.name: r for r in consumables},
            to_evaluate=to_evaluate,
            dependency_status={d: dependency_status[d] for d in wanted if d in dependency_status},
            unreadable=unreadable,
        )

    def _active(self, connection: Connection) -> list[Job]:
        return self._caches.jobs(connection, ACTIVE_KEYS)

    def commit(self, plan: Plan) -> set[str]:
        with self._db.writing() as connection:
            ids = list(dict.fromkeys(job.job_id for job in plan.updates))
            current = load_for_update(connection, self._caches, ids) if ids else {}
            # The consumable rows to lock: those updates that may apply would move.
            moving = [
                (old, job)
                for job in plan.updates
                if (old := current.get(job.job_id)) is not None
                and old.version == job.version
                and apply_rules.holds_resources(old, job)
            ]
            before = (
                lock_consumables(connection, self._caches, required_names(moving)) if moving else {}
            )
            # The guard sees the takes (and releases) of the updates before it.
            resources = dict(before)
            pairs = apply_rules.applicable_updates(plan.updates, current, resources)
            applied = {job.job_id for _, job in pairs}
            stored = store_pairs(connection, pairs, flag=False)
            if moving:
                write_consumables(connection, before, resources)
            accruals = [a for a in plan.accruals if a.job_id in applied]
            if accruals:
                accrue(connection, accruals)
            # Consequences come after the evaluated flags are cleared, so a job whose
            # dependency ended in this very plan stays flagged.
            if plan.evaluated:
                execute_many(
                    connection,
                    CLEAR_FLAG,
                    [{"b_job_id": job_id, "b_version": v} for job_id, v in plan.evaluated],
                )
            if pairs:
                consequences(connection, pairs)
                fetch(connection, BUMP_CHANGES)
        if applied:
            self._caches.remember(stored)
            self._notify()
        return applied

    def active_jobs(self) -> list[Job]:
        with self._db.reading() as connection:
            return self._active(connection)

    def quarantine_jobs(self, reasons: Mapping[str, str], now: int) -> list[str]:
        ids = list(reasons)
        if not ids:
            return []
        stored: list[str] = []
        with self._db.writing() as connection:
            rows: list[Any] = []
            held: dict[str, list[ConsumableRequirement]] = {}
            for chunk in chunks(ids):
                rows.extend(fetch(connection, LOCK_JOBS_BY_ID, ids=("ids", chunk)))
                for job_id, resource, quantity in connection.execute(
                    sa.select(
                        job_consumable_resources.c.job_id,
                        job_consumable_resources.c.resource,
                        job_consumable_resources.c.quantity,
                    ).where(job_consumable_resources.c.job_id.in_(chunk))
                ):
                    held.setdefault(job_id, []).append(ConsumableRequirement(resource, quantity))
            updates: list[dict[str, Any]] = []
            releasing: list[tuple[Job | None, Job]] = []
            parents: set[str] = set()
            for row in rows:
                job_id, reason = row[JOB_ID], reasons[row[JOB_ID]]
                original = None
                try:
                    job = job_from_row(row)
                except Exception:
                    job, original = stand_in(row, reason), row_record(row)
                if not apply_rules.isolates(job, readable=original is None):
                    continue
                new = quarantine.failed(job, reason, now, original)
                try:
                    text = codec.dumps(codec.job_document(new))
                except Exception:  # a job that decoded but does not encode: keep what can be
                    new = quarantine.failed(stand_in(row, reason), reason, now, row_record(row))
                    text = codec.dumps(codec.job_document(new))
                updates.append(
                    {
                        "b_job_id": job_id,
                        "status": JobStatus.FAILED.value,
                        "stopped_at": new.stopped_at,
                        "doc": text,
                        "version": row[VERSION] + 1,
                        "needs_eval": False,
                    }
                )
                release = apply_rules.quarantine_release(
                    quarantine.stored_status(row[STATUS]), new, held.get(job_id, ())
                )
                if release is not None:
                    releasing.append(release)
                if new.array_parent_id is not None:
                    parents.add(new.array_parent_id)
                stored.append(job_id)
            if stored:
                execute_many(connection, UPDATE_JOB, updates)
                account_pairs(connection, self._caches, releasing)
                recount_parents(connection, sorted(parents))
                dependents: set[str] = set()
                for chunk in chunks(stored):
                    found = fetch(connection, SELECT_DEPENDENTS, ids=("ids", chunk))
                    dependents.update(row[0] for row in found)
                execute_many(connection, BUMP_JOB, [{"b_job_id": d} for d in dependents])
                fetch(connection, BUMP_CHANGES)
        self._caches.forget(stored)
        self._caches.unreadable.discard(stored)
        if stored:
            self._notify()
        return stored


def recount_parents(connection: Connection, parent_ids: Sequence[str]) -> None:
    """Set array parents' counts from their children's rows (a quarantined child's old
    status may be one no count holds) and flag the parents."""
    for chunk in chunks(parent_ids):
        counts = {parent_id: apply_rules.zero_counts() for parent_id in chunk}
        for parent_id, status, count in fetch(connection, COUNT_CHILDREN, ids=("ids", chunk)):
            if status in counts[parent_id]:
                counts[parent_id][status] += count
        rows = [
            {
                "b_job_id": parent_id,
                **{f"c_{COUNT_COLUMN[s]}": found[s.value] for s in ALL_JOB_STATUSES},
            }
            for parent_id, found in counts.items()
        ]
        execute_many(connection, SET_PARENT_COUNTS, rows)


def accrue(connection: Connection, accruals: Sequence[UsageAccrual]) -> None:
    """Add ended attempts' usage to their shares' rows (a missing row starts at 0)."""
    stored: dict[tuple[str, str], ShareUsage | None] = {}
    for accrual in accruals:
        key = (accrual.job_queue, accrual.share_identifier)
        if key not in stored:
            queue, share = key
            found = fetch(connection, LOCK_SHARE_ROW, {"b_queue": queue, "b_share": share})
            stored[key] = ShareUsage(queue, share, found[0][0], found[0][1]) if found else None
    written = dict(stored)
    for accrual in accruals:
        key = (accrual.job_queue, accrual.share_identifier)
        written[key] = apply_rules.accrue(written[key], accrual)
    updates = []
    inserts = []
    for key, row in written.items():
        assert row is not None
        queue, share = key
        if stored[key] is None:
            inserts.append(
                {
                    "job_queue": queue,
                    "share_identifier": share,
                    "value": row.value,
                    "at": row.at,
                }
            )
        else:
            updates.append(
                {"b_queue": queue, "b_share": share, "b_value": row.value, "b_at": row.at}
            )
    execute_many(connection, SET_SHARE_ROW, updates)
    execute_many(connection, INSERT_SHARE_ROW, inserts)
