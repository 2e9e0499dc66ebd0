"""The rules both stores apply alike (store/apply_rules.py), on plain values: consumable-resource
counts as a job enters and leaves STARTING/RUNNING (docs/aws-behaviour.md#consumable-resources),
the commit guard, status consequences, mutation folding, initial child counts, quarantine."""

from __future__ import annotations

import dataclasses

import pytest

from batchyard.domain.model import ConsumableResource, Job, JobStatus
from batchyard.store import apply_rules
from batchyard.store.apply_rules import account
from tests.builders import a_consumable_resource, a_job, requiring

S = JobStatus


@pytest.mark.parametrize("resource_type", ["REPLENISHABLE", "NON_REPLENISHABLE"])
def test_a_job_takes_its_quantity_at_starting(resource_type: str) -> None:
    resources = {"licence": a_consumable_resource(total=5, resource_type=resource_type)}
    waiting = a_job("job-1", S.RUNNABLE, consumable_resources=requiring(2))
    account(resources, waiting, a_job("job-1", S.STARTING, consumable_resources=requiring(2)))
    assert (resources["licence"].total_quantity, resources["licence"].in_use_quantity) == (5, 2)


@pytest.mark.parametrize(
    ("resource_type", "total_after"), [("REPLENISHABLE", 5), ("NON_REPLENISHABLE", 3)]
)
@pytest.mark.parametrize("end", [S.SUCCEEDED, S.FAILED])
def test_an_ended_job_returns_a_replenishable_quantity_and_uses_up_a_non_replenishable_one(
    resource_type: str, total_after: int, end: JobStatus
) -> None:
    resources = {"licence": a_consumable_resource(total=5, in_use=2, resource_type=resource_type)}
    running = a_job("job-1", S.RUNNING, consumable_resources=requiring(2))
    account(resources, running, a_job("job-1", end, consumable_resources=requiring(2)))
    assert (resources["licence"].total_quantity, resources["licence"].in_use_quantity) == (
        total_after,
        0,
    )


def _at(job: Job, **fields: object) -> Job:
    return dataclasses.replace(job, **fields)  # type: ignore[arg-type]


def test_the_commit_guard_applies_current_first_updates_that_fit() -> None:
    stored = {
        "job-1": a_job("job-1", S.RUNNABLE, consumable_resources=requiring(2)),
        "job-2": a_job("job-2", S.RUNNABLE, consumable_resources=requiring(2)),
        "job-3": a_job("job-3", S.RUNNABLE),
        "job-4": a_job("job-4", S.RUNNABLE),
    }
    resources: dict[str, ConsumableResource] = {"licence": a_consumable_resource(total=3)}
    updates = [
        _at(stored["job-1"], status=S.STARTING),  # takes 2 of 3
        _at(stored["job-2"], status=S.STARTING),  # 2 more do not fit: left out
        _at(stored["job-3"], status=S.STARTING),
        _at(stored["job-3"], status=S.FAILED),  # a second update of job-3: left out
        _at(stored["job-4"], status=S.STARTING, version=4),  # planned from version 4, not 5
        a_job("job-9", S.STARTING),  # not stored
    ]
    pairs = apply_rules.applicable_updates(updates, stored, resources)
    assert [(old.job_id, new.status) for old, new in pairs] == [
        ("job-1", S.STARTING),
        ("job-3", S.STARTING),
    ]
    assert all(old is stored[old.job_id] for old, _ in pairs)
    assert resources["licence"].in_use_quantity == 2


def test_a_release_before_a_take_in_one_plan_makes_room() -> None:
    running = a_job("job-1", S.RUNNING, consumable_resources=requiring(3))
    waiting = a_job("job-2", S.RUNNABLE, consumable_resources=requiring(3))
    resources = {"licence": a_consumable_resource(total=3, in_use=3)}
    updates = [_at(running, status=S.SUCCEEDED), _at(waiting, status=S.STARTING)]
    pairs = apply_rules.applicable_updates(updates, {"job-1": running, "job-2": waiting}, resources)
    assert [old.job_id for old, _ in pairs] == ["job-1", "job-2"]
    assert resources["licence"].in_use_quantity == 3


