"""plan() on fair-share queues and consumable resources, on hand-built snapshots
(docs/aws-behaviour.md#fair-share, #consumable-resources).

Expected orders and amounts are worked out by hand (or with math.exp) in each test, not with
the planner's own helpers.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from batchyard.domain import lifecycle
from batchyard.domain.model import (
    ComputeEnvironment,
    ConsumableRequirement,
    ConsumableResource,
    Document,
    Job,
    JobQueue,
    JobStatus,
    RetryStrategy,
    SchedulingPolicy,
    ShareUsage,
    StopCause,
)
from batchyard.scheduling import fairshare
from batchyard.scheduling.ordering import fifo_order, front_of_queue, share_order
from batchyard.scheduling.planner import plan
from batchyard.scheduling.snapshot import Plan, Snapshot, UsageAccrual
from tests.unit.test_planner import (
    ARN,
    NOW,
    a_compute_environment,
    a_job,
    a_queue,
    a_running_job,
    a_time_limit,
    an_attempt,
    an_ended_job,
    needing,
    update_of,
)
from tests.unit.test_runnable_reads import cut_short

S = JobStatus
POLICY_ARN = f"{ARN}:scheduling-policy/fair"
WINDOW = 600_000  # shareDecaySeconds absent: AWS's 600 s default


# -- fixtures ----------------------------------------------------------------------------------


def a_fair_queue(name: str = "fair", **fields: Any) -> JobQueue:
    return replace(a_queue(name, **fields), scheduling_policy_arn=POLICY_ARN)


def a_policy(**fairshare_policy: Any) -> SchedulingPolicy:
    return SchedulingPolicy(name="fair", arn=POLICY_ARN, fairshare_policy=fairshare_policy)


_seq = iter(range(1, 1_000_000))


def a_share_job(share: str, vcpus: float = 1, *, queue: str = "fair", **fields: Any) -> Job:
    """A RUNNABLE job of a share; ids and seqs grow in the order jobs are made."""
    seq = fields.pop("seq", next(_seq))
    job_id = fields.pop("job_id", f"{share}-{seq}")
    return a_job(
        job_id,
        job_queue=queue,
        share_identifier=share,
        resources=needing(vcpus),
        seq=seq,
        run_order=fields.pop("run_order", seq),
        **fields,
    )


def holding(share: str, vcpus: float, *, placed_at: int = NOW, queue: str = "fair") -> Job:
    """A RUNNING job of a share placed at `placed_at` (NOW: its running usage is still 0)."""
    seq = next(_seq)
    return a_running_job(
        f"run-{share}-{seq}",
        seq=seq,
        job_queue=queue,
        share_identifier=share,
        resources=needing(vcpus),
        attempts=(an_attempt(placed_at=placed_at, started_at=placed_at),),
    )


def a_fair_snapshot(
    heads: Iterable[Job] = (),
    *,
    policy: SchedulingPolicy | None = None,
    queues: Iterable[JobQueue] = (),
    compute_environments: Iterable[ComputeEnvironment] = (),
    active: Iterable[Job] = (),
    to_evaluate: Iterable[Job] = (),
    usage: Mapping[str, float] | None = None,
    consumables: Iterable[ConsumableResource] = (),
    fifo: Iterable[Job] = (),
) -> Snapshot:
    """Heads of fair-share queues go per share; `fifo` jobs to their FIFO queue's heads."""
    by_share: dict[str, dict[str, list[Job]]] = {}
    for job in heads:
        assert job.share_identifier is not None
        by_share.setdefault(job.job_queue, {}).setdefault(job.share_identifier, []).append(job)
    runnable: dict[str, list[Job]] = {}
    for job in fifo:
        runnable.setdefault(job.job_queue, []).append(job)
    policy = policy or a_policy()
    ces = tuple(compute_environments) or (a_compute_environment(max_vcpus=4),)
    return Snapshot(
        compute_environments={ce.name: ce for ce in ces},
        job_queues=tuple(queues) or (a_fair_queue(),),
        scheduling_policies={policy.arn: policy},
        active=tuple(active),
        runnable={name: tuple(jobs) for name, jobs in runnable.items()},
        runnable_by_share={
            queue: {share: tuple(jobs) for share, jobs in shares.items()}
            for queue, shares in by_share.items()
        },
        share_usage={
            "fair": {
                share: ShareUsage("fair", share, value=value, at=NOW)
                for share, value in (usage or {}).items()
            }
        },
        consumable_resources={resource.name: resource for resource in consumables},
        to_evaluate=tuple(to_evaluate),
    )


