"""Scenario 1, the machine's limit for process jobs: asyncio spawning /bin/true at concurrency 8
(jobpath.baseline), repeated and taken as the median; and one spawn's latency. Runs no server.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import jobpath
from report import Figure, ScenarioResult, median, percentile

CONCURRENCY = jobpath.MAX_VCPUS


@dataclass(slots=True)
class Baseline:
    """The process-spawn rate measured around the scenarios that are compared with it."""

    samples: list[float] = field(default_factory=list)  # processes per second
    latency_ms: list[float] = field(default_factory=list)  # one sequential spawn-and-wait
    # The median of the samples taken around the last block given to around().
    last_around: float = 0.0
    seconds: float = 0.0  # spent measuring

    @property
    def rate(self) -> float:
        return median(self.samples)

    def measure(self, count: int, repeats: int) -> None:
        started = time.perf_counter()
        for _ in range(repeats):
            self.samples.append(jobpath.baseline(count))
        self.seconds += time.perf_counter() - started

    @contextmanager
    def around(self, count: int) -> Iterator[None]:
        """Samples just before and just after the block; returns nothing, see last_around."""
        started = time.perf_counter()
        before = jobpath.baseline(count)
        self.seconds += time.perf_counter() - started
        try:
            yield
        finally:
            started = time.perf_counter()
            after = jobpath.baseline(count)
            self.seconds += time.perf_counter() - started
            self.samples.extend((before, after))
            self.last_around = median([before, after])

    def measure_latency(self, count: int) -> None:
        started = time.perf_counter()
        self.latency_ms.extend(asyncio.run(_sequential_spawns(count)))
        self.seconds += time.perf_counter() - started


async def _sequential_spawns(count: int) -> list[float]:
    latencies = []
    for _ in range(count):
        started = time.perf_counter()
        process = await asyncio.create_subprocess_exec("/bin/true")
        await process.wait()
        latencies.append((time.perf_counter() - started) * 1000)
    return latencies


def result(baseline: Baseline, count: int) -> ScenarioResult:
    scenario = ScenarioResult(
        "s1", f"baseline: asyncio spawning /bin/true at concurrency {CONCURRENCY}"
    )
    scenario.add(Figure("/bin/true spawns (median)", baseline.rate, "proc/s"))
    scenario.add(Figure("slowest sample", min(baseline.samples), "proc/s"))
    scenario.add(Figure("fastest sample", max(baseline.samples), "proc/s"))
    if baseline.latency_ms:
        scenario.add(Figure("one spawn+wait, p50", percentile(baseline.latency_ms, 0.5), "ms"))
    scenario.seconds = baseline.seconds
    scenario.details = {
        "spawns_per_sample": count,
        "samples_per_s": [round(s, 1) for s in baseline.samples],
        "spawn_latency_ms_p50": percentile(baseline.latency_ms, 0.5)
        if baseline.latency_ms
        else None,
        "spawn_latency_ms_p99": percentile(baseline.latency_ms, 0.99)
        if baseline.latency_ms
        else None,
        "cpus": os.cpu_count(),
    }
    spread = (max(baseline.samples) - min(baseline.samples)) / baseline.rate
    scenario.notes.append(
        f"{len(baseline.samples)} samples of {count} spawns, spread {spread:.0%} of the median "
        "(shared machine: other work runs beside the benchmark)"
    )
    return scenario
