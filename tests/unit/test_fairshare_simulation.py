"""Fair-share scheduling measured over virtual time (docs/aws-behaviour.md#fair-share): the
real Dispatcher and planner on the memory store with the fake runtime, driven by
tests/simulation.py.

Each test states the figure AWS documents, the tolerance it allows and why.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

import pytest

from batchyard.domain.model import Document
from tests.simulation import T0, SchedulingWorld, opened

SECOND = 1000
HOUR = 3600 * SECOND


def simulate(
    max_vcpus: int,
    policy: Document | None,
    scenario: Callable[[SchedulingWorld], Awaitable[None]],
) -> None:
    async def main() -> None:
        async with opened(max_vcpus, policy) as world:
            await scenario(world)

    asyncio.run(main())


def staggered(count: int, base_ms: int, spread_ms: int) -> list[int]:
    """Durations spread over [base, base + spread) so that exits do not come in waves."""
    return [base_ms + (index * 7919 % 997) * spread_ms // 997 for index in range(count)]


def test_shares_of_equal_weight_hold_equal_vcpus_whatever_their_job_sizes() -> None:
    # A's jobs take 32 vCPUs, B's 64, on 256 vCPUs, both backlogged with long jobs (about an
    # hour; the decay window is the default 600 s). Steady state from hour 2 to hour 12: each
    # holds half the vCPUs, so A runs two jobs for each of B's. Tolerance 10 %: placements
    # are whole jobs and a B job needs two A jobs' room, so the split wobbles around 128/128.
    async def scenario(world: SchedulingWorld) -> None:
        for duration in staggered(80, 50 * 60 * SECOND, 20 * 60 * SECOND):
            world.submit("A", vcpus=32, duration_ms=duration)
        for duration in staggered(40, 50 * 60 * SECOND, 20 * 60 * SECOND):
            world.submit("B", vcpus=64, duration_ms=duration)
        await world.run_until(2 * HOUR)
        world.measure_from_now()
        await world.run_until(12 * HOUR)
        held, running = world.average_held(), world.average_jobs()
        print(f"equal weights: held {held}, jobs {running}")
        assert 0.9 <= held["A"] / held["B"] <= 1.1
        assert 1.8 <= running["A"] / running["B"] <= 2.2
        assert held["A"] + held["B"] >= 0.9 * 256  # and the capacity is used

    simulate(256, {}, scenario)


def test_a_share_with_half_the_weight_factor_holds_twice_the_vcpus() -> None:
    # weightFactor 0.5 for B against 1 for A, 8-vCPU jobs of about an hour on 96 vCPUs: B
    # holds 64, A 32. Tolerance 10 % (whole jobs: one job is 8 % of the capacity).
    policy = {"shareDistribution": [{"shareIdentifier": "B", "weightFactor": 0.5}]}

    async def scenario(world: SchedulingWorld) -> None:
        for share in ("A", "B"):
            for duration in staggered(120, 50 * 60 * SECOND, 20 * 60 * SECOND):
                world.submit(share, vcpus=8, duration_ms=duration)
        await world.run_until(2 * HOUR)
        world.measure_from_now()
        await world.run_until(12 * HOUR)
        held = world.average_held()
        print(f"weight 0.5 for B: held {held}")
        assert 1.8 <= held["B"] / held["A"] <= 2.2
        assert held["A"] + held["B"] >= 0.9 * 96

    simulate(96, policy, scenario)


def test_compute_reservation_keeps_capacity_back_for_shares_not_yet_active() -> None:
    # computeReservation 75 on 64 vCPUs: with 1, 2 and 3 active shares, what active shares may
    # hold together is 25 %, 43.75 % and 57.8125 % of maxvCpus: 16, 28 and 37 vCPUs. 1-vCPU
    # jobs that run until stopped make this exact: tolerance 0.
    async def scenario(world: SchedulingWorld) -> None:
        totals = []
        for share in ("A", "B", "C"):
            world.submit(share, count=64)
            await world.run_until(world.clock.now - T0 + 10 * SECOND)
            totals.append(sum(world.held().values()))
        print(f"computeReservation 75: held {totals} of 64")
        assert totals == [16, 28, 37]
        assert world.held() == {"A": 16, "B": 12, "C": 9}  # no preemption: A keeps its 16

    simulate(64, {"computeReservation": 75}, scenario)


def test_a_share_whose_jobs_finished_recovers_its_priority_over_the_decay_window() -> None:
    # Window W = 100 s. A runs 8 one-vCPU jobs for 10 W and finishes at t1: its usage is then
    # 8 (1 - e^-10) ~ 8 and decays by 1/e per W. B holds one vCPU throughout (usage held 1 +
    # running ~1 = 2). A 9-vCPU job of each share is submitted at t1 + x; only one fits: the
    # share with the lower usage starts first. A's usage falls below B's 2 at x = W ln 4 =
    # 1.386 W: B must win before, A after. Probes at 1.30 W and 1.47 W bracket the
    # crossover within 6 %.
    window = 100 * SECOND
    probes = [0.5, 1.0, 1.3, 1.47, 2.0, 3.0]

    async def scenario(world: SchedulingWorld) -> None:
        world.submit("A", count=8, duration_ms=10 * window)
        world.submit("B")
        await world.run_until(10 * window)
        assert world.held() == {"B": 1}
        t1 = world.clock.now

        # The store holds A's accrued usage, valued at t1.
        row = world.store.snapshot().share_usage["q"]["A"]
        assert row.at == t1
        assert row.value == pytest.approx(8 * (1 - math.exp(-10)), rel=1e-6)

        winners = []
        for x in probes:
            await world.run_until(t1 - T0 + int(x * window))
            # Submitted B first, so a tie would go to B: A must win on usage alone.
            b_probe = world.submit("B", vcpus=9, duration_ms=1)[0]
            a_probe = world.submit("A", vcpus=9, duration_ms=1)[0]
            await world.run_until(world.clock.now - T0 + 10)
            first_b = world.job(b_probe).started_at or 0
            first_a = world.job(a_probe).started_at or 0
            winners.append("A" if first_a < first_b else "B")
        print(f"decay: winners at x/W={probes}: {winners}")
        assert winners == ["B", "B", "B", "A", "A", "A"]

    simulate(10, {"shareDecaySeconds": window // SECOND}, scenario)


def test_a_late_share_starts_within_one_round_not_after_the_backlog() -> None:
    # Equal weights. A submits 1,000 one-second 1-vCPU jobs on 32 vCPUs (about 31 s of
    # backlog); B submits 10 at 5.5 s. At the next exits (6 s) B's usage is 0 against A's small
    # past usage, so all ten of B's jobs start in that very round. FIFO would start them after
    # A's backlog, at about 31 s. Tolerance: none (the same round, the same instant).
    async def scenario(world: SchedulingWorld) -> None:
        world.submit("A", count=1000, duration_ms=SECOND)
        await world.run_until(5500)
        late = world.submit("B", count=10, duration_ms=SECOND)
        await world.run_until(6000)
        starts = {world.job(job_id).started_at for job_id in late}
        print(f"late share: B's jobs started at {sorted((s or 0) - T0 for s in starts)} ms")
        assert starts == {T0 + 6000}
        waiting = world.store.snapshot().runnable_by_share["q"]["A"]
        assert len(waiting) > 0  # A's backlog is still there

    simulate(32, {}, scenario)