def a_licence(total: int, in_use: int = 0, name: str = "licence") -> ConsumableResource:
    return ConsumableResource(
        name=name,
        arn=f"{ARN}:consumable-resource/{name}",
        resource_type="REPLENISHABLE",
        total_quantity=total,
        in_use_quantity=in_use,
    )


def requiring(quantity: int, name: str = "licence") -> tuple[ConsumableRequirement, ...]:
    return (ConsumableRequirement(resource=name, quantity=quantity),)


def an_exited_job(share: str, vcpus: float, placed_at: int, stopped_at: int) -> Job:
    """A RUNNING job of the fair queue whose attempt exited 0 (reported, not yet settled)."""
    attempt = an_attempt(
        placed_at=placed_at,
        started_at=placed_at,
        stopped_at=stopped_at,
        exit_code=0,
        status_reason=lifecycle.ESSENTIAL_CONTAINER_EXITED,
    )
    return a_running_job(
        job_queue="fair", share_identifier=share, resources=needing(vcpus), attempts=(attempt,)
    )


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
    policy = a_policy(shareDistribution=[{"shareIdentifier": "B", "weightFactor": 0.5}])
    heads = [a_share_job("A") for _ in range(6)] + [a_share_job("B") for _ in range(6)]
    snapshot = a_fair_snapshot(
        heads, policy=policy, compute_environments=[a_compute_environment(max_vcpus=6)]
    )
    assert started_shares(plan(snapshot, NOW)) == ["A", "B", "B", "A", "B", "B"]


def test_a_weight_scales_past_usage_too() -> None:
    # A's past usage is 3, B's 5; B weighs 0.5 so B's usage counts 2.5: B goes first.
    policy = a_policy(shareDistribution=[{"shareIdentifier": "B", "weightFactor": 0.5}])
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
    policy = a_policy(shareDistribution=[{"shareIdentifier": "team*", "weightFactor": 1.0}])
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
    policy = a_policy(computeReservation=75)
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
    policy = a_policy(computeReservation=75)
    snapshot = a_fair_snapshot(
        [a_share_job("B") for _ in range(10)],
        policy=policy,
        compute_environments=[a_compute_environment(max_vcpus=32)],
        active=[holding("A", 8)],
    )
    assert len(plan(snapshot, NOW).starts) == 6


def test_no_reservation_without_a_vcpu_cap() -> None:
    policy = a_policy(computeReservation=75)
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
    policy = a_policy(shareDistribution=[{"shareIdentifier": "B", "weightFactor": 0.5}])
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


# -- consumable resources ----------------------------------------------------------------------


def test_a_fifo_job_waits_at_the_head_until_its_resource_is_available() -> None:
    jobs = [
        a_job("job-1", consumable_resources=requiring(2)),
        a_job("job-2", consumable_resources=requiring(2)),
        a_job("job-3"),  # needs nothing, but FIFO: waits behind job-2
    ]
    snapshot = a_fair_snapshot(queues=[a_queue("high")], fifo=jobs, consumables=[a_licence(5, 2)])
    result = plan(snapshot, NOW)
    assert result.starts == ("job-1",)
    assert all(job.job_id == "job-1" for job in result.updates)  # no blocked reason

    more = replace(snapshot, consumable_resources={"licence": a_licence(5, 1)})
    assert plan(more, NOW).starts == ("job-1", "job-2", "job-3")


