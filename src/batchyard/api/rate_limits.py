"""Optional per-operation request rates: token buckets the API answers TooManyRequests from.

Off unless configured (`--rate-limit`), so clients' throttling paths can be exercised. With
several API processes the buckets live in memory they all map, so the server as a whole admits
the configured rate, whichever process a connection lands on.
"""

from __future__ import annotations

import fcntl
import mmap
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager

from batchyard.api.operations import OPERATIONS
from batchyard.domain.numerals import NumeralError, parse_decimal

_BUCKET_BYTES = 16  # two doubles: tokens, and the monotonic time they were counted at


class RateLimits:
    """Requests per second by operation name, each a token bucket with a burst of one
    second's worth (at least one request)."""

    def __init__(
        self,
        rates: Mapping[str, float],
        monotonic: Callable[[], float] = time.monotonic,
        *,
        shared_fd: int | None = None,
    ) -> None:
        known = set(OPERATIONS)
        unknown = sorted(set(rates) - known)
        if unknown:
            raise ValueError(f"rate limit for unknown operation(s): {', '.join(unknown)}")
        if not all(0 < rate < float("inf") for rate in rates.values()):
            raise ValueError("rate limits must be positive numbers (requests per second)")
        self.rates = dict(rates)
        self.monotonic = monotonic
        # operation -> (tokens, time of the last refill), when this process keeps them
        self.buckets: dict[str, tuple[float, float]] = {}
        self._slots = {name: slot for slot, name in enumerate(sorted(self.rates))}
        self._shared = None if shared_fd is None else _SharedBuckets(shared_fd, len(self._slots))

    @classmethod
    def parse(cls, text: str, *, shared_fd: int | None = None) -> RateLimits:
        """`DescribeJobs=5,GetLogEvents=10` (operation=requests per second, comma-separated)."""
        rates: dict[str, float] = {}
        for item in filter(None, (part.strip() for part in text.split(","))):
            name, sep, value = item.partition("=")
            try:
                rates[name.strip()] = float(parse_decimal(value.strip()))
            except NumeralError:
                sep = ""
            if not sep:
                raise ValueError(f"rate limit {item!r} is not OPERATION=REQUESTS_PER_SECOND")
        return cls(rates, shared_fd=shared_fd)

    @property
    def shared_fd(self) -> int | None:
        """The descriptor of the shared buckets, for the processes that should share them."""
        return None if self._shared is None else self._shared.fd

    def share(self) -> int:
        """Move the buckets to memory other processes can map (they get the descriptor and
        parse the same limits with shared_fd=it); returns the descriptor."""
        if self._shared is None:
            fd = os.memfd_create("batchyard-rate-limits")
            self._shared = _SharedBuckets(fd, len(self._slots))
        return self._shared.fd

    def admit(self, operation: str) -> bool:
        """Take a token for one call of operation; False when its bucket is empty."""
        rate = self.rates.get(operation)
        if rate is None:
            return True
        shared = self._shared
        if shared is None:
            admitted, self.buckets[operation] = self._take(self.buckets.get(operation), rate)
            return admitted
        slot = self._slots[operation]
        with shared.locked():
            admitted, bucket = self._take(shared.get(slot), rate)
            shared.put(slot, bucket)
        return admitted

    def _take(
        self, bucket: tuple[float, float] | None, rate: float
    ) -> tuple[bool, tuple[float, float]]:
        now = self.monotonic()
        capacity = max(rate, 1.0)
        tokens, last = bucket if bucket is not None else (capacity, now)
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            return False, (tokens, now)
        return True, (tokens - 1.0, now)


class _SharedBuckets:
    """Buckets in a memfd each process maps, changed under an flock on it."""

    def __init__(self, fd: int, count: int) -> None:
        self.fd = fd
        size = max(1, count) * _BUCKET_BYTES
        if os.fstat(fd).st_size < size:
            os.ftruncate(fd, size)  # zero-filled: a zero time marks a bucket never used
        self._values = memoryview(mmap.mmap(fd, size)).cast("d")

    @contextmanager
    def locked(self) -> Iterator[None]:
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self.fd, fcntl.LOCK_UN)

    def get(self, slot: int) -> tuple[float, float] | None:
        tokens, last = self._values[2 * slot], self._values[2 * slot + 1]
        return None if last == 0.0 else (tokens, last)

    def put(self, slot: int, bucket: tuple[float, float]) -> None:
        self._values[2 * slot], self._values[2 * slot + 1] = bucket
