"""How many RUNNABLE heads of each queue a round reads (scheduling/head_reads.py): grown four
times over when a plan went past the last head read, halved for the next round when a round
took less than half."""

from __future__ import annotations

from batchyard.scheduling.head_reads import HeadReads

READS = HeadReads(least=4, full=256)


def test_a_queue_not_named_reads_the_least() -> None:
    assert READS.of("high") == 4
    assert HeadReads(4, 256, {"high": 64}).of("high") == 64


def test_no_queue_is_read_again_when_no_plan_went_past_its_last_head() -> None:
    assert READS.grown({"high": (3, False), "low": (0, False)}) is None


def test_a_queue_cut_short_is_read_again_with_four_times_as_many_heads() -> None:
    grown = READS.grown({"high": (4, True), "low": (1, False)})
    assert grown is not None
    assert (grown.of("high"), grown.of("low")) == (16, 4)
    again = grown.grown({"high": (16, True)})
    assert again is not None
    assert again.of("high") == 64


def test_growth_stops_at_the_full_read() -> None:
    grown = HeadReads(4, 10, {"high": 8}).grown({"high": (8, True)})
    assert grown is not None
    assert grown.of("high") == 10
    assert grown.grown({"high": (10, True)}) is None


def test_a_queue_keeps_its_read_while_rounds_take_at_least_half_of_it() -> None:
    reads = HeadReads(4, 256, {"high": 64})
    assert reads.next_round({"high": (32, False)}).of("high") == 64


def test_a_round_that_took_less_than_half_halves_the_read_never_under_the_least() -> None:
    reads = HeadReads(4, 256, {"high": 64, "low": 6})
    after = reads.next_round({"high": (31, False), "low": (0, False)})
    assert (after.of("high"), after.of("low")) == (32, 4)
    assert after.more == {"high": 32}


def test_a_queue_with_no_heads_this_round_goes_back_to_the_least() -> None:
    reads = HeadReads(4, 256, {"high": 64})
    assert reads.next_round({}).more == {}
    assert reads.next_round({}).of("high") == 4