def test_a_job_needing_an_unknown_resource_waits() -> None:
    snapshot = a_fair_snapshot(
        queues=[a_queue("high")], fifo=[a_job("job-1", consumable_resources=requiring(1, "gone"))]
    )
    assert plan(snapshot, NOW).updates == ()


def test_requirements_of_one_resource_add_up() -> None:
    twice = (ConsumableRequirement("licence", 2), ConsumableRequirement("licence", 2))
    job = a_job("job-1", consumable_resources=twice)
    snapshot = a_fair_snapshot(queues=[a_queue("high")], fifo=[job], consumables=[a_licence(3)])
    assert plan(snapshot, NOW).starts == ()
    enough = replace(snapshot, consumable_resources={"licence": a_licence(4)})
    assert plan(enough, NOW).starts == ("job-1",)


def test_queues_sharing_a_resource_never_take_more_than_is_available() -> None:
    high = a_queue("high", priority=10)
    low = a_queue("low", priority=1)
    fifo = [
        a_job("job-1", consumable_resources=requiring(2)),
        a_job("job-2", job_queue="low", consumable_resources=requiring(2)),
        a_job("job-3", job_queue="low", consumable_resources=requiring(1)),
    ]
    snapshot = a_fair_snapshot(
        queues=[high, low],
        fifo=fifo,
        consumables=[a_licence(3)],
        compute_environments=[a_compute_environment(max_vcpus=16)],
    )
    assert plan(snapshot, NOW).starts == ("job-1",)  # job-2 blocks low's head


def test_a_fair_share_job_waits_for_its_resource_at_the_head() -> None:
    first = a_share_job("A", consumable_resources=requiring(1))
    second = a_share_job("B", consumable_resources=requiring(1))
    third = a_share_job("A")
    snapshot = a_fair_snapshot([first, second, third], consumables=[a_licence(1)])
    # Order A, B, A: B's job is out of licences, so A's second job behind it waits too.
    assert plan(snapshot, NOW).starts == (first.job_id,)


def test_jobs_ended_this_round_release_nothing_the_store_did_not_release() -> None:
    # Available quantity is the store's (total - in use): a job that ends in this round gives
    # its quantity back only when the store applies its update, i.e. next round.
    ended = an_ended_job(0, consumable_resources=requiring(1))
    waiting = a_job("job-2", consumable_resources=requiring(1))
    snapshot = a_fair_snapshot(
        queues=[a_queue("high")],
        fifo=[waiting],
        active=[ended],
        to_evaluate=[ended],
        consumables=[a_licence(1, in_use=1)],
    )
    result = plan(snapshot, NOW)
    assert update_of(result, "run-1").status is S.SUCCEEDED
    assert result.starts == ()


# -- accruals ----------------------------------------------------------------------------------


def test_an_attempt_that_ended_accrues_its_decayed_usage() -> None:
    placed, stopped = NOW - WINDOW, NOW - WINDOW // 2
    ended = an_exited_job("A", 4, placed, stopped)
    result = plan(a_fair_snapshot(active=[ended], to_evaluate=[ended]), NOW)
    # 4 vCPUs for half a window, valued at its end, then decayed over the half window since.
    amount = 4 * (1 - math.exp(-0.5)) * math.exp(-0.5)
    (accrual,) = result.accruals
    assert accrual == UsageAccrual(
        job_id="run-1",
        job_queue="fair",
        share_identifier="A",
        amount=pytest.approx(amount),  # type: ignore[arg-type]
        at=NOW,
        window_ms=WINDOW,
    )


def test_the_policys_decay_window_is_used() -> None:
    placed = NOW - 10_000
    ended = an_exited_job("A", 2, placed, NOW)
    policy = a_policy(shareDecaySeconds=10)
    result = plan(a_fair_snapshot(policy=policy, active=[ended], to_evaluate=[ended]), NOW)
    (accrual,) = result.accruals
    assert accrual.window_ms == 10_000
    assert accrual.amount == pytest.approx(2 * (1 - math.exp(-1)))


