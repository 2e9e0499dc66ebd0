"""Consumable-resource accounting over any interleaving of placements, starts, exits, retries,
cancels and total updates, and the commit guard against over-allocation. For MemoryStore and
SqlStore alike."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchyard.domain.model import (
    ConsumableResource,
    Job,
    JobStatus,
)
from batchyard.scheduling.snapshot import Plan
from tests.builders import (
    a_complete_consumable_resource,
    a_submitted_job,
)
from tests.contract.store.steps import (
    AnyStore,
    needs,
    placed,
)

S = JobStatus


# -- consumable resources: any interleaving --------------------------------------------------------

_QUANTITIES = (1, 2, 3)
_step = st.one_of(
    st.tuples(st.just("place"), st.lists(st.integers(0, 5), min_size=1, max_size=4)),
    st.tuples(st.just("start"), st.integers(0, 5)),
    st.tuples(st.just("end"), st.integers(0, 5)),
    st.tuples(st.just("retry"), st.integers(0, 5)),
    st.tuples(st.just("cancel-children"), st.integers(0, 2)),
    st.tuples(st.sampled_from(["SET", "ADD", "REMOVE"]), st.integers(0, 6)),
)
_example = iter(range(1_000_000))


def _update_total(
    operation: str, quantity: int
) -> Callable[[ConsumableResource], ConsumableResource]:
    """UpdateConsumableResource's SET / ADD / REMOVE, as the service would mutate."""

    def update(current: ConsumableResource) -> ConsumableResource:
        value = {
            "SET": quantity,
            "ADD": current.total_quantity + quantity,
            "REMOVE": current.total_quantity - quantity,
        }[operation]
        if value < 0:
            raise ValueError("below 0")
        return replace(current, total_quantity=value)

    return update


def _end_if_active(status: JobStatus, job: Job) -> Job | None:
    """A job's exit (or retry) to `status`, if it is still active."""
    return replace(job, status=status) if job.status.is_active else None


def _cancel_active_child(index: int, child: Job) -> Job | None:
    """The child at array index `index`, back to RUNNABLE if it is still active."""
    return (
        replace(child, status=S.RUNNABLE)
        if child.array_index == index and child.status.is_active
        else None
    )


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(_step, min_size=1, max_size=30),
    kind=st.sampled_from(["REPLENISHABLE", "NON_REPLENISHABLE"]),
)
def test_in_use_matches_active_jobs_whatever_interleaves(
    store: AnyStore, steps: list[tuple[str, Any]], kind: str
) -> None:
    n = next(_example)
    name = f"r{n}"
    store.put_consumable_resource(
        a_complete_consumable_resource(name, 4, resource_type=kind), create=True
    )
    ids = [f"j{n}-{i}" for i in range(3)] + [f"p{n}:{i}" for i in range(3)]
    quantity = {job_id: _QUANTITIES[i % 3] for i, job_id in enumerate(ids)}
    store.insert_jobs(
        [
            *(
                a_submitted_job(
                    job_id,
                    status=S.RUNNABLE,
                    consumable_resources=needs(**{name: quantity[job_id]}),
                )
                for job_id in ids[:3]
            ),
            a_submitted_job(f"p{n}", array_size=3, status=S.PENDING),
            *(
                a_submitted_job(
                    job_id,
                    status=S.RUNNABLE,
                    array_parent_id=f"p{n}",
                    array_index=i,
                    consumable_resources=needs(**{name: quantity[job_id]}),
                )
                for i, job_id in enumerate(ids[3:])
            ),
        ]
    )
    total = 4
    for action, arg in steps:
        before = store.get_consumable_resource(name)
        assert before is not None
        if action == "place":
            chosen = [ids[i] for i in dict.fromkeys(arg)]
            current = {j.job_id: j for j in store.get_jobs(chosen)}
            updates = tuple(placed(current[i]) for i in chosen if current[i].status is S.RUNNABLE)
            applied = store.commit(Plan(updates=updates))
            # The guard, replayed: each applied take fitted what was left at its turn.
            available = before.available_quantity
            for update in updates:
                if update.job_id in applied:
                    assert quantity[update.job_id] <= available
                    available -= quantity[update.job_id]
                else:
                    assert quantity[update.job_id] > available
        elif action == "start":
            store.mutate_job(
                ids[arg], lambda j: replace(j, status=S.RUNNING) if j.status is S.STARTING else None
            )
        elif action in ("end", "retry"):
            status = S.SUCCEEDED if action == "end" else S.RUNNABLE
            store.mutate_jobs([(ids[arg], partial(_end_if_active, status))])
        elif action == "cancel-children":
            store.mutate_array_children(f"p{n}", partial(_cancel_active_child, arg))
        else:
            with contextlib.suppress(ValueError):
                store.mutate_consumable_resource(name, _update_total(action, arg))
        after = store.get_consumable_resource(name)
        assert after is not None
        jobs = store.get_jobs(ids)
        holding = sum(quantity[j.job_id] for j in jobs if j.status.is_active)
        assert after.in_use_quantity == holding
        if action in ("SET", "ADD", "REMOVE"):
            total = after.total_quantity
        elif kind == "NON_REPLENISHABLE":
            released = before.in_use_quantity - after.in_use_quantity
            total = max(0, total - max(0, released))
        assert after.total_quantity == total
