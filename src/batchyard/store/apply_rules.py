"""The rules both stores apply alike, written once: which updates of a plan apply (version
match, first update wins, consumable resources fit), what a status change implies (array parent
counts, dependents to look at), how several mutations of one job fold into one write, the counts
an array parent starts with, consumable-resource counts as jobs enter and leave
STARTING/RUNNING, share-usage accruals, and which records a quarantine isolates and releases.

Mechanical rules over domain objects (what to place and when is the planner's decision); each
store loads what a rule needs, calls it, and writes what it returns (Nomad's plan applier is
the model: one function decides what applies, the state store only persists).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence

from batchyard.domain.model import (
    ALL_JOB_STATUSES,
    ConsumableRequirement,
    ConsumableResource,
    Job,
    JobDefinition,
    JobStatus,
    ShareUsage,
)
from batchyard.scheduling import fairshare
from batchyard.scheduling.snapshot import UsageAccrual
from batchyard.store import codec
from batchyard.store.base import JobMutation

Pair = tuple[Job, Job]
"""A job as stored (old) and the version to store over it (new)."""
Counts = dict[str, int]
"""An array parent's children by status name."""


def holds_resources(old: Job | None, new: Job) -> bool:
    """Whether storing new over old moves what the job holds of consumable resources."""
    if not (new.consumable_resources or (old is not None and old.consumable_resources)):
        return False
    was = old is not None and old.status.is_active
    if was != (new.status.is_active):
        return True
    return was and old is not None and old.consumable_resources != new.consumable_resources


def fits(resources: Mapping[str, ConsumableResource], old: Job, new: Job) -> bool:
    """The commit guard: a job entering STARTING/RUNNING finds what it takes available.

    Requirements naming an unknown resource are ignored (the planner waits for those).
    """
    if old.status.is_active or not new.status.is_active:
        return True
    needed: dict[str, int] = {}
    for requirement in new.consumable_resources:
        needed[requirement.resource] = needed.get(requirement.resource, 0) + requirement.quantity
    for name, quantity in needed.items():
        found = resources.get(name)
        if found is not None and found.available_quantity < quantity:
            return False
    return True


def account(resources: MutableMapping[str, ConsumableResource], old: Job | None, new: Job) -> None:
    """Move in-use quantities as a job enters or leaves STARTING/RUNNING (call only when
    holds_resources). A NON_REPLENISHABLE quantity leaves the total too when the job stops
    holding it. Neither count goes below 0; unknown resources are ignored."""
    now_active = new.status.is_active
    if old is not None and old.status.is_active:
        for requirement in old.consumable_resources:
            found = resources.get(requirement.resource)
            if found is None:
                continue
            total = found.total_quantity
            if not now_active and not found.is_replenishable:
                total = max(0, total - requirement.quantity)
            resources[found.name] = dataclasses.replace(
                found,
                total_quantity=total,
                in_use_quantity=max(0, found.in_use_quantity - requirement.quantity),
            )
    if now_active:
        for requirement in new.consumable_resources:
            found = resources.get(requirement.resource)
            if found is not None:
                resources[found.name] = dataclasses.replace(
                    found, in_use_quantity=found.in_use_quantity + requirement.quantity
                )


def accrue(row: ShareUsage | None, accrual: UsageAccrual) -> ShareUsage:
    """A share's stored usage with one ended attempt's usage added (both valued at `at`)."""
    value, at = (0.0, 0) if row is None else (row.value, row.at)
    return ShareUsage(
        job_queue=accrual.job_queue,
        share_identifier=accrual.share_identifier,
        value=fairshare.decayed(value, at, accrual.at, accrual.window_ms) + accrual.amount,
        at=accrual.at,
    )


# -- jobs ------------------------------------------------------------------------------------


def zero_counts() -> Counts:
    return {status.value: 0 for status in ALL_JOB_STATUSES}


def definition_name(build: Callable[[int], JobDefinition]) -> str:
    """The name of the definition `build` makes (build is pure: calling it once more just to
    learn the name is harmless)."""
    return build(0).name


def require_same_jobs(pairs: Iterable[Pair]) -> None:
    """Refuse a write that would store one job over another."""
    for old, new in pairs:
        if new.job_id != old.job_id:
            raise ValueError(f"a mutation may not change job_id {old.job_id}")