def test_a_retried_attempt_accrues_too() -> None:
    ended = an_ended_job(
        1,
        job_queue="fair",
        share_identifier="A",
        retry_strategy=RetryStrategy(attempts=2),
    )
    result = plan(a_fair_snapshot(active=[ended], to_evaluate=[ended]), NOW)
    assert update_of(result, "run-1").status is S.RUNNABLE
    assert [a.job_id for a in result.accruals] == ["run-1"]


def test_only_ended_attempts_of_fair_share_queues_accrue() -> None:
    running = a_running_job("run-2", job_queue="fair", share_identifier="A")
    stopping = a_running_job(
        "run-3", job_queue="fair", share_identifier="A", terminate_reason="abort"
    )
    fifo_ended = an_ended_job(0, job_id="run-4", job_queue="high")
    snapshot = a_fair_snapshot(
        queues=[a_fair_queue(), a_queue("high")],
        active=[running, stopping, fifo_ended],
        to_evaluate=[running, stopping, fifo_ended],
    )
    result = plan(snapshot, NOW)
    assert update_of(result, "run-3").stop_cause is StopCause.TERMINATED  # not ended yet
    assert update_of(result, "run-4").status is S.SUCCEEDED
    assert result.accruals == ()


# -- bounded reads of heads --------------------------------------------------------------------


def test_every_head_used_covers_the_heads_of_each_share() -> None:
    a1, a2 = a_share_job("A"), a_share_job("A")
    b1 = a_share_job("B")
    snapshot = a_fair_snapshot([a1, a2, b1])  # 4 vCPUs: all three placed
    decided = plan(snapshot, NOW)
    assert len(decided.starts) == 3
    assert cut_short(snapshot, decided, 2)  # A's two heads were both used
    assert not cut_short(snapshot, decided, 3)

    full = a_fair_snapshot([a1, a2, b1], active=[holding("C", 4)])  # no room
    assert not cut_short(full, plan(full, NOW), 1)


# -- properties over random snapshots ----------------------------------------------------------
# Fair-share and FIFO queues on shared compute environments and consumable resources.

SHARES = ("A", "B", "t1", "t2")
RESOURCES = ("r1", "r2", "gone")  # "gone" is required by some jobs but does not exist

policies = st.fixed_dictionaries(
    {
        "computeReservation": st.sampled_from([0, 0, 50, 75]),
        "shareDecaySeconds": st.sampled_from([0, 60, 3600]),
        "shareDistribution": st.sampled_from(
            [
                [],
                [{"shareIdentifier": "B", "weightFactor": 0.5}],
                [{"shareIdentifier": "t*", "weightFactor": 1.0}],
                [
                    {"shareIdentifier": "A", "weightFactor": 2.0},
                    {"shareIdentifier": "t*", "weightFactor": 0.25},
                ],
            ]
        ),
    }
)
requirement_lists = st.lists(
    st.builds(
        ConsumableRequirement,
        resource=st.sampled_from(RESOURCES[:2] * 4 + RESOURCES[2:]),
        quantity=st.integers(1, 3),
    ),
    max_size=2,
).map(tuple)
job_vcpus = st.sampled_from([0.5, 1.0, 1.0, 2.0, 4.0, 9.0])
caps = st.sampled_from([None, 2, 4, 8, 16])


@dataclass(frozen=True)
class FairCase:
    snapshot: Snapshot
    now: int


