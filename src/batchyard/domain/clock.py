"""The Clock protocol. Pure code takes `now`; only the edges hold a clock."""

from __future__ import annotations

from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int:
        """Current time, epoch milliseconds."""
        ...