def fold_mutations(
    mutations: Sequence[tuple[str, JobMutation]], stored: Mapping[str, Job]
) -> list[Pair]:
    """Several mutations of one job as one write: each sees the result of the one before, and
    the pair is (the job as stored, its last result). A mutation returning None changes
    nothing; ids not in `stored` are skipped. Pairs come in the order of their first mutation."""
    latest: dict[str, Job] = {}
    first: dict[str, Job] = {}
    for job_id, mutation in mutations:
        old = latest.get(job_id) or stored.get(job_id)
        if old is None:
            continue
        new = mutation(old)
        if new is not None:
            first.setdefault(job_id, old)
            latest[job_id] = new
    return [(old, latest[job_id]) for job_id, old in first.items()]


def applicable_updates(
    updates: Iterable[Job],
    stored: Mapping[str, Job],
    resources: MutableMapping[str, ConsumableResource],
) -> list[Pair]:
    """The commit guard: the updates of a plan that apply, each paired with the job as stored.

    An update applies if its job is stored at the version it was planned from, it is the first
    update of that job, and a job it moves into STARTING/RUNNING finds what it takes of
    consumable resources available. `resources` (the stored resources the updates name) is
    advanced by the takes and releases of those that apply, so each update sees the ones
    before it; the store writes what differs from what it loaded.
    """
    applied: set[str] = set()
    pairs: list[Pair] = []
    for job in updates:
        old = stored.get(job.job_id)
        if old is None or job.job_id in applied or old.version != job.version:
            continue
        if holds_resources(old, job):
            if not fits(resources, old, job):
                continue
            account(resources, old, job)
        applied.add(job.job_id)
        pairs.append((old, job))
    return pairs


def status_consequences(pairs: Iterable[Pair]) -> tuple[dict[str, Counts], list[str]]:
    """What status changes imply mechanically: the change of each array parent's counts, and
    the jobs that ended (their dependents need a decision)."""
    deltas: dict[str, Counts] = {}
    ended: list[str] = []
    for old, new in pairs:
        if old.status is new.status:
            continue
        if old.array_parent_id is not None:
            delta = deltas.setdefault(old.array_parent_id, zero_counts())
            delta[old.status.value] -= 1
        if new.array_parent_id is not None:
            delta = deltas.setdefault(new.array_parent_id, zero_counts())
            delta[new.status.value] += 1
        if new.status.is_terminal:
            ended.append(new.job_id)
    return deltas, ended


def child_counts(
    jobs: Sequence[Job], stored_children: Mapping[str, Mapping[str, int]]
) -> tuple[dict[str, Counts], dict[str, Counts]]:
    """The counts of the array parents among `jobs` (an insert), and the change to those of
    parents stored earlier.

    Children may be stored before their parent: a parent inserted now starts with the counts
    of its children already stored (`stored_children`, by parent, for the parents among
    `jobs`) plus those inserted with it. The children of a parent not among `jobs` change its
    counts (so it needs a decision again).
    """
    parents = {job.job_id for job in jobs if job.array_size is not None}
    initial: dict[str, Counts] = {}
    for parent_id in parents:
        counts = zero_counts()
        for status, count in stored_children.get(parent_id, {}).items():
            if status in counts:
                counts[status] += count
        initial[parent_id] = counts
    deltas: dict[str, Counts] = {}
    for job in jobs:
        child_of = job.array_parent_id
        if child_of is None:
            continue
        if child_of in initial:
            initial[child_of][job.status.value] += 1
        else:
            deltas.setdefault(child_of, zero_counts())[job.status.value] += 1
    return initial, deltas


# -- quarantine ------------------------------------------------------------------------------


def isolates(job: Job, *, readable: bool) -> bool:
    """Whether a quarantine writes over this record: one that reads as a job that has failed
    already needs nothing; a record that could not be read is always rewritten."""
    return not readable or job.status is not JobStatus.FAILED


def quarantine_release(
    stored_status: JobStatus | None, failed: Job, held: Sequence[ConsumableRequirement]
) -> Pair | None:
    """The accounting pair that returns what a quarantined job held (`held`, its stored
    requirements) when it was STARTING/RUNNING; None when it held nothing."""
    if stored_status is None or not stored_status.is_active or not held:
        return None
    requirements = tuple(held)
    return (
        codec.replace_job(failed, status=stored_status, consumable_resources=requirements),
        codec.replace_job(failed, consumable_resources=requirements),
    )
