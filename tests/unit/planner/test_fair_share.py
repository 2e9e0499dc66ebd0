"""plan() on fair-share queues (docs/aws-behaviour.md#fair-share), on hand-built snapshots: the
order between shares, weights, computeReservation, order within a share, a job that does not
fit, and front_of_queue as the planner's order.

Expected orders and amounts are worked out by hand (or with math.exp) in each test, not with
the planner's own helpers.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    Document,
    JobStatus,
    ShareUsage,
)
from batchyard.scheduling import fairshare
from batchyard.scheduling.ordering import front_of_queue
from batchyard.scheduling.planner import plan
from batchyard.scheduling.snapshot import Plan, Snapshot
from tests.builders import (
    NOW,
    a_compute_environment,
    a_fair_policy,
    a_fair_queue,
    a_fair_snapshot,
    a_job,
    a_queue,
    a_running_job,
    a_share_job,
    a_time_limit,
    holding,
    needing,
)
from tests.unit.planner.plans import WINDOW, update_of

S = JobStatus


def started_shares(result: Plan) -> list[str | None]:
    """The share of each job placed, in placement order."""
    updates = {job.job_id: job for job in result.updates}
    return [updates[job_id].share_identifier for job_id in result.starts]


def order_of(snapshot: Snapshot, queue: str = "fair", limit: int = 100) -> list[str]:
    found = next(q for q in snapshot.job_queues if q.name == queue)
    return [job.job_id for job in front_of_queue(snapshot, found, NOW, limit)]


# -- order between shares ----------------------------------------------------------------------


def test_the_share_with_the_lowest_past_usage_goes_first() -> None:
    a, b = a_share_job("A"), a_share_job("B")
    snapshot = a_fair_snapshot(
        [a, b],
        compute_environments=[a_compute_environment(max_vcpus=1)],
        usage={"A": 5.0, "B": 0.5},
    )
    assert plan(snapshot, NOW).starts == (b.job_id,)  # A was submitted first but used more


def test_past_usage_is_decayed_to_now() -> None:
    # A's 5 vCPUs of usage was valued two windows ago: 5/e^2 = 0.68 < B's fresh 1.0.
    heads = [a_share_job("B"), a_share_job("A")]
    snapshot = a_fair_snapshot(heads, compute_environments=[a_compute_environment(max_vcpus=1)])
    old = {
        "A": ShareUsage("fair", "A", 5.0, NOW - 2 * WINDOW),
        "B": ShareUsage("fair", "B", 1.0, NOW),
    }
    result = plan(replace(snapshot, share_usage={"fair": old}), NOW)
    assert started_shares(result) == ["A"]
    newer = {**old, "A": ShareUsage("fair", "A", 5.0, NOW - WINDOW)}  # 5/e = 1.84 > 1.0
    assert started_shares(plan(replace(snapshot, share_usage={"fair": newer}), NOW)) == ["B"]


def test_jobs_a_share_holds_count_in_full_so_one_round_balances_placements() -> None:
    # A holds 2 vCPUs; 6 free: B takes two to catch up, then they alternate (ties: run order).
    heads = [a_share_job("A") for _ in range(4)] + [a_share_job("B") for _ in range(4)]
    snapshot = a_fair_snapshot(
        heads,
        compute_environments=[a_compute_environment(max_vcpus=8)],
        active=[holding("A", 2)],
    )
    assert started_shares(plan(snapshot, NOW)) == ["B", "B", "A", "B", "A", "B"]


def test_running_attempts_add_their_decayed_usage() -> None:
    # Both hold 1 vCPU; A's attempt has run for a window (usage 1 - 1/e), B's just started.
    heads = [a_share_job("A"), a_share_job("B")]
    snapshot = a_fair_snapshot(
        heads,
        compute_environments=[a_compute_environment(max_vcpus=3)],
        active=[holding("A", 1, placed_at=NOW - WINDOW), holding("B", 1, placed_at=NOW)],
    )
    assert started_shares(plan(snapshot, NOW)) == ["B"]


def test_equal_usage_goes_to_the_share_whose_next_job_is_earliest() -> None:
    b = a_share_job("B")
    a = a_share_job("A")
    snapshot = a_fair_snapshot([a, b], compute_environments=[a_compute_environment(max_vcpus=1)])
    assert plan(snapshot, NOW).starts == (b.job_id,)


def test_job_size_counts_in_usage_so_vcpus_are_shared_equally() -> None:
    # A's jobs take 1 vCPU, B's 2: with 8 vCPUs free each share gets 4 vCPUs.
    heads = [a_share_job("A", 1) for _ in range(6)] + [a_share_job("B", 2) for _ in range(6)]
    snapshot = a_fair_snapshot(heads, compute_environments=[a_compute_environment(max_vcpus=8)])
    assert started_shares(plan(snapshot, NOW)) == ["A", "B", "A", "A", "B", "A"]


# -- weights -----------------------------------------------------------------------------------


def test_a_lower_weight_factor_gets_more_capacity() -> None:
    # B weighs 0.5: each B vCPU adds half of what an A vCPU adds, so B gets two jobs per A job.
    policy = a_fair_policy(shareDistribution=[{"shareIdentifier": "B", "weightFactor": 0.5}])
    heads = [a_share_job("A") for _ in range(6)] + [a_share_job("B") for _ in range(6)]
    snapshot = a_fair_snapshot(
        heads, policy=policy, compute_environments=[a_compute_environment(max_vcpus=6)]
    )
    assert started_shares(plan(snapshot, NOW)) == ["A", "B", "B", "A", "B", "B"]


def test_a_weight_scales_past_usage_too() -> None:
    # A's past usage is 3, B's 5; B weighs 0.5 so B's usage counts 2.5: B goes first.
    policy = a_fair_policy(shareDistribution=[{"shareIdentifier": "B", "weightFactor": 0.5}])
    heads = [a_share_job("A"), a_share_job("B")]
    snapshot = a_fair_snapshot(
        heads,
        policy=policy,
        compute_environments=[a_compute_environment(max_vcpus=1)],
        usage={"A": 3.0, "B": 5.0},
    )
    assert started_shares(plan(snapshot, NOW)) == ["B"]


def test_a_prefix_group_behaves_like_one_share() -> None:
    # team1 and team2 match "team*" (weight 1): each weighs 2, so together they get what solo
    # gets alone.
    policy = a_fair_policy(shareDistribution=[{"shareIdentifier": "team*", "weightFactor": 1.0}])
    heads = [a_share_job(share) for share in ("solo", "team1", "team2") for _ in range(6)]
    snapshot = a_fair_snapshot(
        heads, policy=policy, compute_environments=[a_compute_environment(max_vcpus=8)]
    )
    shares = started_shares(plan(snapshot, NOW))
    assert shares.count("solo") == 4
    assert shares.count("team1") == 2
    assert shares.count("team2") == 2


def test_share_weights() -> None:
    policy: Document = {
        "shareDistribution": [
            {"shareIdentifier": "gold", "weightFactor": 0.25},
            {"shareIdentifier": "team*", "weightFactor": 0.5},
            {"shareIdentifier": "lab*"},
        ]
    }
    shares = ["gold", "team1", "team2", "lab1", "other", "teams"]
    # Only active shares count towards a group: team3 is idle, "teams" matches "team*".
    active = {"gold", "team1", "team2", "lab1", "teams"}
    weights = fairshare.share_weights(policy, shares, active)
    assert weights == {
        "gold": 0.25,
        "team1": 1.5,
        "team2": 1.5,
        "teams": 1.5,
        "lab1": 1.0,
        "other": 1.0,
    }
    assert fairshare.share_weights(None, ["x"], ["x"]) == {"x": 1.0}


# -- computeReservation ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reservation", "fractions"),
    [(50, (0.5, 0.75, 0.875)), (25, (0.75, 0.9375, 0.984375)), (0, (1.0, 1.0, 1.0))],
)
def test_usable_fraction_follows_the_reservation_formula(
    reservation: int, fractions: tuple[float, float, float]
) -> None:
    for active, fraction in enumerate(fractions, start=1):
        assert fairshare.usable_fraction(reservation, active) == pytest.approx(fraction)


def test_compute_reservation_keeps_capacity_for_shares_not_yet_active() -> None:
    # 75 % reserved with one active share: 25 % of 64 vCPUs usable; two: 43.75 %; three:
    # 57.8125 % (37 vCPUs).
    policy = a_fair_policy(computeReservation=75)
    ce = a_compute_environment(max_vcpus=64)
    a_heads = [a_share_job("A") for _ in range(40)]
    first = plan(a_fair_snapshot(a_heads, policy=policy, compute_environments=[ce]), NOW)
    assert len(first.starts) == 16
    assert {job.job_id for job in first.updates} == set(first.starts)  # the rest just wait

    running_a = [holding("A", 1) for _ in range(16)]
    b_heads = [a_share_job("B") for _ in range(40)]
    second = plan(
        a_fair_snapshot(
            a_heads[16:] + b_heads, policy=policy, compute_environments=[ce], active=running_a
        ),
        NOW,
    )
    assert len(second.starts) == 28 - 16

    running = running_a + [holding("B", 1) for _ in range(12)]
    c_heads = [a_share_job("C") for _ in range(40)]
    third = plan(
        a_fair_snapshot(
            a_heads[16:] + b_heads[12:] + c_heads,
            policy=policy,
            compute_environments=[ce],
            active=running,
        ),
        NOW,
    )
    assert len(third.starts) == 37 - 28
    assert started_shares(third)[:3] == ["C", "C", "C"]  # the newcomer's usage is lowest


def test_a_share_with_running_jobs_only_is_active_too() -> None:
    # A holds 8 vCPUs and has nothing waiting; B arrives: two active shares, 43.75 % of 32 =
    # 14 vCPUs usable, so B gets 6.
    policy = a_fair_policy(computeReservation=75)
    snapshot = a_fair_snapshot(
        [a_share_job("B") for _ in range(10)],
        policy=policy,
        compute_environments=[a_compute_environment(max_vcpus=32)],
        active=[holding("A", 8)],
    )
    assert len(plan(snapshot, NOW).starts) == 6


def test_a_job_without_a_share_holds_the_queues_capacity_but_is_no_share() -> None:
    # A job placed before its queue had a scheduling policy has no share. Its 4 vCPUs count
    # against the queue's usable capacity, but it makes no share active: one active share (B),
    # 25 % of 32 = 8 vCPUs usable, 4 held, so B gets 4. (Counted as a share: two active,
    # 14 usable, B would get 10; not counted at all: B would get 8.)
    shareless = a_running_job("run-0", job_queue="fair", resources=needing(4))
    snapshot = a_fair_snapshot(
        [a_share_job("B") for _ in range(20)],
        policy=a_fair_policy(computeReservation=75),
        compute_environments=[a_compute_environment(max_vcpus=32)],
        active=[shareless],
    )
    assert started_shares(plan(snapshot, NOW)) == ["B"] * 4


def test_jobs_of_another_queue_hold_none_of_this_queues_reservation() -> None:
    # A FIFO queue's job holds 4 of the compute environment's 32 vCPUs: that leaves room, and
    # the fair queue's 25 % (one active share, B) counts only its own jobs: B gets 8.
    other = a_running_job("run-0", job_queue="high", resources=needing(4))
    snapshot = a_fair_snapshot(
        [a_share_job("B") for _ in range(20)],
        policy=a_fair_policy(computeReservation=75),
        queues=[a_fair_queue(), a_queue("high")],
        compute_environments=[a_compute_environment(max_vcpus=32)],
        active=[other],
    )
    assert started_shares(plan(snapshot, NOW)) == ["B"] * 8


def test_no_reservation_without_a_vcpu_cap() -> None:
    policy = a_fair_policy(computeReservation=75)
    snapshot = a_fair_snapshot(
        [a_share_job("A") for _ in range(5)],
        policy=policy,
        compute_environments=[a_compute_environment(max_vcpus=None)],
    )
    assert len(plan(snapshot, NOW).starts) == 5


# -- within a share ----------------------------------------------------------------------------


def test_scheduling_priority_orders_jobs_within_a_share() -> None:
    low = a_share_job("A", scheduling_priority=1)
    high = a_share_job("A", scheduling_priority=9)
    middle = a_share_job("A", scheduling_priority=5)
    unset = a_share_job("A")
    tie = a_share_job("A", scheduling_priority=5)
    snapshot = a_fair_snapshot([low, high, middle, unset, tie])
    expected = [high.job_id, middle.job_id, tie.job_id, low.job_id]
    assert list(plan(snapshot, NOW).starts) == expected
    assert order_of(snapshot) == [*expected, unset.job_id]


def test_scheduling_priority_does_not_act_across_shares() -> None:
    a = a_share_job("A", scheduling_priority=0)
    b = a_share_job("B", scheduling_priority=9999)
    snapshot = a_fair_snapshot(
        [a, b], compute_environments=[a_compute_environment(max_vcpus=1)], usage={"B": 1.0}
    )
    assert plan(snapshot, NOW).starts == (a.job_id,)


# -- a job that does not fit -------------------------------------------------------------------


def test_placement_stops_at_the_first_job_that_does_not_fit() -> None:
    # B's 4-vCPU job is next (lowest usage) but only 3 are free: A's 1-vCPU job behind it waits.
    big = a_share_job("B", 4)
    small = a_share_job("A", 1)
    snapshot = a_fair_snapshot([big, small], active=[holding("A", 1)], usage={"A": 1.0})
    result = plan(snapshot, NOW)
    assert result.starts == ()
    assert order_of(snapshot) == [big.job_id, small.job_id]


def test_a_job_that_can_never_fit_gets_its_blocked_reason_and_time_limit_action() -> None:
    too_big = a_share_job("A", 8)
    behind = a_share_job("B", 1)
    queue = a_fair_queue(
        time_limits=[a_time_limit("MISCONFIGURATION:COMPUTE_ENVIRONMENT_MAX_RESOURCE")]
    )
    blocked = plan(a_fair_snapshot([too_big, behind], queues=[queue]), NOW)
    assert (
        update_of(blocked, too_big.job_id).status_reason
        == lifecycle.COMPUTE_ENVIRONMENT_MAX_RESOURCE
    )
    assert blocked.starts == ()
    assert blocked.next_wakeup == NOW + 600_000

    stuck = replace(
        too_big,
        status_reason=lifecycle.COMPUTE_ENVIRONMENT_MAX_RESOURCE,
        blocked_since=NOW - 600_000,
    )
    cancelled = plan(a_fair_snapshot([stuck, behind], queues=[queue]), NOW)
    assert update_of(cancelled, too_big.job_id).status is S.FAILED
    assert cancelled.starts == (behind.job_id,)  # the next job became the head


def test_a_pending_cancel_is_applied_where_it_stands_and_weighs_nothing() -> None:
    # B's first head has a cancel pending and is the earliest job: B's turn cancels it and
    # places B's next job in its place; then A (usage 0 against B's 1).
    cancelled = a_share_job("B", cancel_reason="user asked")
    a = a_share_job("A")
    b = a_share_job("B")
    b2 = a_share_job("B")
    snapshot = a_fair_snapshot(
        [cancelled, a, b, b2], compute_environments=[a_compute_environment(max_vcpus=2)]
    )
    result = plan(snapshot, NOW)
    assert update_of(result, cancelled.job_id).status is S.FAILED
    assert result.starts == (b.job_id, a.job_id)
    assert order_of(snapshot) == [b.job_id, a.job_id, b2.job_id]


# -- front_of_queue is the planner's order -----------------------------------------------------


def test_front_of_queue_is_the_order_jobs_start_in() -> None:
    policy = a_fair_policy(shareDistribution=[{"shareIdentifier": "B", "weightFactor": 0.5}])
    heads = [
        a_share_job(share, vcpus, scheduling_priority=priority)
        for share, vcpus, priority in [
            ("A", 1, 0), ("B", 2, 0), ("C", 1, 3), ("A", 2, 7), ("B", 1, 1), ("C", 1, 0),
            ("A", 1, 1), ("B", 1, 0), ("C", 2, 0),
        ]
    ]  # fmt: skip
    snapshot = a_fair_snapshot(
        heads,
        policy=policy,
        compute_environments=[a_compute_environment(max_vcpus=64)],
        active=[holding("C", 1)],
        usage={"A": 0.4, "B": 0.9},
    )
    order = order_of(snapshot)
    assert list(plan(snapshot, NOW).starts) == order
    assert len(order) == len(heads)
    assert order_of(snapshot, limit=4) == order[:4]


def test_front_of_queue_of_a_fifo_queue_is_run_order() -> None:
    jobs = [a_job("job-3"), a_job("job-1"), a_job("job-2", run_order=-5)]
    queue = a_queue("high")
    snapshot = a_fair_snapshot(queues=[queue], fifo=jobs)
    assert order_of(snapshot, "high") == ["job-2", "job-1", "job-3"]
    assert order_of(snapshot, "high", limit=2) == ["job-2", "job-1"]
