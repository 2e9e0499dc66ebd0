"""The benchmark suite's entry point: runs the scenarios of docs/performance.md, prints one
table and writes the JSON (machine facts, versions, every figure with its baseline and target).

    python bench/run.py [--quick|--full] [--only s1,s5,...] [--json PATH] [--profile]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import api_load
import baseline
import docker_compare
import peers
import profiling
import scenarios_jobs
import simulator
from report import ScenarioResult, machine_facts, print_report, write_json

BENCH = Path(__file__).resolve().parent
SCENARIOS = ("s1", "s2", "s3", "s4", "s5", "s6", "s7", "s8")


@dataclass(frozen=True, slots=True)
class Sizes:
    spawns: int  # per baseline sample
    baseline_samples: int  # before the job scenarios, and as many after
    array: int
    separate: int
    sequential: int
    api: api_load.ApiSettings
    sim_small: int
    sim_large: int
    sim_decisions: int
    sim_repeats: int
    containers: int
    container_repeats: int


QUICK = Sizes(
    spawns=1500,
    baseline_samples=2,
    array=2_000,
    separate=400,
    sequential=50,
    api=api_load.ApiSettings(
        seconds=4, big_store=100_000, small_store=1_000, latency_samples=200, repeats=1
    ),
    sim_small=1_000,
    sim_large=100_000,
    sim_decisions=6_000,
    sim_repeats=1,
    containers=32,
    container_repeats=1,
)
FULL = Sizes(
    spawns=5000,
    baseline_samples=3,
    array=10_000,
    separate=2_000,
    sequential=200,
    api=api_load.ApiSettings(
        seconds=10, big_store=1_000_000, small_store=1_000, latency_samples=1000, repeats=3
    ),
    sim_small=1_000,
    sim_large=1_000_000,
    sim_decisions=30_000,
    sim_repeats=2,
    containers=200,
    container_repeats=2,
)


def _guarded(key: str, title: str, body: Callable[[], ScenarioResult]) -> ScenarioResult:
    """A scenario that raised is reported as an error, and the suite goes on."""
    started = time.perf_counter()
    try:
        result = body()
    except Exception as error:
        result = ScenarioResult(key, title, status="error")
        result.notes.append(f"{type(error).__name__}: {error}")
    if not result.seconds:
        result.seconds = time.perf_counter() - started
    print(f"  {key}: {result.status} in {result.seconds:.0f}s", flush=True)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller sizes, under 3 minutes")
    size.add_argument("--full", action="store_true", help="the full sizes of docs/performance.md")
    parser.add_argument("--only", default=",".join(SCENARIOS), help="e.g. s1,s5")
    parser.add_argument(
        "--json", type=Path, default=BENCH / "results" / "latest.json", help="results file"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="sample the servers (and the simulator) with py-spy while they are measured",
    )
    parser.add_argument("--no-cache", action="store_true", help="fill the large stores again (s5)")
    args = parser.parse_args(argv)
    only = {key.strip() for key in args.only.split(",") if key.strip()}
    unknown = only - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(sorted(unknown))}")
    mode = "full" if args.full else "quick"
    sizes = FULL if args.full else QUICK
    profile = args.profile
    if profile and not profiling.available():
        parser.error("--profile needs py-spy (.venv/bin/pip install py-spy)")

    started = time.time()
    facts = machine_facts()
    print(f"Batchyard benchmarks, {mode} mode, {facts['nproc']} CPUs: {sorted(only)}", flush=True)
    results: list[ScenarioResult] = []
    spawns = baseline.Baseline()
    needs_baseline = bool(only & {"s1", "s2", "s3", "s4"})
    if needs_baseline:
        spawns.measure(sizes.spawns, sizes.baseline_samples)
        spawns.measure_latency(100)
    if "s2" in only:
        results.append(
            _guarded(
                "s2",
                "array job",
                lambda: scenarios_jobs.array_job(
                    sizes.array, spawns, sizes.spawns, profile=profile
                ),
            )
        )
    if "s3" in only:
        results.append(
            _guarded(
                "s3",
                "separate jobs",
                lambda: scenarios_jobs.separate_jobs(
                    sizes.separate, spawns, sizes.spawns, profile=profile
                ),
            )
        )
    if "s4" in only:
        results.append(
            _guarded(
                "s4",
                "latency",
                lambda: scenarios_jobs.latency(sizes.sequential, spawns, profile=profile),
            )
        )
    if needs_baseline:
        time.sleep(1)  # the last server's processes wind down
        spawns.measure(sizes.spawns, sizes.baseline_samples)
        if "s1" in only:
            results.insert(0, baseline.result(spawns, sizes.spawns))
    shared: dict[str, Any] = {}
    if "s5" in only:

        def api() -> ScenarioResult:
            result, found = api_load.run_scenario(
                sizes.api, profile=profile, use_cache=not args.no_cache
            )
            shared.update(found)
            return result

        results.append(_guarded("s5", "API", api))
    if "s8" in only:
        results.append(
            _guarded("s8", "peers", lambda: peers.run_scenario(sizes.api.seconds, shared or None))
        )
    if "s6" in only:
        results.append(
            _guarded(
                "s6",
                "scheduler at scale",
                lambda: simulator.run_scenario(
                    sizes.sim_small,
                    sizes.sim_large,
                    sizes.sim_decisions,
                    sizes.sim_repeats,
                    profile=profile,
                ),
            )
        )
    if "s7" in only:
        results.append(
            _guarded(
                "s7",
                "docker",
                lambda: docker_compare.run_scenario(
                    sizes.containers, sizes.container_repeats, profile=profile
                ),
            )
        )
    results.sort(key=lambda result: SCENARIOS.index(result.key))
    print()
    title = f"Batchyard benchmarks ({mode}, {facts['nproc']} CPUs, {time.time() - started:.0f}s)"
    print_report(results, title)
    write_json(args.json, mode=mode, facts=facts, results=results, started=started)
    print(f"\nJSON: {args.json}")
    return 1 if any(result.status == "error" for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
