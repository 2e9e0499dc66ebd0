"""Reading fewer RUNNABLE heads per queue never changes a plan unless the planner says so.

The dispatcher reads a few heads of each queue every round (how many follows what the queue's
last rounds took) and reads a queue again, four times as many up to the snapshot limit, when
heads_taken() says the plan went past the last head it was given.
"""

from __future__ import annotations

from collections.abc import Callable

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchyard.scheduling.planner import heads_taken, plan
from tests.builders import NOW, a_job, a_running_job, a_snapshot, needing
from tests.unit.planner.plans import cut, cut_short
from tests.unit.planner.strategies import Case, cases


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), limit=st.integers(1, 5))
def test_a_plan_on_fewer_heads_is_the_same_unless_every_head_was_used(
    case: Case, limit: int
) -> None:
    fewer = cut(case.snapshot, limit)
    decided = plan(fewer, case.now)
    if not cut_short(fewer, decided, limit):
        assert decided == plan(case.snapshot, case.now)


def test_every_head_used_is_reported_only_when_the_read_was_cut() -> None:
    # Two placeable heads and room for both: a read of one head uses all it was given.
    heads = (a_job("job-1"), a_job("job-2"))
    full = a_snapshot(runnable=heads)  # ce-a: maxvCpus 4
    one = cut(full, 1)
    decided = plan(one, NOW)
    assert decided.starts == ("job-1",)
    assert cut_short(one, decided, 1)
    decided = plan(full, NOW)
    assert decided.starts == ("job-1", "job-2")
    assert cut_short(full, decided, 2)
    assert not cut_short(full, decided, 3)  # fewer than read: all there are

    # No room: placement stops at the head, so more heads would change nothing.
    blocked = cut(a_snapshot(runnable=heads, active=[a_running_job(resources=needing(4))]), 1)
    decided = plan(blocked, NOW)
    assert decided.starts == ()
    assert not cut_short(blocked, decided, 1)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases(), data=st.data())
def test_a_plan_on_fewer_heads_of_some_queues_is_the_same_unless_one_was_cut_short(
    case: Case, data: st.DataObject
) -> None:
    limits = {
        name: data.draw(st.integers(1, 5), label=name) for name in sorted(case.snapshot.runnable)
    }
    fewer = cut(case.snapshot, limits)
    decided = plan(fewer, case.now)
    if not cut_short(fewer, decided, limits):
        assert decided == plan(case.snapshot, case.now)


def test_heads_taken_counts_each_queues_placements_and_says_which_read_was_cut() -> None:
    heads = (a_job("job-1"), a_job("job-2"), a_job("job-3"))
    snapshot = cut(a_snapshot(runnable=heads), 2)  # ce-a: maxvCpus 4, room for all
    decided = plan(snapshot, NOW)
    read: Callable[[str], int] = lambda _: 2  # noqa: E731
    assert heads_taken(snapshot, decided, read) == {"high": (2, True)}
    whole = a_snapshot(runnable=heads)
    decided = plan(whole, NOW)
    assert heads_taken(whole, decided, lambda _: 4) == {"high": (3, False)}
