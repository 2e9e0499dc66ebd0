"""How many RUNNABLE heads of each queue a dispatcher round reads (docs/architecture.md, rule 5).

A round reads `least` heads of a queue, or more for a queue whose last rounds took more. When a
plan went past the last head read of a queue (planner.heads_taken), the round reads that queue
again with four times as many, up to `full`, and plans again; a queue's read halves for the next
round when the round took less than half of it. Pure: the dispatcher reads and plans, this says
how many.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

_GROWTH = 4  # 4, 16, 64, 256: a round that needs 20 heads does not read 256


@dataclass(frozen=True, slots=True)
class HeadReads:
    least: int  # heads read of every queue
    full: int  # the most read of one queue (SnapshotLimits.runnable_per_queue)
    # Queue -> heads to read, for the queues read more than `least`.
    more: Mapping[str, int] = field(default_factory=dict)

    def of(self, queue: str) -> int:
        return self.more.get(queue, self.least)

    def grown(self, taken: Mapping[str, tuple[int, bool]]) -> HeadReads | None:
        """The reads with more heads of each queue whose read the plan went past (`taken` is
        planner.heads_taken's), up to `full`; None when no queue needs more."""
        short = [q for q, (_, cut) in taken.items() if cut and self.of(q) < self.full]
        if not short:
            return None
        more = dict(self.more)
        for queue in short:
            more[queue] = min(self.full, self.of(queue) * _GROWTH)
        return HeadReads(self.least, self.full, more)

    def next_round(self, taken: Mapping[str, tuple[int, bool]]) -> HeadReads:
        """The reads of the next round after a plan that took `taken`: a queue keeps its read
        if the plan took at least half of it, else reads half (never under `least`); a queue
        with no heads this round goes back to `least`."""
        more: dict[str, int] = {}
        for queue, (took, _) in taken.items():
            read = self.of(queue)
            if took * 2 < read:
                read = max(self.least, read // 2)
            if read > self.least:
                more[queue] = read
        return HeadReads(self.least, self.full, more)
