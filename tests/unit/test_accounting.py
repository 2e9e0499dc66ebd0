"""Consumable-resource counts as a job enters and leaves STARTING/RUNNING (store/accounting.py,
docs/aws-behaviour.md#consumable-resources): the rule both stores apply, on plain values."""

from __future__ import annotations

import pytest

from batchyard.domain.model import JobStatus
from batchyard.store.accounting import account
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