def test_status_consequences_move_parent_counts_and_name_the_jobs_that_ended() -> None:
    child = a_job("job-1", S.RUNNING, array_parent_id="parent", array_index=0)
    other = a_job("job-2", S.RUNNABLE, array_parent_id="parent", array_index=1)
    plain = a_job("job-3", S.RUNNING)
    pairs = [
        (child, _at(child, status=S.SUCCEEDED)),
        (other, _at(other, status=S.STARTING)),
        (plain, _at(plain, status=S.FAILED)),
        (plain, _at(plain, status_reason="same status")),
    ]
    deltas, ended = apply_rules.status_consequences(pairs)
    expected = apply_rules.zero_counts()
    expected.update(RUNNING=-1, SUCCEEDED=1, RUNNABLE=-1, STARTING=1)
    assert deltas == {"parent": expected}
    assert ended == ["job-1", "job-3"]


def test_mutations_of_one_job_fold_into_one_pair() -> None:
    stored = {"job-1": a_job("job-1", S.RUNNABLE), "job-2": a_job("job-2", S.RUNNABLE)}
    mutations = [
        ("job-2", lambda job: _at(job, status_reason="first")),
        ("job-1", lambda job: None),  # changes nothing
        ("job-2", lambda job: _at(job, status_reason=f"{job.status_reason} then second")),
        ("job-9", lambda job: _at(job, status_reason="never")),  # not stored
    ]
    pairs = apply_rules.fold_mutations(mutations, stored)
    assert [(old.job_id, new.status_reason) for old, new in pairs] == [
        ("job-2", "first then second")
    ]
    assert pairs[0][0] is stored["job-2"]


def test_a_mutation_may_not_store_one_job_over_another() -> None:
    job = a_job("job-1")
    apply_rules.require_same_jobs([(job, _at(job, status=S.FAILED))])
    with pytest.raises(ValueError, match="may not change job_id job-1"):
        apply_rules.require_same_jobs([(job, a_job("job-2"))])


def test_a_parent_starts_with_the_counts_of_children_stored_before_and_with_it() -> None:
    parent = a_job("parent", S.SUBMITTED, array_size=4)
    with_it = a_job("job-3", S.SUBMITTED, array_parent_id="parent", array_index=2)
    of_earlier = a_job("job-4", S.PENDING, array_parent_id="earlier", array_index=0)
    initial, deltas = apply_rules.child_counts(
        [parent, with_it, of_earlier], {"parent": {"RUNNABLE": 2, "UNKNOWN": 1}}
    )
    counts = apply_rules.zero_counts()
    counts.update(RUNNABLE=2, SUBMITTED=1)
    assert initial == {"parent": counts}
    earlier = apply_rules.zero_counts()
    earlier.update(PENDING=1)
    assert deltas == {"earlier": earlier}


def test_a_quarantine_rewrites_unread_records_and_jobs_that_have_not_failed() -> None:
    assert apply_rules.isolates(a_job("job-1", S.RUNNING), readable=True)
    assert not apply_rules.isolates(a_job("job-1", S.FAILED), readable=True)
    assert apply_rules.isolates(a_job("job-1", S.FAILED), readable=False)


def test_a_quarantined_job_returns_what_it_held_while_active() -> None:
    failed = a_job("job-1", S.FAILED)
    held = requiring(2)
    pair = apply_rules.quarantine_release(S.RUNNING, failed, held)
    assert pair is not None
    resources = {"licence": a_consumable_resource(total=5, in_use=2)}
    old, new = pair
    assert apply_rules.holds_resources(old, new)
    account(resources, old, new)
    assert resources["licence"].in_use_quantity == 0
    assert apply_rules.quarantine_release(S.RUNNABLE, failed, held) is None
    assert apply_rules.quarantine_release(None, failed, held) is None
    assert apply_rules.quarantine_release(S.STARTING, failed, ()) is None
