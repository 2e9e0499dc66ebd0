"""Reading fewer RUNNABLE heads per queue never changes a plan unless the planner says so.

The dispatcher reads a few heads per queue each round and reads again, up to the snapshot
limit, when used_every_runnable_head() says the plan used all it was given.
"""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchyard.scheduling.ordering import fifo_order
from batchyard.scheduling.planner import plan, used_every_runnable_head
from batchyard.scheduling.snapshot import Snapshot
from tests.unit.test_planner import NOW, a_job, a_running_job, a_snapshot, needing
from tests.unit.test_planner_properties import Case, cases


def cut(snapshot: Snapshot, limit: int) -> Snapshot:
    """The snapshot a store gives with runnable_per_queue=limit: the first heads in run order."""
    return replace(
        snapshot,
        runnable={name: fifo_order(heads)[:limit] for name, heads in snapshot.runnable.items()},
    )


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), limit=st.integers(1, 5))
def test_a_plan_on_fewer_heads_is_the_same_unless_every_head_was_used(
    case: Case, limit: int
) -> None:
    fewer = cut(case.snapshot, limit)
    decided = plan(fewer, case.now)
    if not used_every_runnable_head(fewer, decided, limit):
        assert decided == plan(case.snapshot, case.now)


def test_every_head_used_is_reported_only_when_the_read_was_cut() -> None:
    # Two placeable heads and room for both: a read of one head uses all it was given.
    heads = (a_job("job-1"), a_job("job-2"))
    full = a_snapshot(runnable=heads)  # ce-a: maxvCpus 4
    one = cut(full, 1)
    decided = plan(one, NOW)
    assert decided.starts == ("job-1",)
    assert used_every_runnable_head(one, decided, 1)
    decided = plan(full, NOW)
    assert decided.starts == ("job-1", "job-2")
    assert used_every_runnable_head(full, decided, 2)
    assert not used_every_runnable_head(full, decided, 3)  # fewer than read: all there are

    # No room: placement stops at the head, so more heads would change nothing.
    blocked = cut(a_snapshot(runnable=heads, active=[a_running_job(resources=needing(4))]), 1)
    decided = plan(blocked, NOW)
    assert decided.starts == ()
    assert not used_every_runnable_head(blocked, decided, 1)