@st.composite
def fair_cases(draw: st.DrawFn) -> FairCase:
    now = NOW
    ces = [
        a_compute_environment(f"ce-{i}", max_vcpus=draw(caps))
        for i in range(draw(st.integers(1, 2)))
    ]
    ce_names = [ce.name for ce in ces]
    queues = [
        a_queue("fifo", priority=draw(st.integers(0, 2)), compute_environments=ce_names),
        a_fair_queue("fair", priority=draw(st.integers(0, 2)), compute_environments=ce_names),
        a_fair_queue("fair2", priority=draw(st.integers(0, 2)), compute_environments=ce_names[:1]),
    ]
    fifo_queue, *fair_queues = queues
    policy = a_policy(**draw(policies))
    seq = iter(range(1, 10_000))

    def job(queue: str, status: JobStatus, share: str | None, **fields: Any) -> Job:
        number = next(seq)
        return a_job(
            f"job-{number}",
            status,
            seq=number,
            run_order=-number if draw(st.booleans()) else number,
            job_queue=queue,
            share_identifier=share,
            resources=needing(draw(job_vcpus)),
            consumable_resources=draw(requirement_lists),
            **fields,
        )

    fifo = [
        job("fifo", S.RUNNABLE, None, cancel_reason=draw(st.sampled_from([None] * 6 + ["x"])))
        for _ in range(draw(st.integers(0, 4)))
    ]
    heads: dict[str, dict[str, tuple[Job, ...]]] = {}
    for queue in fair_queues:
        for share in SHARES:
            jobs = tuple(
                job(
                    queue.name,
                    S.RUNNABLE,
                    share,
                    scheduling_priority=draw(st.sampled_from([None, 0, 5])),
                    cancel_reason=draw(st.sampled_from([None] * 6 + ["x"])),
                )
                for _ in range(draw(st.integers(0, 3)))
            )
            if jobs:
                heads.setdefault(queue.name, {})[share] = jobs
    active = []
    for _ in range(draw(st.integers(0, 5))):
        queue = draw(st.sampled_from(queues))
        holder = None if queue is fifo_queue else draw(st.sampled_from(SHARES))
        placed_at = now - draw(st.integers(0, 7_200_000))
        stopped_at = draw(st.sampled_from([None, None, now - 1, placed_at + 1]))
        attempt = an_attempt(
            placed_at=placed_at,
            started_at=placed_at,
            stopped_at=stopped_at,
            exit_code=None if stopped_at is None else draw(st.sampled_from([0, 1])),
            compute_environment=draw(st.sampled_from(ce_names)),
        )
        active.append(
            job(
                queue.name,
                draw(st.sampled_from([S.STARTING, S.RUNNING])),
                holder,
                attempts=(attempt,),
                compute_environment=attempt.compute_environment,
                retry_strategy=RetryStrategy(attempts=draw(st.integers(1, 2))),
            )
        )
    consumables = {
        name: a_licence(total, draw(st.integers(0, total)), name=name)
        for name in RESOURCES[:2]
        for total in [draw(st.integers(0, 4))]
    }
    usage = {
        queue.name: {
            share: ShareUsage(
                queue.name,
                share,
                draw(st.floats(0, 20, allow_nan=False)),
                now - draw(st.integers(0, 3_600_000)),
            )
            for share in draw(st.lists(st.sampled_from(SHARES), unique=True))
        }
        for queue in fair_queues
    }
    snapshot = Snapshot(
        compute_environments={ce.name: ce for ce in ces},
        job_queues=tuple(queues),
        scheduling_policies={policy.arn: policy},
        active=tuple(active),
        runnable={"fifo": tuple(fifo)},
        runnable_by_share=heads,
        share_usage=usage,
        consumable_resources=consumables,
        to_evaluate=tuple(active) if draw(st.booleans()) else (),
    )
    return FairCase(snapshot, now)


def _latest(result: Plan, job: Job) -> Job:
    return next((update for update in result.updates if update.job_id == job.job_id), job)


def _heads(snapshot: Snapshot) -> list[Job]:
    found = list(snapshot.runnable.get("fifo", ()))
    for shares in snapshot.runnable_by_share.values():
        for jobs in shares.values():
            found.extend(jobs)
    return found


def consumables_are_never_over_allocated(case: FairCase, result: Plan) -> None:
    taken: dict[str, int] = {}
    heads = {job.job_id: job for job in _heads(case.snapshot)}
    for job_id in result.starts:
        for requirement in heads[job_id].consumable_resources:
            taken[requirement.resource] = taken.get(requirement.resource, 0) + requirement.quantity
    for name, quantity in taken.items():
        assert name in case.snapshot.consumable_resources, name
        assert quantity <= case.snapshot.consumable_resources[name].available_quantity, name


