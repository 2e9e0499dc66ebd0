"""plan() with consumable resources (docs/aws-behaviour.md#consumable-resources), the usage
accruals of ended attempts, and bounded reads of per-share heads.

Expected orders and amounts are worked out by hand (or with math.exp) in each test, not with
the planner's own helpers.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from batchyard.domain.model import (
    ConsumableRequirement,
    JobStatus,
    RetryStrategy,
    StopCause,
)
from batchyard.scheduling.planner import plan
from batchyard.scheduling.snapshot import UsageAccrual
from tests.builders import (
    NOW,
    a_compute_environment,
    a_consumable_resource,
    a_fair_policy,
    a_fair_queue,
    a_fair_snapshot,
    a_job,
    a_queue,
    a_running_job,
    a_share_job,
    an_ended_job,
    an_exited_job,
    holding,
    requiring,
)
from tests.unit.planner.plans import WINDOW, cut_short, update_of

S = JobStatus


# -- consumable resources ----------------------------------------------------------------------


def test_a_fifo_job_waits_at_the_head_until_its_resource_is_available() -> None:
    jobs = [
        a_job("job-1", consumable_resources=requiring(2)),
        a_job("job-2", consumable_resources=requiring(2)),
        a_job("job-3"),  # needs nothing, but FIFO: waits behind job-2
    ]
    snapshot = a_fair_snapshot(
        queues=[a_queue("high")],
        fifo=jobs,
        consumables=[a_consumable_resource("licence", 5, in_use=2)],
    )
    result = plan(snapshot, NOW)
    assert result.starts == ("job-1",)
    assert all(job.job_id == "job-1" for job in result.updates)  # no blocked reason

    more = replace(
        snapshot, consumable_resources={"licence": a_consumable_resource("licence", 5, in_use=1)}
    )
    assert plan(more, NOW).starts == ("job-1", "job-2", "job-3")


def test_a_job_needing_an_unknown_resource_waits() -> None:
    snapshot = a_fair_snapshot(
        queues=[a_queue("high")], fifo=[a_job("job-1", consumable_resources=requiring(1, "gone"))]
    )
    assert plan(snapshot, NOW).updates == ()


def test_requirements_of_one_resource_add_up() -> None:
    twice = (ConsumableRequirement("licence", 2), ConsumableRequirement("licence", 2))
    job = a_job("job-1", consumable_resources=twice)
    snapshot = a_fair_snapshot(
        queues=[a_queue("high")], fifo=[job], consumables=[a_consumable_resource("licence", 3)]
    )
    assert plan(snapshot, NOW).starts == ()
    enough = replace(
        snapshot, consumable_resources={"licence": a_consumable_resource("licence", 4)}
    )
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
        consumables=[a_consumable_resource("licence", 3)],
        compute_environments=[a_compute_environment(max_vcpus=16)],
    )
    assert plan(snapshot, NOW).starts == ("job-1",)  # job-2 blocks low's head


def test_a_fair_share_job_waits_for_its_resource_at_the_head() -> None:
    first = a_share_job("A", consumable_resources=requiring(1))
    second = a_share_job("B", consumable_resources=requiring(1))
    third = a_share_job("A")
    snapshot = a_fair_snapshot(
        [first, second, third], consumables=[a_consumable_resource("licence", 1)]
    )
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
        consumables=[a_consumable_resource("licence", 1, in_use=1)],
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
    policy = a_fair_policy(shareDecaySeconds=10)
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


def test_a_shared_job_whose_queue_is_now_fifo_accrues_nothing() -> None:
    # Its fair-share queue was deleted while it ran and a FIFO queue of the same name created:
    # the share it carries has no policy to accrue under.
    ended = an_exited_job("A", 2, NOW - 10_000, NOW)
    snapshot = a_fair_snapshot(queues=[a_queue("fair")], active=[ended], to_evaluate=[ended])
    result = plan(snapshot, NOW)
    assert update_of(result, "run-1").status is S.SUCCEEDED
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
