"""Scenarios 2-4, the job path on the process runtime: bench/jobpath.py drives the jobs, this
module runs each scenario on its own server and reports its figures against the baselines: a
10,000-child array, 2,000 jobs from 8 boto3 clients, and the latency of sequential jobs on an
idle server.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import api_load
import jobpath
import profiling
from baseline import Baseline
from report import Figure, ScenarioResult


@contextlib.contextmanager
def _server(root: Path, name: str, profile: bool) -> Iterator[tuple[Any, profiling.Profile | None]]:
    with jobpath.running_server(root, name) as server:
        process = server.process
        assert process is not None
        if not profile:
            yield server, None
            return
        with profiling.Profile(process.pid, name) as sampled:
            yield server, sampled


def _run(
    key: str,
    title: str,
    body: Callable[[Any], dict[str, Any]],
    profile: bool,
) -> tuple[ScenarioResult, dict[str, Any] | None]:
    scenario = ScenarioResult(key, title)
    root = Path(tempfile.mkdtemp(prefix=f"batchyard-bench-{key}-"))
    started = time.perf_counter()
    measured: dict[str, Any] | None = None
    try:
        with _server(root, key, profile) as (server, sampled):
            measured = body(server)
        if sampled is not None:
            scenario.profiles["server"] = sampled.summary()
            sampled.cleanup()
    except Exception as error:
        scenario.status = "error"
        scenario.notes.append(f"{type(error).__name__}: {error}")
        log = root / f"{key}.log"
        if log.exists():
            scenario.details["server_log_tail"] = log.read_text(errors="replace")[-2000:]
    finally:
        shutil.rmtree(root, ignore_errors=True)
    scenario.seconds = time.perf_counter() - started
    if measured is not None:
        scenario.details.update(measured)
    return scenario, measured


def array_job(
    size: int, baseline: Baseline, spawns: int, *, profile: bool = False
) -> ScenarioResult:
    """Scenario 2: one array of `size` children of `true`, SubmitJob -> parent SUCCEEDED."""
    with baseline.around(spawns):
        scenario, measured = _run(
            "s2",
            f"one array job of {size:,} children running `true` (process runtime)",
            lambda server: jobpath.scenario_array(server, size),
            profile,
        )
    if measured is not None:
        scenario.add(
            Figure(
                f"array {size:,}: children/s, submit -> parent SUCCEEDED",
                float(measured["jobs_per_s"]),
                "jobs/s",
                baseline=baseline.last_around,
                baseline_name="s1 /bin/true spawns, just before and after",
                ratio_at_least=0.50,
            )
        )
        scenario.add(Figure("SubmitJob of the array", float(measured["submit_s"]) * 1000, "ms"))
    return scenario


def separate_jobs(
    total: int, baseline: Baseline, spawns: int, *, profile: bool = False
) -> ScenarioResult:
    """Scenario 3: `total` jobs from 8 concurrent boto3 clients, all SUCCEEDED."""
    with baseline.around(spawns):
        scenario, measured = _run(
            "s3",
            f"{total:,} separate jobs from 8 concurrent boto3 clients (process runtime)",
            lambda server: jobpath.scenario_separate(server, total),
            profile,
        )
    if measured is not None:
        scenario.add(
            Figure(
                f"{total:,} jobs x 8 clients: jobs/s, first submit -> all SUCCEEDED",
                float(measured["jobs_per_s"]),
                "jobs/s",
                baseline=baseline.last_around,
                baseline_name="s1 /bin/true spawns, just before and after",
                ratio_at_least=0.40,
            )
        )
        scenario.add(
            Figure("SubmitJob rate of the 8 boto3 clients", float(measured["submit_per_s"]), "/s")
        )
        # What the clients cost alone bounds what the scenario can reach: no job ends before
        # it is submitted. Same clients, same calls, against a server that does no work.
        with api_load.http_baseline_server() as url:
            alone = jobpath.clients_alone(url, total)
        scenario.details["clients_alone_submit_per_s"] = alone["submit_per_s"]
        scenario.add(
            Figure(
                "the same 8 boto3 clients alone: SubmitJob/s to a server doing no work",
                float(alone["submit_per_s"]),
                "/s",
                baseline=baseline.last_around,
                baseline_name="s1 (the bound this puts on s3's ratio)",
            )
        )
    return scenario


def latency(count: int, baseline: Baseline, *, profile: bool = False) -> ScenarioResult:
    """Scenario 4: `count` sequential trivial jobs on an idle server."""
    scenario, measured = _run(
        "s4",
        f"latency, {count} sequential trivial jobs on an idle server",
        lambda server: jobpath.scenario_latency(server, count),
        profile,
    )
    if measured is not None:
        spawn = None
        if baseline.latency_ms:
            spawn = sorted(baseline.latency_ms)[len(baseline.latency_ms) // 2]
        scenario.add(
            Figure(
                "submit -> RUNNING p50 (job record)",
                float(measured["running_p50_ms"]),
                "ms",
                baseline=spawn,
                baseline_name="s1 one /bin/true spawn+wait p50",
                at_most=20.0,
            )
        )
        scenario.add(
            Figure(
                "submit -> RUNNING p99 (job record)",
                float(measured["running_p99_ms"]),
                "ms",
                at_most=100.0,
            )
        )
        scenario.add(
            Figure(
                "submit -> SUCCEEDED p50 (client wall clock)",
                float(measured["succeeded_p50_ms"]),
                "ms",
                baseline=spawn,
                baseline_name="s1 one /bin/true spawn+wait p50",
                at_most=60.0,
            )
        )
        scenario.add(
            Figure(
                "submit -> SUCCEEDED p99 (client wall clock)",
                float(measured["succeeded_p99_ms"]),
                "ms",
            )
        )
        scenario.notes.append(
            "RUNNING from the job record (startedAt - createdAt, epoch ms); SUCCEEDED as the "
            "client sees it: SubmitJob sent -> first DescribeJobs answering SUCCEEDED, polled "
            "every ms"
        )
    return scenario
