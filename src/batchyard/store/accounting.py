"""Bookkeeping both stores apply alike: consumable-resource counts as jobs enter and leave
STARTING/RUNNING, the commit guard against over-allocation, and share-usage accruals.

Mechanical rules over domain objects; what to place and when is the planner's decision.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, MutableMapping

from batchyard.domain.model import ConsumableResource, Job, ShareUsage
from batchyard.scheduling import fairshare
from batchyard.scheduling.snapshot import UsageAccrual


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
