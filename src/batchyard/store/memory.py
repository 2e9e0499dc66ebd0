"""In-memory Store for unit tests and the simulator; same semantics as the SQL store.

Keeps jobs as immutable objects plus sorted indexes so snapshots stay bounded. Saves and applies
only (versions, flags, counts, consumable in-use, share usage): decisions belong to the planner,
and the rules both stores apply are store/apply_rules.py's (JobQuery filters: JobQuery.matches).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections import ChainMap, defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sortedcontainers import SortedList, SortedSet

from batchyard.domain.model import (
    ComputeEnvironment,
    ConsumableResource,
    Job,
    JobDefinition,
    JobQueue,
    JobStatus,
    SchedulingPolicy,
    ShareUsage,
)
from batchyard.scheduling.snapshot import Plan, Snapshot
from batchyard.store import apply_rules, codec, quarantine
from batchyard.store.base import (
    ConflictError,
    ConsumableJobQuery,
    ConsumableResourceMutation,
    JobMutation,
    JobQuery,
    SnapshotLimits,
)

_log = logging.getLogger(__name__)

_ACTIVE = (JobStatus.STARTING, JobStatus.RUNNING)
_DEFAULT_LIMITS = SnapshotLimits()

# The fields an index is built on; a write that keeps them needs no re-indexing.
_IndexKey = tuple[Any, ...]


def _index_key(job: Job) -> _IndexKey:
    return (
        job.job_queue,
        job.status,
        job.run_order,
        job.seq,
        job.array_parent_id,
        job.array_index,
        job.stopped_at,
        job.wait_for,
        job.share_identifier,
        job.scheduling_priority,
        job.consumable_resources,
    )


def _share_key(job: Job) -> tuple[int, int, int, str]:
    """A RUNNABLE job's place among its share's: schedulingPriority first (absent = 0)."""
    return (-(job.scheduling_priority or 0), job.run_order, job.seq, job.job_id)


def _resource_names(job: Job) -> Iterable[str]:
    return dict.fromkeys(r.resource for r in job.consumable_resources)


_Named = TypeVar("_Named")


class MemoryStore:
    def __init__(self) -> None:
        # Re-entrant so a mutation may read the store; it must not write to it (the SQL
        # store would wait on itself).
        self._lock = threading.RLock()
        self._listeners: list[Callable[[], None]] = []
        self._changes = 0
        self._next_seq = 1
        self._jobs: dict[str, Job] = {}
        self._by_seq: dict[int, str] = {}
        self._flagged: Any = SortedSet()  # (seq, job_id)
        self._runnable: dict[str, Any] = {}  # queue -> SortedList[(run_order, seq, job_id)]
        self._active: dict[str, int] = {}  # job_id -> seq
        self._top: dict[str, Any] = {}  # queue -> SortedList[seq] of top-level jobs
        self._top_status: dict[tuple[str, JobStatus], Any] = {}  # same, per status
        self._children: dict[str, Any] = {}  # parent -> SortedList[(index, seq, job_id)]
        self._finished: Any = SortedList()  # (stopped_at, seq, job_id) of terminal jobs
        self._dependents: defaultdict[str, set[str]] = defaultdict(set)
        self._ces: dict[str, ComputeEnvironment] = {}
        self._queues: dict[str, JobQueue] = {}
        self._policies: dict[str, SchedulingPolicy] = {}
        self._definitions: dict[tuple[str, int], JobDefinition] = {}
        self._last_revision: dict[str, int] = {}
        # RUNNABLE jobs per (queue, share): SortedList[(-priority, run_order, seq, job_id)].
        self._runnable_share: dict[tuple[str, str], Any] = {}
        self._share_usage: dict[str, dict[str, ShareUsage]] = {}  # queue -> share -> usage
        self._consumables: dict[str, ConsumableResource] = {}
        self._by_consumable: dict[str, Any] = {}  # resource -> SortedList[seq] of jobs

    # -- lifecycle and change notification --------------------------------------------------

    def close(self) -> None:
        pass

    def change_counter(self) -> int:
        with self._lock:
            return self._changes

    def on_change(self, listener: Callable[[], None]) -> None:
        """Call listener (outside any lock) after every committed write.

        A write stores a job version or a resource; clearing evaluation flags alone is not one.
        """
        with self._lock:
            self._listeners.append(listener)

    def _notify(self) -> None:
        with self._lock:
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener()
            except Exception:
                _log.exception("store change listener failed")

    # -- compute environments, job queues, scheduling policies -------------------------------

    def _put_named(self, table: dict[str, Any], name: str, value: Any, create: bool) -> None:
        with self._lock:
            if create and name in table:
                raise ConflictError(f"{name} already exists")
            table[name] = value
            self._changes += 1
        self._notify()

    def _get_named(self, table: Mapping[str, _Named], name: str) -> _Named | None:
        with self._lock:
            return table.get(name)

    def _list_named(self, table: Mapping[str, _Named]) -> list[_Named]:
        with self._lock:
            return [table[name] for name in sorted(table)]

    def _delete_named(self, table: dict[str, Any], name: str) -> None:
        with self._lock:
            removed = table.pop(name, None) is not None
            if removed:
                self._changes += 1
        if removed:
            self._notify()

    def put_compute_environment(self, ce: ComputeEnvironment, *, create: bool) -> None:
        self._put_named(self._ces, ce.name, ce, create)

    def get_compute_environment(self, name: str) -> ComputeEnvironment | None:
        return self._get_named(self._ces, name)

    def list_compute_environments(self) -> list[ComputeEnvironment]:
        return self._list_named(self._ces)

    def delete_compute_environment(self, name: str) -> None:
        self._delete_named(self._ces, name)

    def put_job_queue(self, queue: JobQueue, *, create: bool) -> None:
        self._put_named(self._queues, queue.name, queue, create)

    def get_job_queue(self, name: str) -> JobQueue | None:
        return self._get_named(self._queues, name)

    def list_job_queues(self) -> list[JobQueue]:
        return self._list_named(self._queues)

    def delete_job_queue(self, name: str) -> None:
        self._delete_named(self._queues, name)

    def put_scheduling_policy(self, policy: SchedulingPolicy, *, create: bool) -> None:
        self._put_named(self._policies, policy.name, policy, create)

    def get_scheduling_policy(self, name: str) -> SchedulingPolicy | None:
        return self._get_named(self._policies, name)

    def list_scheduling_policies(self) -> list[SchedulingPolicy]:
        return self._list_named(self._policies)

    def delete_scheduling_policy(self, name: str) -> None:
        self._delete_named(self._policies, name)

    # -- consumable resources -------------------------------------------------------------------

    def put_consumable_resource(self, resource: ConsumableResource, *, create: bool) -> None:
        """Insert or replace; in_use_quantity is the store's either way: a replace keeps it,
        an insert counts what jobs in STARTING/RUNNING already require of that name."""
        with self._lock:
            current = self._consumables.get(resource.name)
            if create and current is not None:
                raise ConflictError(f"{resource.name} already exists")
            if current is not None:
                in_use = current.in_use_quantity
            else:
                in_use = sum(
                    r.quantity
                    for job_id in self._active
                    for r in self._jobs[job_id].consumable_resources
                    if r.resource == resource.name
                )
            self._consumables[resource.name] = dataclasses.replace(resource, in_use_quantity=in_use)
            self._changes += 1
        self._notify()

    def get_consumable_resource(self, name: str) -> ConsumableResource | None:
        return self._get_named(self._consumables, name)

    def list_consumable_resources(self) -> list[ConsumableResource]:
        return self._list_named(self._consumables)

    def delete_consumable_resource(self, name: str) -> None:
        self._delete_named(self._consumables, name)

    def mutate_consumable_resource(
        self, name: str, mutation: ConsumableResourceMutation
    ) -> ConsumableResource | None:
        with self._lock:
            current = self._consumables.get(name)
            if current is None:
                return None
            new = mutation(current)
            if new.name != name:
                raise ValueError(f"a mutation may not rename consumable resource {name}")
            stored = dataclasses.replace(new, in_use_quantity=current.in_use_quantity)
            self._consumables[name] = stored
            self._changes += 1
        self._notify()
        return stored

    def seen_share_count(self, job_queue: str) -> int:
        with self._lock:
            return len(self._share_usage.get(job_queue, {}))

    def active_share_identifiers(self, job_queue: str) -> set[str]:
        with self._lock:
            return {
                job.share_identifier
                for job in self._jobs.values()
                if job.job_queue == job_queue
                and job.share_identifier is not None
                and not job.status.is_terminal
            }

    def list_jobs_by_consumable_resource(self, query: ConsumableJobQuery) -> list[Job]:
        if query.limit <= 0:
            return []
        with self._lock:
            return self._newest_first(
                self._by_consumable.get(query.resource),
                query.after,
                query.limit,
                query.matches,
            )

    # -- job definitions ----------------------------------------------------------------------

    def add_job_definition(self, build: Callable[[int], JobDefinition]) -> JobDefinition:
        name = apply_rules.definition_name(build)
        with self._lock:
            revision = self._last_revision.get(name, 0) + 1
            definition = build(revision)
            if definition.name != name or definition.revision != revision:
                raise ValueError("build must return the given revision of one name")
            self._definitions[(name, revision)] = definition
            self._last_revision[name] = revision
            self._changes += 1
        self._notify()
        return definition

    def put_job_definition(self, definition: JobDefinition) -> None:
        key = (definition.name, definition.revision)
        with self._lock:
            if key not in self._definitions:
                raise ConflictError(
                    f"JobDefinition {definition.name}:{definition.revision} does not exist"
                )
            self._definitions[key] = definition
            self._changes += 1
        self._notify()

    def get_job_definition(self, name: str, revision: int) -> JobDefinition | None:
        with self._lock:
            return self._definitions.get((name, revision))

    def latest_job_definition(self, name: str, *, active_only: bool) -> JobDefinition | None:
        with self._lock:
            for revision in range(self._last_revision.get(name, 0), 0, -1):
                found = self._definitions.get((name, revision))
                if found is not None and (not active_only or found.status == "ACTIVE"):
                    return found
            return None

    def list_job_definitions(self) -> list[JobDefinition]:
        with self._lock:
            return [self._definitions[key] for key in sorted(self._definitions)]

    # -- jobs: indexes ------------------------------------------------------------------------

    def _index(self, job: Job) -> None:
        self._by_seq[job.seq] = job.job_id
        if job.status is JobStatus.RUNNABLE:
            runnable = self._runnable.get(job.job_queue)
            if runnable is None:
                runnable = self._runnable[job.job_queue] = SortedList()
            runnable.add((job.run_order, job.seq, job.job_id))
            if job.share_identifier is not None:
                key = (job.job_queue, job.share_identifier)
                by_share = self._runnable_share.get(key)
                if by_share is None:
                    by_share = self._runnable_share[key] = SortedList()
                by_share.add(_share_key(job))
        elif job.status in _ACTIVE:
            self._active[job.job_id] = job.seq
        elif job.status.is_terminal and job.stopped_at is not None:
            self._finished.add((job.stopped_at, job.seq, job.job_id))
        if job.array_parent_id is None:
            top = self._top.get(job.job_queue)
            if top is None:
                top = self._top[job.job_queue] = SortedList()
            top.add(job.seq)
            key = (job.job_queue, job.status)
            top_status = self._top_status.get(key)
            if top_status is None:
                top_status = self._top_status[key] = SortedList()
            top_status.add(job.seq)
        else:
            children = self._children.get(job.array_parent_id)
            if children is None:
                children = self._children[job.array_parent_id] = SortedList()
            index = -1 if job.array_index is None else job.array_index
            children.add((index, job.seq, job.job_id))
        for depends_on in job.wait_for:
            self._dependents[depends_on].add(job.job_id)
        for name in _resource_names(job):
            seqs = self._by_consumable.get(name)
            if seqs is None:
                seqs = self._by_consumable[name] = SortedList()
            seqs.add(job.seq)

    def _unindex(self, job: Job) -> None:
        del self._by_seq[job.seq]
        if job.status is JobStatus.RUNNABLE:
            self._runnable[job.job_queue].remove((job.run_order, job.seq, job.job_id))
            if job.share_identifier is not None:
                self._runnable_share[(job.job_queue, job.share_identifier)].remove(_share_key(job))
        elif job.status in _ACTIVE:
            del self._active[job.job_id]
        elif job.status.is_terminal and job.stopped_at is not None:
            self._finished.remove((job.stopped_at, job.seq, job.job_id))
        if job.array_parent_id is None:
            self._top[job.job_queue].remove(job.seq)
            self._top_status[(job.job_queue, job.status)].remove(job.seq)
        else:
            index = -1 if job.array_index is None else job.array_index
            self._children[job.array_parent_id].remove((index, job.seq, job.job_id))
        for depends_on in job.wait_for:
            dependents = self._dependents.get(depends_on)
            if dependents is not None:
                dependents.discard(job.job_id)
                if not dependents:
                    del self._dependents[depends_on]
        for name in _resource_names(job):
            self._by_consumable[name].remove(job.seq)

    def _set_flag(self, job: Job, flagged: bool) -> None:
        if flagged:
            self._flagged.add((job.seq, job.job_id))
        else:
            self._flagged.discard((job.seq, job.job_id))

    def _replace_stored(self, old: Job, new: Job) -> None:
        if _index_key(old) != _index_key(new):
            self._unindex(old)
            self._index(new)
        self._jobs[new.job_id] = new

    def _bump(self, job_id: str, summary_delta: dict[str, int] | None = None) -> None:
        """Mark a job as changed for the planner: new version, flagged, counts adjusted."""
        job = self._jobs[job_id]
        summary = job.array_status_summary
        if summary_delta is not None and summary is not None:
            counts = dict(summary)
            for status, delta in summary_delta.items():
                counts[status] += delta
            summary = counts
        self._jobs[job_id] = codec.replace_job(
            job, version=job.version + 1, array_status_summary=summary
        )
        self._set_flag(job, True)

    def _store_pairs(self, pairs: list[tuple[Job, Job]], *, flag: bool) -> None:
        """Store each (old, new) pair: new fields, old seq and counts, version + 1."""
        apply_rules.require_same_jobs(pairs)  # before storing any: all or nothing
        for old, new in pairs:
            job = codec.replace_job(
                new,
                seq=old.seq,
                version=old.version + 1,
                array_status_summary=old.array_status_summary,
            )
            self._replace_stored(old, job)
            self._set_flag(job, flag)
            if apply_rules.holds_resources(old, job):
                apply_rules.account(self._consumables, old, job)

    def _consequences(self, pairs: list[tuple[Job, Job]]) -> None:
        """Apply what status changes imply (apply_rules.status_consequences): parent counts,
        and the dependents of jobs that ended flagged."""
        deltas, ended = apply_rules.status_consequences(pairs)
        for parent_id, delta in deltas.items():
            if parent_id in self._jobs:
                self._bump(parent_id, delta)
        dependents: set[str] = set()
        for job_id in ended:
            dependents.update(self._dependents.get(job_id, ()))
        for job_id in dependents:
            if job_id in self._jobs:
                self._bump(job_id)

    # -- jobs ---------------------------------------------------------------------------------

    def insert_jobs(self, jobs: Sequence[Job]) -> list[Job]:
        with self._lock:
            ids = [job.job_id for job in jobs]
            if len(set(ids)) != len(ids) or any(i in self._jobs for i in ids):
                raise ConflictError("a job with this id already exists")
            parents = {job.job_id for job in jobs if job.array_size is not None}
            # Counts of children stored before their parent arrive with the parent.
            stored_children: dict[str, dict[str, int]] = {}
            for parent_id in parents:
                counts = stored_children[parent_id] = {}
                for _, _, child_id in self._children.get(parent_id, ()):
                    status = self._jobs[child_id].status.value
                    counts[status] = counts.get(status, 0) + 1
            initial, deltas = apply_rules.child_counts(jobs, stored_children)
            stored: list[Job] = []
            for job in jobs:
                seq = self._next_seq
                self._next_seq += 1
                new = codec.replace_job(
                    job,
                    seq=seq,
                    run_order=seq,
                    version=1,
                    array_status_summary=initial.get(job.job_id),
                )
                self._jobs[new.job_id] = new
                self._index(new)
                self._set_flag(new, True)
                if apply_rules.holds_resources(None, new):
                    apply_rules.account(self._consumables, None, new)
                if new.share_identifier is not None:
                    shares = self._share_usage.setdefault(new.job_queue, {})
                    if new.share_identifier not in shares:
                        shares[new.share_identifier] = ShareUsage(
                            new.job_queue, new.share_identifier, 0.0, new.created_at
                        )
                stored.append(new)
            # Parents stored earlier: their counts change, so they need a decision again.
            for earlier, delta in deltas.items():
                if earlier in self._jobs:
                    self._bump(earlier, delta)
            if jobs:
                self._changes += 1
        if jobs:
            self._notify()
        return stored

    def get_job(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def get_jobs(self, job_ids: Iterable[str]) -> list[Job]:
        with self._lock:
            return [self._jobs[i] for i in job_ids if i in self._jobs]

    def mutate_job(self, job_id: str, mutation: JobMutation) -> Job | None:
        with self._lock:
            old = self._jobs.get(job_id)
            if old is None:
                return None
            new = mutation(old)
            if new is None:
                return old
            self._store_pairs([(old, new)], flag=True)
            self._consequences([(old, new)])
            self._changes += 1
            result = self._jobs[job_id]
        self._notify()
        return result

    def mutate_jobs(self, mutations: Sequence[tuple[str, JobMutation]]) -> int:
        with self._lock:
            pairs = apply_rules.fold_mutations(mutations, self._jobs)
            if pairs:
                self._store_pairs(pairs, flag=True)
                self._consequences(pairs)
                self._changes += 1
        if pairs:
            self._notify()
        return len(pairs)

    def mutate_array_children(self, parent_id: str, mutation: JobMutation) -> int:
        with self._lock:
            pairs: list[tuple[Job, Job]] = []
            for _, _, child_id in list(self._children.get(parent_id, ())):
                old = self._jobs[child_id]
                new = mutation(old)
                if new is not None:
                    pairs.append((old, new))
            if pairs:
                self._store_pairs(pairs, flag=True)
                self._consequences(pairs)
                self._changes += 1
        if pairs:
            self._notify()
        return len(pairs)

    def list_jobs(self, query: JobQuery) -> list[Job]:
        if query.limit <= 0:
            return []
        with self._lock:
            if query.job_queue is not None:
                found = self._list_queue(query)
            elif query.array_job_id is not None:
                found = self._list_children(query)
            else:
                # Multi-node parallel jobs have no node jobs in the model yet.
                found = []
            return found

    def _list_queue(self, query: JobQuery) -> list[Job]:
        assert query.job_queue is not None
        if query.status is None:
            seqs = self._top.get(query.job_queue)
        else:
            seqs = self._top_status.get((query.job_queue, query.status))
        return self._newest_first(seqs, query.after, query.limit, query.matches)

    def _newest_first(
        self, seqs: Any, after: int | None, limit: int, matches: Callable[[Job], bool]
    ) -> list[Job]:
        """Up to `limit` matching jobs of a seq index, newest first, below the cursor `after`."""
        if not seqs:
            return []
        found: list[Job] = []
        candidates: Iterator[int] = seqs.irange(
            maximum=after, inclusive=(True, False), reverse=True
        )
        for seq in candidates:
            job = self._jobs[self._by_seq[seq]]
            if matches(job):
                found.append(job)
                if len(found) >= limit:
                    break
        return found

    def _list_children(self, query: JobQuery) -> list[Job]:
        assert query.array_job_id is not None
        children = self._children.get(query.array_job_id)
        if not children:
            return []
        minimum = None if query.after is None else (query.after + 1,)
        found: list[Job] = []
        for _, _, child_id in children.irange(minimum=minimum):
            job = self._jobs[child_id]
            if query.matches(job):
                found.append(job)
                if len(found) >= query.limit:
                    break
        return found

    def delete_jobs_finished_before(self, cutoff_ms: int) -> list[Job]:
        with self._lock:
            keys = list(self._finished.irange(maximum=(cutoff_ms,), inclusive=(True, False)))
            removed: list[Job] = []
            for _, _, job_id in keys:
                job = self._jobs.pop(job_id)
                self._unindex(job)
                self._set_flag(job, False)
                removed.append(job)
            if removed:
                self._changes += 1
        if removed:
            self._notify()
        return removed

    # -- scheduling ---------------------------------------------------------------------------

    def snapshot(self, limits: SnapshotLimits = _DEFAULT_LIMITS) -> Snapshot:
        with self._lock:
            queues = tuple(self._queues[name] for name in sorted(self._queues))
            runnable: dict[str, tuple[Job, ...]] = {}
            runnable_by_share: dict[str, dict[str, tuple[Job, ...]]] = {}
            share_usage: dict[str, dict[str, ShareUsage]] = {}
            for queue in queues:
                if queue.scheduling_policy_arn is not None:
                    rows = self._share_usage.get(queue.name, {})
                    share_usage[queue.name] = {share: rows[share] for share in sorted(rows)}
                    runnable_by_share[queue.name] = self._share_heads(
                        queue.name, sorted(rows), limits.heads_of(queue.name)
                    )
                    continue
                heads = self._runnable.get(queue.name)
                if heads:
                    runnable[queue.name] = tuple(
                        self._jobs[job_id]
                        for _, _, job_id in heads.islice(0, limits.heads_of(queue.name))
                    )
                else:
                    runnable[queue.name] = ()
            to_evaluate = tuple(
                self._jobs[job_id] for _, job_id in self._flagged.islice(0, limits.to_evaluate)
            )
            dependency_status: dict[str, JobStatus] = {}
            for job in to_evaluate:
                for depends_on in job.wait_for:
                    found = self._jobs.get(depends_on)
                    if found is not None:
                        dependency_status[depends_on] = found.status
            return Snapshot(
                compute_environments={name: self._ces[name] for name in sorted(self._ces)},
                job_queues=queues,
                scheduling_policies={p.arn: p for p in self._policies.values()},
                active=self._active_jobs(),
                runnable=runnable,
                runnable_by_share=runnable_by_share,
                share_usage=share_usage,
                consumable_resources={
                    name: self._consumables[name] for name in sorted(self._consumables)
                },
                to_evaluate=to_evaluate,
                dependency_status=dependency_status,
            )

    def _share_heads(
        self, queue: str, shares: Iterable[str], limit: int
    ) -> dict[str, tuple[Job, ...]]:
        """The first RUNNABLE jobs of each share that has any, in share order."""
        heads: dict[str, tuple[Job, ...]] = {}
        for share in shares:
            by_share = self._runnable_share.get((queue, share))
            if by_share:
                heads[share] = tuple(self._jobs[key[3]] for key in by_share.islice(0, limit))
        return heads

    def _active_jobs(self) -> tuple[Job, ...]:
        ordered = sorted(self._active.items(), key=lambda item: item[1])
        return tuple(self._jobs[job_id] for job_id, _ in ordered)

    def commit(self, plan: Plan) -> set[str]:
        with self._lock:
            # The guard sees the takes of the updates before it (_store_pairs accounts them
            # later), so it reads through an overlay that the same accounting advances.
            resources: ChainMap[str, ConsumableResource] = ChainMap({}, self._consumables)
            pairs = apply_rules.applicable_updates(plan.updates, self._jobs, resources)
            applied = {job.job_id for _, job in pairs}
            self._store_pairs(pairs, flag=False)
            for accrual in plan.accruals:
                if accrual.job_id in applied:
                    shares = self._share_usage.setdefault(accrual.job_queue, {})
                    shares[accrual.share_identifier] = apply_rules.accrue(
                        shares.get(accrual.share_identifier), accrual
                    )
            # Consequences come after the evaluated flags are cleared, so a job whose
            # dependency ended in this very plan stays flagged.
            for job_id, version in plan.evaluated:
                current = self._jobs.get(job_id)
                if current is not None and current.version == version:
                    self._set_flag(current, False)
            if pairs:
                self._consequences(pairs)
                self._changes += 1
        if applied:
            self._notify()
        return applied

    def active_jobs(self) -> list[Job]:
        with self._lock:
            return list(self._active_jobs())

    def quarantine_jobs(self, reasons: Mapping[str, str], now: int) -> list[str]:
        with self._lock:
            pairs: list[tuple[Job, Job]] = []
            for job_id, reason in reasons.items():
                old = self._jobs.get(job_id)
                if old is None or not apply_rules.isolates(old, readable=True):
                    continue
                pairs.append((old, quarantine.failed(old, reason, now, None)))
            if pairs:
                self._store_pairs(pairs, flag=False)
                self._consequences(pairs)
                self._changes += 1
        if pairs:
            self._notify()
        return [old.job_id for old, _ in pairs]