def capacity_is_never_exceeded(case: FairCase, result: Plan) -> None:
    used: dict[str, float] = {}
    for job in case.snapshot.active:
        after = _latest(result, job)
        if after.status.is_active and after.compute_environment is not None:
            used[after.compute_environment] = used.get(after.compute_environment, 0) + (
                after.resources.vcpus
            )
    placed_on = set()
    for job_id in result.starts:
        placed = next(update for update in result.updates if update.job_id == job_id)
        assert placed.compute_environment is not None
        placed_on.add(placed.compute_environment)
        used[placed.compute_environment] = (
            used.get(placed.compute_environment, 0) + placed.resources.vcpus
        )
    for name in placed_on:
        cap = case.snapshot.compute_environments[name].max_vcpus
        assert cap is None or used[name] <= cap


def fair_share_queues_start_a_prefix_of_their_front(case: FairCase, result: Plan) -> None:
    """With nothing ending this round, each fair-share queue starts the first jobs of
    front_of_queue (no skipping ahead), within its compute reservation."""
    if case.snapshot.to_evaluate:
        return
    started = set(result.starts)
    for queue in case.snapshot.job_queues:
        if queue.scheduling_policy_arn is None:
            continue
        front = front_of_queue(case.snapshot, queue, case.now, 1000)
        placed = [job.job_id for job in front if job.job_id in started]
        assert placed == [job.job_id for job in front[: len(placed)]], queue.name
        policy = case.snapshot.scheduling_policies[POLICY_ARN].fairshare_policy or {}
        reservation = policy.get("computeReservation", 0)
        caps = [
            case.snapshot.compute_environments[n].max_vcpus for n in queue.compute_environment_names
        ]
        if not placed or not reservation or None in caps:
            continue
        shares = set(case.snapshot.runnable_by_share.get(queue.name, {})) | {
            job.share_identifier for job in case.snapshot.active if job.job_queue == queue.name
        }
        usable = sum(cap or 0 for cap in caps) * (1 - (reservation / 100) ** len(shares))
        held = sum(
            job.resources.vcpus
            for job in (*case.snapshot.active, *front)
            if job.job_queue == queue.name and _latest(result, job).status.is_active
        )
        assert held <= usable + 1e-9


def accruals_are_the_ended_attempts_of_fair_share_queues(case: FairCase, result: Plan) -> None:
    expected = {
        job.job_id
        for job in case.snapshot.active
        if job.job_queue != "fifo" and not _latest(result, job).status.is_active
    }
    assert {accrual.job_id for accrual in result.accruals} == expected
    for accrual in result.accruals:
        assert accrual.amount >= 0
        assert accrual.at == case.now


def cut_per_share(snapshot: Snapshot, limit: int) -> Snapshot:
    return replace(
        snapshot,
        runnable={name: fifo_order(jobs)[:limit] for name, jobs in snapshot.runnable.items()},
        runnable_by_share={
            queue: {share: share_order(jobs)[:limit] for share, jobs in shares.items()}
            for queue, shares in snapshot.runnable_by_share.items()
        },
    )


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=fair_cases(), limit=st.integers(1, 3))
def test_fair_share_and_consumable_properties_on_random_snapshots(
    case: FairCase, limit: int
) -> None:
    result = plan(case.snapshot, case.now)
    consumables_are_never_over_allocated(case, result)
    capacity_is_never_exceeded(case, result)
    fair_share_queues_start_a_prefix_of_their_front(case, result)
    accruals_are_the_ended_attempts_of_fair_share_queues(case, result)
    assert result == plan(case.snapshot, case.now)
    # Fewer heads per share change the plan only when the planner says it used them all.
    fewer = cut_per_share(case.snapshot, limit)
    decided = plan(fewer, case.now)
    if not cut_short(fewer, decided, limit):
        assert decided == result
